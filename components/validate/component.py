"""KFP component of the validate step: the dataset in, the HTML report out, the DVC version returned."""

from kfp import dsl

from components.cli import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE)
def validate(config_json: str, dataset: dsl.Input[dsl.Dataset], report: dsl.Output[dsl.HTML]) -> str:
    """Returns the dataset's DVC version ("<md5>.dir"); raises on a failed validation so the run stops
    before training. report.path gets one self-contained HTML page (summary + GX validation page)."""
    import shutil
    import tempfile

    from components.config import config_from_json
    from components.validate.validate import ValidationFailed, run

    # The other report files (markdown, GX JSON, Data Docs site) are scratch here: the HTML artifact
    # carries the same content, and the version is the return value.
    with tempfile.TemporaryDirectory(prefix="vidcustom-validate-") as tmp:
        try:
            result = run(dataset.path, tmp, config_from_json(config_json))
        except ValidationFailed as err:
            shutil.copyfile(err.result.report_html, report.path)
            raise
        shutil.copyfile(result.report_html, report.path)
    report.metadata.update({"success": result.success, "dvc_hash": result.dvc_hash, "remote": result.remote,
                            "n_rows": result.n_rows})
    return result.dvc_hash


if __name__ == "__main__":  # compiles on its own, like every component
    from kfp import compiler

    compiler.Compiler().compile(validate, "validate_component.yaml")
