"""Run the whole pipeline on this machine with kfp.local's SubprocessRunner (the embedded default).

Tasks run as subprocesses of the current Python environment; their outputs land under
<state_dir>/kfp; MLflow defaults to the SQLite store <state_dir>/mlflow.db. The execution gets one
MLflow parent run (`pipeline <id>`, tag vidcustom.step=pipeline) before any task starts; every step's
run nests under it, and it ends FINISHED or FAILED with the pipeline.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from components.config import load_config

PIPELINE_RUN_ENV = "VIDCUSTOM_PIPELINE_RUN"  # components.tracking reads it in every task


def run_local(params: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
              preset: str | None = None) -> dict:
    cfg = load_config(params, overrides, preset)  # fail fast, before any task starts
    state = cfg.state
    state.mkdir(parents=True, exist_ok=True)
    # Every task subprocess must agree on the state dir and the tracking store.
    os.environ["VIDCUSTOM_HOME"] = str(state)
    os.environ.setdefault("MLFLOW_TRACKING_URI", cfg.tracking_uri())
    os.environ.setdefault("TQDM_MININTERVAL", "5")
    # A caller's VIDCUSTOM_PIPELINE_RUN names this execution; otherwise a fresh id, not kept afterwards, so a
    # second run_local in this process is a new execution with its own parent run.
    previous_run = os.environ.get(PIPELINE_RUN_ENV)
    pipeline_run = previous_run or uuid.uuid4().hex[:12]
    os.environ[PIPELINE_RUN_ENV] = pipeline_run

    from kfp import local

    from components.tracking import begin_pipeline, end_pipeline
    from pipelines.pipeline import vidcustom_pipeline

    try:
        tracking = begin_pipeline(cfg)  # the parent run; raises here when the server is down and offline=fail
        succeeded = False
        try:
            local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(state / "kfp"),
                       raise_on_error=True)
            params_yaml = Path(params).read_text() if params else ""
            task = vidcustom_pipeline(preset=cfg.preset, params_yaml=params_yaml, overrides=list(overrides))
            succeeded = True
        finally:
            end_pipeline(tracking, succeeded)
    finally:
        if previous_run is None:
            os.environ.pop(PIPELINE_RUN_ENV, None)
    return {"pipeline_run": pipeline_run, "tracking_uri": cfg.tracking_uri(),  # what the steps used
            "mlflow_store": tracking["store"], "mlflow_parent_run": tracking["parent_run_id"],
            "pipeline_root": str(state / "kfp"), "export": json.loads(task.output)}
