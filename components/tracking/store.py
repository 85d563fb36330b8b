"""Local MLflow stores: SQLite created under a lock, experiments with artifacts beside the store, the commit."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

_sqlite_ready: set[str] = set()


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


def init_sqlite_store(uri: str) -> None:
    """Build this process's MLflow stores (tracking and registry) for a SQLite URI under an exclusive file
    lock beside the database: MLflow creates and migrates a fresh schema without one, so two runs opening a
    fresh store at once both migrate it and one fails (`duplicate column name`). MLflow caches the stores
    per URI, so later clients reuse them."""
    if not uri.startswith("sqlite:///") or uri in _sqlite_ready:
        return
    import fcntl

    from mlflow.tracking._model_registry.utils import _get_store as registry_store
    from mlflow.tracking._tracking_service.utils import _get_store as tracking_store

    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".init.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also on a crash
        tracking_store(uri)
        registry_store(uri)
    _sqlite_ready.add(uri)


def artifact_location(uri: str) -> str | None:
    if uri.startswith("sqlite:///"):  # keep artifacts beside the local store, not in the working dir
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return None


def ensure_experiment(client, name: str, uri: str) -> str:
    """The experiment's id in the client's store, created (artifacts beside a local store) when missing."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location(uri))
        except Exception:  # another step created it meanwhile
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    return exp.experiment_id
