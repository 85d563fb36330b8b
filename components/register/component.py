"""KFP component of the register step."""

from kfp import dsl

from components.cli import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE)
def register(config_json: str, data_version: str, checkpoint: dsl.Input[dsl.Model],
             evaluation: dsl.Input[dsl.Artifact]) -> str:
    import json

    from components.config import config_from_json
    from components.register.register import run

    return json.dumps(run(checkpoint.path, evaluation.path, config_from_json(config_json), data_version))


if __name__ == "__main__":  # `python -m components.register.component [PATH]` compiles this component alone
    import sys

    from kfp import compiler

    path = sys.argv[1] if sys.argv[1:] else "register_component.yaml"
    compiler.Compiler().compile(register, package_path=path)
