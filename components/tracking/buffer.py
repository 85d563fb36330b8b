"""The local MLflow buffer for runs logged while the tracking server is unreachable.

When a step's server stays unreachable after `mlflow.retries` tries and `mlflow.offline=buffer` (the
default), or stops answering in the middle of the step (components/tracking/failover.py), the step logs to

    <state>/mlflow-buffer/mlflow.db      an SQLite MLflow store (tracking and model registry)
    <state>/mlflow-buffer/mlartifacts/   its artifacts (runs' and logged models')
    <state>/mlflow-buffer/pending.json   the manifest: every buffered run (target server, experiment,
                                         step, pipeline run, parent) and model version, and where each
                                         went once synced

exactly as it would to the server (the step code does not know), so nothing is lost. The target is always
the configured server, never the buffer itself (MLflow rewrites $MLFLOW_TRACKING_URI to the store in use;
components/tracking/runs.configure undoes that, and sync refuses the buffer as a target).

`vidcustom mlflow sync` (components/tracking/sync.py) uploads it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from .store import init_sqlite_store

log = logging.getLogger(__name__)

BUFFER_DIRNAME = "mlflow-buffer"
MANIFEST = "pending.json"


class TrackingBufferedWarning(UserWarning):
    """A step logged to the local buffer because its tracking server was unreachable."""


def buffer_dir(state: str | Path) -> Path:
    return Path(state) / BUFFER_DIRNAME


def buffer_uri(state: str | Path) -> str:
    return f"sqlite:///{buffer_dir(state) / 'mlflow.db'}"


def manifest_path(state: str | Path) -> Path:
    return buffer_dir(state) / MANIFEST


def is_buffer_uri(uri: str, state: str | Path) -> bool:
    return uri == buffer_uri(state)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@contextmanager
def _manifest(state: str | Path):
    """Read-modify-write pending.json under an exclusive lock (steps and sync may touch it at once)."""
    path = manifest_path(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(MANIFEST + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = _read_manifest(path)
        yield data
        tmp = path.with_name(f"{MANIFEST}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(tmp, path)


def _read_manifest(path: Path) -> dict:
    data: dict = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except ValueError:  # a damaged manifest: the buffer store itself still has every run
            log.warning("%s is unreadable; rebuilding it from the buffer store", path)
    data.setdefault("version", 1)
    data["buffer_store"] = buffer_uri(path.parent.parent)
    data.setdefault("runs", {})
    data.setdefault("model_versions", {})
    return data


def load_manifest(state: str | Path) -> dict:
    return _read_manifest(manifest_path(state))


def activate(cfg, target_uri: str, err: BaseException | None = None, cause: str | None = None) -> str:
    """Switch this process to the buffer store (warning that it does and why); returns the buffer's URI."""

    state = cfg.state
    with _manifest(state):
        pass  # creates the directory and pending.json
    init_sqlite_store(buffer_uri(state))
    if cause is None:
        cause = f"unreachable after {getattr(err, 'tries', cfg.mlflow.retries)} tries ({getattr(err, 'last', err)})"
    msg = (f"MLflow tracking server {target_uri} {'is ' if err is not None else ''}{cause}: logging to the local "
           f"buffer {buffer_dir(state)} instead (mlflow.offline=buffer). Nothing is lost; when the server is back, "
           f"upload with `vidcustom mlflow sync` (pending runs: {manifest_path(state)}).")
    log.warning(msg)
    warnings.warn(msg, TrackingBufferedWarning, stacklevel=3)
    return buffer_uri(state)


def buffering(state: str | Path, target_uri: str, pipeline_run: str) -> bool:
    """Whether pipeline execution `pipeline_run` has runs for `target_uri` in the buffer not synced yet."""
    runs = load_manifest(state)["runs"] if manifest_path(state).is_file() else {}
    return any(e.get("pipeline_run") == pipeline_run and e.get("target_uri") == target_uri
               and target_uri not in e.get("synced", {}) for e in runs.values())


def record_run(state: str | Path, run, target_uri: str, experiment: str | None = None) -> None:
    """List a buffered run (an mlflow Run or ActiveRun) in pending.json."""
    if is_buffer_uri(target_uri, state):  # the buffer is never a run's upload target
        target_uri = None
    tags = run.data.tags
    entry = {"target_uri": target_uri, "experiment": experiment, "experiment_id": run.info.experiment_id,
             "step": tags.get("vidcustom.step"), "pipeline_run": tags.get("vidcustom.pipeline_run"),
             "parent_run_id": tags.get("mlflow.parentRunId"), "run_name": run.info.run_name}
    with _manifest(state) as m:
        old = m["runs"].get(run.info.run_id, {})
        m["runs"][run.info.run_id] = {**old, **{k: v for k, v in entry.items() if v is not None or k not in old},
                                      "buffered_at": old.get("buffered_at", _now()), "synced": old.get("synced", {})}


def record_model_versions(state: str | Path, client, run_id: str, target_uri: str) -> None:
    """List the model versions a buffered run registered in pending.json (their aliases are read at sync)."""
    try:
        versions = client.search_model_versions(f"run_id = '{run_id}'")
        with _manifest(state) as m:
            for v in versions:
                old = m["model_versions"].get(f"{v.name}/{v.version}", {})
                m["model_versions"][f"{v.name}/{v.version}"] = {
                    "name": v.name, "version": str(v.version), "run_id": run_id, "target_uri": target_uri,
                    "recorded_at": old.get("recorded_at", _now()), "synced": old.get("synced", {})}
    except Exception as err:  # noqa: BLE001 - sync finds the versions in the buffer registry anyway
        log.warning("could not list run %s's model versions in %s: %s", run_id, manifest_path(state), err)
