"""KFP component of the validate step: the dataset in, the HTML report out, the DVC version returned."""

from kfp import dsl

from components.cli import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE)
def validate(config_json: str, dataset: dsl.Input[dsl.Dataset], report: dsl.Output[dsl.HTML],
             manifest: dsl.Output[dsl.Artifact]) -> str:
    """Returns the dataset's DVC version ("<md5>.dir"); raises on a failed validation so the run stops
    before training. report.path gets one self-contained HTML page (summary + GX validation page);
    `manifest` is a small folder (manifest.parquet, dataset.dvc, validation.json, summary.json) whose
    metadata carries the version: the dataset's record without copying its media."""
    import shutil
    import tempfile
    from pathlib import Path

    from components.config import config_from_json
    from components.validate.tracking import log_validation
    from components.validate.validate import ValidationFailed, run

    cfg = config_from_json(config_json)
    # The Data Docs site is logged to MLflow; the HTML artifact carries the same content for the KFP UI.
    with tempfile.TemporaryDirectory(prefix="vidcustom-validate-") as tmp:
        try:
            result = run(dataset.path, tmp, cfg)
        except ValidationFailed as err:
            shutil.copyfile(err.result.report_html, report.path)
            log_validation(err.result, cfg)
            raise
        shutil.copyfile(result.report_html, report.path)
        out = Path(manifest.path)
        out.mkdir(parents=True, exist_ok=True)
        for src in (Path(dataset.path) / "manifest.parquet", Path(dataset.path) / "summary.json",
                    result.dvc_file, Path(tmp) / "validation.json"):
            if src is not None and Path(src).is_file():
                shutil.copyfile(src, out / Path(src).name)
        run_id = log_validation(result, cfg)
    meta = {"success": result.success, "dvc_hash": result.dvc_hash, "remote": result.remote, "n_rows": result.n_rows}
    report.metadata.update(meta)
    manifest.metadata.update({**meta, "mlflow_run_id": run_id or ""})
    return result.dvc_hash


if __name__ == "__main__":  # `python -m components.validate.component [PATH]` compiles this component alone
    import sys

    from kfp import compiler

    path = sys.argv[1] if sys.argv[1:] else "validate_component.yaml"
    compiler.Compiler().compile(validate, package_path=path)
