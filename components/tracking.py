"""MLflow for the steps: where the store is, one run per step, the tags every run carries.

Steps write their results to local files first and log them afterwards, so a dead tracking server
costs a retry, not the results.
"""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from .config import RunConfig

PIPELINE_RUN_TAG = "vidcustom.pipeline_run"


def git_commit() -> str:
    env = os.environ.get("VIDCUSTOM_GIT_COMMIT")
    if env:
        return env
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _check_server(uri: str, retries: int = 3, wait_s: float = 2.0) -> None:
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.request

    last = None
    for attempt in range(retries):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5):
                return
        except OSError as err:
            last = err
            time.sleep(wait_s * (attempt + 1))
    raise RuntimeError(f"MLflow tracking server {uri} is unreachable after {retries} tries ({last}); start it, "
                       "or unset MLFLOW_TRACKING_URI to use the local store. Step outputs on disk are kept.")


def configure(cfg: RunConfig) -> str:
    import mlflow

    uri = cfg.tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    _check_server(uri, cfg.mlflow.retries, cfg.mlflow.retry_wait_s)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(cfg.mlflow.experiment) is None:
        artifacts = None
        if uri.startswith("sqlite:///"):  # keep artifacts beside the local store, not in the working dir
            artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
        try:
            mlflow.create_experiment(cfg.mlflow.experiment, artifact_location=artifacts)
        except Exception:  # another step created it meanwhile
            pass
    mlflow.set_experiment(cfg.mlflow.experiment)
    return uri


def base_tags(cfg: RunConfig, step: str, data_version: str | None = None) -> dict[str, str]:
    tags = {"vidcustom.step": step, "preset": cfg.preset, "method": cfg.model.method, "git_commit": git_commit(),
            "attention_design": cfg.model.attention_design}
    if data_version:
        tags["data_version"] = data_version
    if os.environ.get("VIDCUSTOM_PIPELINE_RUN"):
        tags[PIPELINE_RUN_TAG] = os.environ["VIDCUSTOM_PIPELINE_RUN"]
    return tags


@contextmanager
def step_run(cfg: RunConfig, step: str, data_version: str | None = None, log_config: bool = True):
    """An MLflow run for one step, tagged with preset, method, git commit and data version."""
    import mlflow

    configure(cfg)
    with mlflow.start_run(run_name=step, tags=base_tags(cfg, step, data_version)) as run:
        if log_config:
            mlflow.log_dict(cfg.model_dump(mode="json", by_alias=True), "config.json")
            mlflow.log_params(flatten(cfg.model_dump(mode="json", by_alias=True).get(step, {}), prefix=step))
        yield run


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, key))
        else:
            out[key] = str(v)[:500]
    return out
