"""KFP component of the export step."""

from kfp import dsl

from components.cli import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE)
def export(config_json: str, data_version: str, registration: str, checkpoint: dsl.Input[dsl.Model],
           onnx_model: dsl.Output[dsl.Model]) -> str:
    import json

    from components.config import config_from_json
    from components.export.export import run

    result = run(checkpoint.path, onnx_model.path, config_from_json(config_json), data_version, json.loads(registration))
    onnx_model.metadata.update({"parity_max_abs_diff": result["parity"]["max_abs_diff"],
                                "model_version": result.get("version")})
    return json.dumps(result)


if __name__ == "__main__":  # `python -m components.export.component [PATH]` compiles this component alone
    import sys

    from kfp import compiler

    path = sys.argv[1] if sys.argv[1:] else "export_component.yaml"
    compiler.Compiler().compile(export, package_path=path)
