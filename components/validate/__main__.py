"""python -m components.validate DATASET_DIR REPORT_DIR [--params params.yaml] [--set validate.KEY=VALUE ...]

Validates a dataset directory (manifest.parquet + media) against the Great Expectations suite and
per-sample media checks, writes report.md, report.html, gx_result.json, data_docs/ and validation.json
into REPORT_DIR, and - only when everything passes - pushes the dataset to the DVC remote and writes
REPORT_DIR/dataset.dvc. Prints the summary and the version (the md5 ".dir" hash).

The validation (version, counts, the synthesis filters' kept/dropped counts, the reports) is logged
as an MLflow `validate` run unless --no-mlflow.

Exit status: 0 passed; 2 validation failed (the summary names the failing expectations and samples)
or a bad input/remote.

Useful overrides: --set validate.remote=/mnt/dvc-remote  --set validate.push=false
                  --set validate.min_rows=100  --set validate.workers=4
"""

from components.cli import StepCLI, arg


def _validate(args, cfg) -> None:
    from components.validate.tracking import log_validation
    from components.validate.validate import ValidationFailed, run

    try:
        result = run(args.dataset_dir, args.report_dir, cfg)
    except ValidationFailed as err:
        if not args.no_mlflow:
            log_validation(err.result, cfg)
        raise
    if not args.no_mlflow:
        log_validation(result, cfg)
    print(result.summary())
    print(result.dvc_hash)  # last line: the version, for scripts


cli = StepCLI("components.validate", __doc__, _validate, [
    arg("dataset_dir", help="the dataset to validate (the synthesize step's output)"),
    arg("report_dir", help="where the reports go; must be outside DATASET_DIR"),
    arg("--no-mlflow", action="store_true", help="do not log the validation run to MLflow"),
])
build_parser, main = cli.build_parser, cli.main

if __name__ == "__main__":
    raise SystemExit(main())
