"""Register step: log the checkpoint as pyfunc `vidcustom`, tag the version, set `challenger` and, when the
gate passes, `champion` (MLflow aliases; registry stages are deprecated)."""

from __future__ import annotations

import json
from pathlib import Path

from components.config import RunConfig

REPO = Path(__file__).resolve().parents[2]
# Code the pyfunc needs at load time, shipped with the model so a plain `mlflow models serve` works.
CODE_PATHS = [str(REPO / "model"), str(REPO / "components")]
TORCH_REQUIREMENTS = ["torch==2.13.0", "diffusers==0.42.1", "transformers==5.23.0", "safetensors", "av", "pillow",
                      "pydantic>=2", "pandas", "numpy", "pyyaml"]


def checkpoint_meta(checkpoint_dir: str | Path) -> dict:
    from model.pipeline import CHECKPOINT_META

    path = Path(checkpoint_dir) / CHECKPOINT_META
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {checkpoint_dir} is not a vidcustom checkpoint")
    return json.loads(path.read_text())


def version_tags(meta: dict, data_version: str | None, metrics: dict) -> dict[str, str]:
    """Tags from the checkpoint's own record (what was trained), not from the registering step's config."""
    from components.tracking import git_commit

    tags = {"data_version": str(data_version or meta.get("data_version")), "git_commit": git_commit(),
            "preset": str(meta.get("preset")), "method": str(meta.get("method")),
            "attention_design": str(meta.get("attention_design")),
            "training_stage": str(meta.get("training_stage"))}
    tags.update({f"metric.{k}": f"{v:.6g}" for k, v in metrics.items() if isinstance(v, (int, float))})
    return tags


def set_aliases(client, name: str, version: str, champion: bool) -> list[str]:
    aliases = ["challenger"] + (["champion"] if champion else [])
    for alias in aliases:
        client.set_registered_model_alias(name, alias, version)
    return aliases


def run(checkpoint_dir: str | Path, evaluation_dir: str | Path, cfg: RunConfig, data_version: str | None = None) -> dict:
    import mlflow

    from components.register.gate import evaluate_gate
    from components.register.pyfunc import SugarPyfunc
    from components.serving import input_example, signature
    from components.tracking import step_run

    metrics = json.loads((Path(evaluation_dir) / "metrics.json").read_text())
    passed, reasons = evaluate_gate(metrics, cfg.register_.gate, cfg.register_.must_beat)
    name = cfg.register_.model_name
    with step_run(cfg, "register", data_version):
        info = mlflow.pyfunc.log_model(
            name="model", python_model=SugarPyfunc(), artifacts={"checkpoint": str(checkpoint_dir)},
            code_paths=CODE_PATHS, signature=signature(), registered_model_name=name,
            input_example=input_example(cfg.model.height, cfg.model.width), pip_requirements=TORCH_REQUIREMENTS)
        version = str(info.registered_model_version)
        mlflow.log_dict({"passed": passed, "reasons": reasons, "floors": cfg.register_.gate,
                         "must_beat": cfg.register_.must_beat}, "gate.json")
        mlflow.set_tag("gate", "passed" if passed else "failed")
    client = mlflow.MlflowClient()
    tags = version_tags(checkpoint_meta(checkpoint_dir), data_version, metrics) | {"gate": "passed" if passed else "failed",
                                                       "gate_reasons": "; ".join(reasons)[:4000]}
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, v)
    aliases = set_aliases(client, name, version, passed)
    return {"model_name": name, "version": version, "champion": passed, "aliases": aliases, "reasons": reasons,
            "model_uri": f"models:/{name}/{version}"}
