"""KFP component of the evaluate step."""

from kfp import dsl

from components.cli import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE)
def evaluate(config_json: str, data_version: str, checkpoint: dsl.Input[dsl.Model],
             evaluation: dsl.Output[dsl.Artifact], metrics: dsl.Output[dsl.Metrics]) -> str:
    import json

    from components.config import config_from_json
    from components.evaluate.evaluate import run

    result = run(checkpoint.path, evaluation.path, config_from_json(config_json), data_version)
    for k, v in result["metrics"].items():
        metrics.log_metric(k.replace("/", "."), float(v))
    return json.dumps(result["metrics"])


if __name__ == "__main__":  # `python -m components.evaluate.component [PATH]` compiles this component alone
    import sys

    from kfp import compiler

    path = sys.argv[1] if sys.argv[1:] else "evaluate_component.yaml"
    compiler.Compiler().compile(evaluate, package_path=path)
