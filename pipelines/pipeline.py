"""The vidcustom DAG: resolve config -> synthesize -> validate -> train -> evaluate -> register -> export.

Pipeline parameters (preset, params.yaml text, `section.key=value` overrides) map onto the one typed run
config, parsed and validated once by the first task so a bad value fails before any work. It hands each
step only what that step reads (`RunConfig.for_step`, components/config.STEP_READS), so a step's cache key
is its own settings. A failed validation raises in the validate task, so nothing after it runs.

`build_pipeline(cluster=True)` (what `vidcustom compile` and `submit` use) gives every task the k8s/
wiring: the `vidcustom-env` ConfigMap (MLflow server, S3 endpoint, DVC remote), the `vidcustom-s3`
credentials and the `vidcustom-data` volume, with VIDCUSTOM_HOME on it, so steps share one tracking
server, one DVC remote and resumable training state. kfp.local runs use cluster=False.
"""


from typing import NamedTuple

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
def resolve_config(preset: str, params_yaml: str, overrides: list) -> NamedTuple(  # inline: KFP ships the source
        "StepConfigs", [("synthesize", str), ("validate", str), ("train", str), ("evaluate", str), ("register", str),
                        ("export", str)]):
    """Merge preset < params.yaml < overrides into the validated run config; one JSON per step, holding what
    that step reads."""
    from components.config import STEP_READS, load_config

    cfg = load_config(None, [str(o) for o in overrides], preset or None, params_text=params_yaml)
    return tuple(cfg.for_step(step) for step in STEP_READS)


CONFIG_MAP_KEYS = ("MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION",
                   "AWS_REGION", "VIDCUSTOM_DVC_REMOTE")
SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
DATA_MOUNT = "/data"


def _in_cluster(task):
    from kfp import kubernetes

    kubernetes.use_config_map_as_env(task, "vidcustom-env", {k: k for k in CONFIG_MAP_KEYS})
    kubernetes.use_secret_as_env(task, "vidcustom-s3", {k: k for k in SECRET_KEYS})
    kubernetes.mount_pvc(task, pvc_name="vidcustom-data", mount_path=DATA_MOUNT)
    task.set_env_variable("VIDCUSTOM_HOME", f"{DATA_MOUNT}/state")
    # One MLflow parent run per pipeline execution: every step's run nests under the run keyed by this id
    # (kfp.local runs get theirs from pipelines/local.py).
    task.set_env_variable("VIDCUSTOM_PIPELINE_RUN", dsl.PIPELINE_JOB_ID_PLACEHOLDER)
    return task


def build_pipeline(cluster: bool):
    wire = _in_cluster if cluster else (lambda task: task)

    @dsl.pipeline(name=PIPELINE_NAME, description="Zero-shot subject-driven video customization (SUGAR): "
                                                  "synthesize, validate, train, evaluate, register, export")
    def vidcustom_pipeline(preset: str = "tiny", params_yaml: str = "", overrides: list = []) -> str:  # noqa: B006
        config = wire(resolve_config(preset=preset, params_yaml=params_yaml, overrides=overrides))
        cfg = config.set_display_name("config").outputs
        data = wire(synthesize(config_json=cfg["synthesize"]))
        checked = wire(validate(config_json=cfg["validate"], dataset=data.outputs["dataset"]))
        version = checked.outputs["Output"]
        trained = wire(train(config_json=cfg["train"], data_version=version, dataset=data.outputs["dataset"]))
        evaluated = wire(evaluate(config_json=cfg["evaluate"], data_version=version,
                                  checkpoint=trained.outputs["checkpoint"]))
        registered = wire(register(config_json=cfg["register"], data_version=version,
                                   checkpoint=trained.outputs["checkpoint"], evaluation=evaluated.outputs["evaluation"]))
        exported = wire(export(config_json=cfg["export"], data_version=version, registration=registered.output,
                               checkpoint=trained.outputs["checkpoint"]))
        return exported.outputs["Output"]

    return vidcustom_pipeline


vidcustom_pipeline = build_pipeline(cluster=False)  # kfp.local
cluster_pipeline = build_pipeline(cluster=True)  # compile / submit
