"""KFP v2 component of the synthesize step; `python -m components.synthesize.component` writes its YAML."""

from kfp import dsl

from components.cli import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE)
def synthesize(config_json: str, dataset: dsl.Output[dsl.Dataset]) -> str:
    """Synthesize the dataset into the `dataset` artifact; returns the summary as JSON."""
    import json

    from components.config import config_from_json
    from components.synthesize.synthesize import run

    summary = run(dataset.path, config_from_json(config_json))
    dataset.metadata.update({
        "backend": summary["backend"],
        "fingerprint": summary["fingerprint"],
        "samples": summary["samples_kept"],
        "samples_dropped": summary["samples_dropped"],
        "subjects": summary["subjects"],
        "real": summary["real"],
        "synthetic": summary["synthetic"],
        "train": summary["train"],
        "val": summary["val"],
    })
    return json.dumps(summary)


if __name__ == "__main__":  # `python -m components.synthesize.component [PATH]` compiles this component alone
    import sys

    from kfp import compiler

    path = sys.argv[1] if sys.argv[1:] else "synthesize_component.yaml"
    compiler.Compiler().compile(synthesize, package_path=path)
