"""python -m components.synthesize OUTPUT_DIR [--params params.yaml] [--set synthesize.seed=3]

Generate the (identity image, video, caption) dataset with the configured backend, score every sample with
the shared filters and write manifest.parquet. Re-running resumes: finished shards are skipped.
"""

from components.cli import StepCLI, arg

EXAMPLES = """examples:
  python -m components.synthesize data/sprites
  python -m components.synthesize data/sprites --set synthesize.num_subjects=48 --set synthesize.workers=4
  python -m components.synthesize data/sprites --params params.yaml --set synthesize.min_flow_score=0.2"""


def _synthesize(args, cfg):
    from components.synthesize.synthesize import run  # heavy (torch, transformers): after --help

    return run(args.output_dir, cfg)


cli = StepCLI("components.synthesize", __doc__, _synthesize, [
    arg("output_dir", metavar="OUTPUT_DIR", help="dataset directory to create or resume"),
], epilog=EXAMPLES)
build_parser, main = cli.build_parser, cli.main

if __name__ == "__main__":
    raise SystemExit(main())
