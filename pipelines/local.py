"""Run the whole pipeline on this machine with kfp.local's SubprocessRunner (the embedded default).

Tasks run as subprocesses of the current Python environment; their outputs land under
<state_dir>/kfp; MLflow defaults to the SQLite store <state_dir>/mlflow.db.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from components.config import load_config


def run_local(params: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
              preset: str | None = None) -> dict:
    cfg = load_config(params, overrides, preset)  # fail fast, before any task starts
    state = cfg.state
    state.mkdir(parents=True, exist_ok=True)
    # Every task subprocess must agree on the state dir and the tracking store.
    os.environ["VIDCUSTOM_HOME"] = str(state)
    os.environ.setdefault("MLFLOW_TRACKING_URI", cfg.tracking_uri())
    os.environ.setdefault("VIDCUSTOM_PIPELINE_RUN", uuid.uuid4().hex[:12])
    os.environ.setdefault("TQDM_MININTERVAL", "5")

    from kfp import local

    from pipelines.pipeline import vidcustom_pipeline

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(state / "kfp"), raise_on_error=True)
    params_yaml = Path(params).read_text() if params else ""
    task = vidcustom_pipeline(preset=cfg.preset, params_yaml=params_yaml, overrides=list(overrides))
    return {"pipeline_run": os.environ["VIDCUSTOM_PIPELINE_RUN"], "tracking_uri": os.environ["MLFLOW_TRACKING_URI"],
            "pipeline_root": str(state / "kfp"), "export": json.loads(task.output)}
