"""python -m components.evaluate CHECKPOINT_DIR OUTPUT_DIR [--data-version HASH] [--params ...] [--set ...]

Generates videos for held-out sprite subjects and prompts and scores them (sprites ground truth and
VBench-style metrics); writes metrics.json, per_sample.parquet, videos/ and contact_sheet.png and logs
them to MLflow.
"""

from components.cli import StepCLI, arg, data_version_option


def _evaluate(args, cfg):
    from components.evaluate.evaluate import run

    return run(args.checkpoint_dir, args.output_dir, cfg, args.data_version)["metrics"]


cli = StepCLI("components.evaluate", __doc__, _evaluate, [
    arg("checkpoint_dir", help="a trained checkpoint (train step output)"),
    arg("output_dir", help="where metrics, tables and videos are written"),
    data_version_option(),
])
build_parser, main = cli.build_parser, cli.main

if __name__ == "__main__":
    raise SystemExit(main())
