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


if __name__ == "__main__":
    from kfp import compiler

    compiler.Compiler().compile(synthesize, "synthesize_component.yaml")
