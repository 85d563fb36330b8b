"""The vidcustom DAG: resolve config -> synthesize -> validate -> train -> evaluate -> register -> export.

Pipeline parameters (preset, params.yaml text, `section.key=value` overrides) map onto the one typed run
config; the first task validates it so a bad value fails before any work. A failed validation raises in
the validate task, so nothing after it runs.
"""


from kfp import dsl

from components.cli import BASE_IMAGE
from components.evaluate.component import evaluate
from components.export.component import export
from components.register.component import register
from components.synthesize.component import synthesize
from components.train.component import train
from components.validate.component import validate

# No `from __future__ import annotations` here: KFP reads the annotations as types.
PIPELINE_NAME = "vidcustom"


@dsl.component(base_image=BASE_IMAGE)
def resolve_config(preset: str, params_yaml: str, overrides: list) -> str:
    """Merge preset < params.yaml < overrides into the validated run config (JSON)."""
    import tempfile
    from pathlib import Path

    from components.config import load_config

    params = None
    if params_yaml.strip():
        params = Path(tempfile.mkdtemp()) / "params.yaml"
        params.write_text(params_yaml)
    return load_config(params, [str(o) for o in overrides], preset or None).to_json()


@dsl.pipeline(name=PIPELINE_NAME, description="Zero-shot subject-driven video customization (SUGAR): synthesize, "
                                              "validate, train, evaluate, register, export")
def vidcustom_pipeline(preset: str = "tiny", params_yaml: str = "", overrides: list = []) -> str:  # noqa: B006
    config = resolve_config(preset=preset, params_yaml=params_yaml, overrides=overrides).set_display_name("config")
    cfg = config.output
    data = synthesize(config_json=cfg)
    checked = validate(config_json=cfg, dataset=data.outputs["dataset"])
    version = checked.outputs["Output"]
    trained = train(config_json=cfg, data_version=version, dataset=data.outputs["dataset"])
    evaluated = evaluate(config_json=cfg, data_version=version, checkpoint=trained.outputs["checkpoint"])
    registered = register(config_json=cfg, data_version=version, checkpoint=trained.outputs["checkpoint"],
                          evaluation=evaluated.outputs["evaluation"])
    exported = export(config_json=cfg, data_version=version, registration=registered.output,
                      checkpoint=trained.outputs["checkpoint"])
    return exported.outputs["Output"]
