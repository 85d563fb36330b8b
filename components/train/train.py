"""Train step: launch the DeepSpeed ranks, log the run to MLflow, leave a checkpoint (DESIGN.md format).

Resumable: state lives under <state_dir>/train/<key>, key = hash of (data version, train + model config);
re-running after a failure (a killed rank, a NaN) continues from the last saved step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from components.config import RunConfig

log = logging.getLogger(__name__)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def state_key(cfg: RunConfig, data_version: str | None) -> str:
    blob = json.dumps([data_version, cfg.train.model_dump(mode="json"), cfg.model.model_dump(mode="json")],
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def launch(cfg: RunConfig, dataset_dir: Path, checkpoint_dir: Path, state: Path, metadata: dict,
           mlflow_run: tuple[str, str] | None = None) -> None:
    """Run the ranks to the end; `mlflow_run` = (store URI, run id) for rank 0's live loss."""
    state.mkdir(parents=True, exist_ok=True)
    (state / "config.json").write_text(cfg.to_json())
    # Under the Training Operator (PET_* set) torchrun reads nodes, rank and master from the environment.
    rendezvous = [] if os.environ.get("PET_MASTER_PORT") else [f"--master_port={_free_port()}"]
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={cfg.train.num_procs}",
           *rendezvous, "--max_restarts=0", "-m", "components.train.worker",
           "--config-file", str(state / "config.json"), "--dataset", str(dataset_dir),
           "--output", str(checkpoint_dir), "--state", str(state), "--metadata", json.dumps(metadata)]
    if mlflow_run is not None:
        cmd += ["--mlflow-uri", mlflow_run[0], "--mlflow-run", mlflow_run[1]]
    env = dict(os.environ)
    env.setdefault("DS_ACCELERATOR", "cuda" if _has_cuda() else "cpu")
    env["VIDCUSTOM_TRAIN_LAUNCHER_PID"] = str(os.getpid())  # the "group" fault drill kills from here down
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])
    log.info("launching %d DeepSpeed ranks: %s", cfg.train.num_procs, " ".join(cmd))
    try:
        proc = subprocess.run(cmd, env=env, timeout=cfg.train.timeout_s)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"training exceeded train.timeout_s={cfg.train.timeout_s}s and was stopped; re-run to "
                           f"resume from the state in {state}") from None
    if proc.returncode != 0:
        progress = (state / "progress.json").read_text() if (state / "progress.json").is_file() else "none"
        raise RuntimeError(f"training ranks failed (exit code {proc.returncode}): a rank died or raised, see the "
                           f"log above. Saved progress: {progress}; re-run the step to resume from {state}")


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def run(dataset_dir: str | Path, checkpoint_dir: str | Path, cfg: RunConfig, data_version: str | None = None) -> dict:
    """Train SUGAR on a validated dataset; returns a summary (final loss, steps, wall time, MLflow run id)."""
    from components.config import check_ranks
    from components.locks import held

    check_ranks(cfg)  # here too: a KFP task or `python -m components.train` never passes the CLI's checks
    dataset_dir, checkpoint_dir = Path(dataset_dir).resolve(), Path(checkpoint_dir).resolve()

    state = cfg.state / "train" / state_key(cfg, data_version)
    # One trainer per key: a second run with the same data and config waits, then finds the training done
    # and only writes its checkpoint (the same weights) instead of interleaving ranks in one state directory.
    with held(state.with_name(state.name + ".lock"), f"training state {state}", cfg.train.timeout_s):
        return _run_locked(dataset_dir, checkpoint_dir, cfg, data_version, state)


def _run_locked(dataset_dir: Path, checkpoint_dir: Path, cfg: RunConfig, data_version: str | None, state: Path) -> dict:
    import mlflow

    from components.tracking import model_tags, step_run

    t0 = time.time()
    with step_run(cfg, "train", data_version, model=model_tags(cfg.model)) as run:
        # init_seed: the untrained weights, which evaluation's baseline rebuilds from the checkpoint's record.
        launch(cfg, dataset_dir, checkpoint_dir, state, {"data_version": data_version, "preset": cfg.preset,
                                                         "strategy": cfg.train.strategy, "init_seed": cfg.train.seed},
               (mlflow.get_tracking_uri(), run.info.run_id))
        plan = json.loads((state / "plan.json").read_text())
        mlflow.log_dict(plan, "stage_plan.json")
        mlflow.set_tag("stage_plan", " -> ".join(f"{s['name']}(p={s['synthetic_p']},frozen={s['frozen_blocks']})"
                                                 for s in plan))
        lines = (state / "metrics.jsonl").read_text().splitlines()
        records = [r for r in map(json.loads, filter(str.strip, lines)) if "event" not in r]
        resumed = [r for r in map(json.loads, filter(str.strip, lines)) if r.get("event") == "resume"]
        if resumed:
            mlflow.set_tag("resumed_from", ", ".join(f"{r['stage']}@{r['step']}" for r in resumed))
        offset, seen, step_base = 0, {}, {}
        for s in plan:  # one global step axis across stages
            step_base[s["name"]] = offset
            offset += s["steps"]
        for r in records:
            seen[(r["stage"], r["step"])] = r
        from components.train.live_metrics import metric_points

        # Rank 0 logged most points live; add those the run lacks (live logging stopped, or a resumed run's
        # steps from before the resume), so the history holds every step once.
        client = mlflow.tracking.MlflowClient()
        have = {m.step for m in client.get_metric_history(run.info.run_id, "loss")}
        metrics = [m for r in seen.values() if step_base[r["stage"]] + r["step"] not in have
                   for m in metric_points(r, step_base[r["stage"]] + r["step"])]
        for i in range(0, len(metrics), 900):
            client.log_batch(run.info.run_id, metrics=metrics[i:i + 900])
        final = [r for r in records if r["step"] == plan[-1]["steps"] and r["stage"] == plan[-1]["name"]]
        summary = {"run_id": run.info.run_id, "final_loss": final[-1]["loss"] if final else None,
                   "first_loss": records[0]["loss"] if records else None, "steps": offset,
                   "wall_s": round(time.time() - t0, 1), "checkpoint": str(checkpoint_dir),
                   "resumed_from": [f"{r['stage']}@{r['step']}" for r in resumed]}
        mlflow.log_metrics({k: v for k, v in summary.items() if k in ("final_loss", "first_loss", "wall_s")
                            and v is not None})
        mlflow.log_artifact(str(checkpoint_dir / "vidcustom.json"))
    shutil.rmtree(state / "ds", ignore_errors=True)  # done: resume state no longer needed
    return summary
