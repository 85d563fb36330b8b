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

import argparse

from components.cli import add_config_args, config_from_args, main_wrapper


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m components.validate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset_dir", help="the dataset to validate (the synthesize step's output)")
    ap.add_argument("report_dir", help="where the reports go; must be outside DATASET_DIR")
    ap.add_argument("--no-mlflow", action="store_true", help="do not log the validation run to MLflow")
    add_config_args(ap)
    args = ap.parse_args()

    def go() -> None:
        from components.validate.tracking import log_validation
        from components.validate.validate import ValidationFailed, run

        cfg = config_from_args(args)
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

    main_wrapper(go)


if __name__ == "__main__":
    main()
