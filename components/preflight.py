"""Checks of the environment before any work: the state dir takes writes, the local MLflow stores are
writable and of a schema the installed MLflow knows, the machine fits the config, the DVC remote answers.
A fault is one line naming the setting to change, not a failure minutes in."""

from __future__ import annotations

from pathlib import Path

from .config import RunConfig, check_machine
from .storage import StorageError, ensure_writable_dir, write_problem


def preflight(cfg: RunConfig, local_run: bool = False) -> None:
    """Check the environment before any work, so a fault is one line naming the setting to change, not a
    failure minutes in: the state dir takes writes (created when missing), the local MLflow stores are
    writable and of a schema the installed MLflow knows. local_run (all steps on this machine, as
    `vidcustom run` and `pretrain`): also the machine-dependent settings and the DVC remote."""
    from .tracking.buffer import buffer_uri

    if local_run:
        check_machine(cfg)  # first: it changes nothing on disk
    ensure_writable_dir(cfg.state, cfg.state_setting())
    check_mlflow_store(cfg.tracking_uri(), cfg.tracking_setting())
    check_mlflow_store(buffer_uri(cfg.state), cfg.state_setting(), create=False)
    if local_run and cfg.validate_.push:
        from .dataset_versioning import check_remote

        check_remote(cfg.dvc_remote(), cfg.validate_.remote_endpoint_url)


def _schema_revisions() -> tuple[str, set[str]]:
    """(head, every revision) of the installed MLflow's database migrations."""
    import mlflow.store
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(Path(mlflow.store.__file__).parent / "db_migrations"))
    return script.get_current_head(), {r.revision for r in script.walk_revisions()}


def check_mlflow_store(uri: str, setting: str, create: bool = True) -> None:
    """A local SQLite MLflow store must take writes and have a schema the installed MLflow knows. MLflow itself
    says 'attempt to write a readonly database', and for a store written by a newer MLflow suggests
    `mlflow db upgrade`, which cannot work. Raises StorageError naming the store and `setting`."""
    import sqlite3

    if not uri.startswith("sqlite:///"):
        return
    db = Path(uri.removeprefix("sqlite:///")).expanduser().absolute()
    if not create and not db.is_file():
        return
    ensure_writable_dir(db.parent, setting, parents=True)  # SQLite writes its journal beside the database
    if not db.is_file():
        return
    try:
        open(db, "r+b").close()
    except OSError as err:
        raise StorageError(write_problem(db, err, setting)) from None
    con = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:
        return  # no tables yet (MLflow creates them), or not a database (MLflow names that itself)
    finally:
        con.close()
    if not row:
        return
    import mlflow

    head, known = _schema_revisions()
    revision = row[0]
    if revision not in known:
        raise StorageError(f"{setting}: the MLflow store {db} was written by a newer MLflow (schema revision "
                           f"{revision}, unknown to the installed mlflow {mlflow.__version__}); run with the "
                           f"MLflow that wrote it, or point {setting} at another store")
    if revision != head:
        raise StorageError(f"{setting}: the MLflow store {db} has an older schema ({revision}) than mlflow "
                           f"{mlflow.__version__} uses ({head}); back it up, then run: mlflow db upgrade "
                           f"sqlite:///{db}")
