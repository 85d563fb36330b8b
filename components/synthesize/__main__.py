"""CLI: `python -m components.synthesize OUTPUT_DIR [--params params.yaml] [--set synthesize.seed=3]`."""

from __future__ import annotations

import argparse
import json

from components.cli import add_config_args, config_from_args, main_wrapper


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m components.synthesize",
        description="Generate the (identity image, video, caption) dataset with the configured backend, score "
                    "every sample with the shared filters and write manifest.parquet. Re-running resumes: "
                    "finished shards are skipped.",
        epilog="examples:\n"
               "  python -m components.synthesize data/sprites\n"
               "  python -m components.synthesize data/sprites --set synthesize.num_subjects=48 "
               "--set synthesize.workers=4\n"
               "  python -m components.synthesize data/sprites --params params.yaml "
               "--set synthesize.min_flow_score=0.2",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", metavar="OUTPUT_DIR", help="dataset directory to create or resume")
    add_config_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    from components.synthesize.synthesize import run  # heavy (torch, transformers): after --help

    summary = run(args.output_dir, cfg)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    main_wrapper(main)
