"""KFP component of the train step."""

from kfp import dsl

from components.cli import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE)
def train(config_json: str, data_version: str, dataset: dsl.Input[dsl.Dataset],
          checkpoint: dsl.Output[dsl.Model]) -> str:
    import json

    from components.config import config_from_json
    from components.train.train import run

    summary = run(dataset.path, checkpoint.path, config_from_json(config_json), data_version)
    checkpoint.metadata.update({"data_version": data_version, "final_loss": summary["final_loss"],
                                "mlflow_run_id": summary["run_id"]})
    return json.dumps(summary)


if __name__ == "__main__":  # `python -m components.train.component [PATH]` compiles this component alone
    import sys

    from kfp import compiler

    path = sys.argv[1] if sys.argv[1:] else "train_component.yaml"
    compiler.Compiler().compile(train, package_path=path)
