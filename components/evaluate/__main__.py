"""python -m components.evaluate CHECKPOINT_DIR OUTPUT_DIR [--data-version HASH] [--params ...] [--set ...]

Generates videos for held-out sprite subjects and prompts and scores them (sprites ground truth and
VBench-style metrics); writes metrics.json, per_sample.parquet, videos/ and contact_sheet.png and logs
them to MLflow.
"""

import argparse
import json

from components.cli import add_config_args, config_from_args, data_version_arg, main_wrapper


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m components.evaluate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint_dir", help="a trained checkpoint (train step output)")
    ap.add_argument("output_dir", help="where metrics, tables and videos are written")
    ap.add_argument("--data-version", default=None, type=data_version_arg)
    add_config_args(ap)
    args = ap.parse_args()

    def go():
        from components.evaluate.evaluate import run

        print(json.dumps(run(args.checkpoint_dir, args.output_dir, config_from_args(args), args.data_version)["metrics"],
                         indent=2))

    main_wrapper(go)


if __name__ == "__main__":
    main()
