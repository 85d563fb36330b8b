"""Faults of the environment fail at start-up, before any work, with one line that names the path or setting
and the fix, no traceback unless asked (--debug, VIDCUSTOM_DEBUG=1); the end-of-run hint fits the store.

Read-only and full file systems are real: tmpfs mounts in a private user + mount namespace (`unshare -rm`),
which behave the same whether the tests run as root (which passes every permission check) or not."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, make_dataset

pytest_plugins = ["s3_server"]  # the moto_endpoint and s3 fixtures (tests/s3_server.py)


def _can_mount() -> bool:
    if not shutil.which("unshare") or sys.platform != "linux":
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /tmp"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(not _can_mount(), reason="needs unshare -rm (user and mount namespaces) to "
                                 "mount a read-only or tiny tmpfs")


def run(cmd: list[str], env: dict, mounts: tuple[tuple[str, Path], ...] = ()) -> subprocess.CompletedProcess:
    """`cmd` in a subprocess with `env` added; `mounts`: (tmpfs options, directory) mounted first."""
    if mounts:
        script = " && ".join(f"mount -t tmpfs -o {opts} tmpfs {shlex.quote(str(d))}" for opts, d in mounts)
        cmd = ["unshare", "-rm", "sh", "-c", f'{script} && exec "$@"', "sh", *cmd]
    return subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env}, capture_output=True,
                          text=True, timeout=300)


def vidcustom(*args: str, env: dict, mounts=()) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "pipelines.cli", *args], env, mounts)


def one_error(proc: subprocess.CompletedProcess) -> str:
    """The single `error:` line of a failed CLI call, which must show no traceback."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0].removeprefix("error: ")


@pytest.fixture
def home_env(tmp_path, monkeypatch) -> dict:
    """The variables a user's shell would have: no tracking URI, no debug."""
    for name in ("MLFLOW_TRACKING_URI", "VIDCUSTOM_DEBUG", "VIDCUSTOM_DVC_REMOTE", "VIDCUSTOM_PIPELINE_RUN"):
        monkeypatch.delenv(name, raising=False)
    return {"VIDCUSTOM_HOME": str(tmp_path / "state")}


def test_bad_values_stop_the_run_before_any_work(tmp_path, home_env):
    proc = vidcustom("run", "--preset", "ci", "--set", "evaluate.benchmark=nosuch", "--set", "export.opset=3",
                     "--set", "register.model_name=", env=home_env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    for field in ("evaluate.benchmark='nosuch' is unknown", "export.opset=3 is outside",
                  "register.model_name is empty"):
        assert f"\n  {field}" in proc.stderr
    from components.config import available_cores

    cores = available_cores()
    proc = vidcustom("run", "--preset", "ci", "--set", f"train.num_procs={cores + 1}", env=home_env)
    if "GPU" not in proc.stderr:  # with GPUs a rank per GPU is checked instead
        assert one_error(proc).startswith(f"train.num_procs={cores + 1} is more ranks than the {cores} CPU core(s) "
                                          f"available here; set train.num_procs to at most {cores}, or "
                                          "train.allow_oversubscribe=true")
    assert not (tmp_path / "state").exists()  # nothing was created, let alone run


def test_missing_home_is_named_and_debug_shows_the_traceback(tmp_path, home_env):
    home = tmp_path / "unmounted" / "state"
    env = {**home_env, "VIDCUSTOM_HOME": str(home)}
    assert one_error(vidcustom("run", "--preset", "ci", env=env)) == (
        f"VIDCUSTOM_HOME: {home} does not exist, nor does its parent {home.parent} (a volume not mounted, or a "
        f"typo?); create it (mkdir -p {home}), or point VIDCUSTOM_HOME at a writable directory")
    proc = vidcustom("run", "--preset", "ci", "--debug", env=env)  # --debug sets VIDCUSTOM_DEBUG=1
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "StorageError: VIDCUSTOM_HOME" in proc.stderr
    assert not home.parent.exists()


def test_a_sound_environment_passes_and_only_the_state_dir_is_made(tmp_path, monkeypatch):
    from components.preflight import preflight
    from components.config import load_config

    monkeypatch.setenv("VIDCUSTOM_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("VIDCUSTOM_DVC_REMOTE", raising=False)
    preflight(load_config(preset="ci"), local_run=True)
    made = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    # the state dir and the default DVC remote's folders, no probe file left behind, no store, no log
    assert made == ["state", "state/dvc-remote", "state/dvc-remote/files", "state/dvc-remote/files/md5"]


def test_home_that_is_a_file_is_named(tmp_path, monkeypatch):
    from components.preflight import preflight
    from components.config import load_config
    from components.storage import StorageError

    afile = tmp_path / "afile"
    afile.write_text("")
    monkeypatch.setenv("VIDCUSTOM_HOME", str(afile))
    with pytest.raises(StorageError) as info:
        preflight(load_config(preset="ci"))
    assert str(info.value) == f"VIDCUSTOM_HOME: {afile} is a file, not a directory; point VIDCUSTOM_HOME at a " \
        "writable directory"


@needs_mount
def test_read_only_and_full_home_are_named_with_the_fix(tmp_path, home_env):
    ro, full = tmp_path / "ro", tmp_path / "full"
    ro.mkdir()
    full.mkdir()
    mounts = (("ro", ro), ("size=64k", full))
    got = one_error(vidcustom("run", "--preset", "ci", env={**home_env, "VIDCUSTOM_HOME": str(ro / "state")},
                              mounts=mounts))
    assert got == (f"VIDCUSTOM_HOME: {ro / 'state'} is on a read-only file system; point VIDCUSTOM_HOME at a "
                   "writable directory")
    got = one_error(vidcustom("run", "--preset", "ci", env={**home_env, "VIDCUSTOM_HOME": str(full)}, mounts=mounts))
    assert got.startswith(f"VIDCUSTOM_HOME: {full} is full (") and got.endswith(
        "free); free space there, or point VIDCUSTOM_HOME at a writable directory")
    # a step's own CLI checks the same before it reads its input
    proc = run([sys.executable, "-m", "components.validate", str(tmp_path / "nodata"), str(tmp_path / "report"),
                "--preset", "ci"], {**home_env, "VIDCUSTOM_HOME": str(ro)}, mounts)
    assert one_error(proc).startswith(f"VIDCUSTOM_HOME: {ro} is on a read-only file system")


def _store(db: Path, revision: str | None = None) -> str:
    """A real MLflow SQLite store at `db`, its schema revision then set to `revision`."""
    import mlflow

    uri = f"sqlite:///{db}"
    db.parent.mkdir(parents=True, exist_ok=True)
    mlflow.MlflowClient(uri).search_experiments()  # creates the tables, at the installed MLflow's head
    if revision:
        with sqlite3.connect(db) as con:
            con.execute("UPDATE alembic_version SET version_num = ?", (revision,))
        con.close()
    return uri


def test_store_from_a_newer_or_older_mlflow_is_named(tmp_path, home_env):
    import mlflow

    from components.preflight import _schema_revisions, check_mlflow_store
    from components.storage import StorageError

    db = tmp_path / "state" / "mlflow.db"
    _store(db, "ffff00001111")
    assert one_error(vidcustom("run", "--preset", "ci", env=home_env)) == (
        f"VIDCUSTOM_HOME: the MLflow store {db} was written by a newer MLflow (schema revision ffff00001111, "
        f"unknown to the installed mlflow {mlflow.__version__}); run with the MLflow that wrote it, or point "
        "VIDCUSTOM_HOME at another store")
    assert not (tmp_path / "state" / "logs").exists()  # stopped before the run's log file
    head, known = _schema_revisions()
    older = next(r for r in known if r != head)
    other = tmp_path / "elsewhere" / "mlflow.db"
    uri = _store(other, older)
    with pytest.raises(StorageError) as info:
        check_mlflow_store(uri, "mlflow.tracking_uri")
    assert str(info.value) == (f"mlflow.tracking_uri: the MLflow store {other} has an older schema ({older}) than "
                               f"mlflow {mlflow.__version__} uses ({head}); back it up, then run: mlflow db upgrade "
                               f"sqlite:///{other}")
    check_mlflow_store(_store(tmp_path / "current" / "mlflow.db"), "mlflow.tracking_uri")  # the head passes


MID_RUN = """
import os
import sys
import mlflow
from components.cli import main_wrapper
state, what = sys.argv[1:]
if what == "setup":  # a store and a train folder, before the file system turns read-only
    mlflow.MlflowClient(f"sqlite:///{state}/mlflow.db").search_experiments()
    os.makedirs(f"{state}/train")
elif what == "file":
    main_wrapper(lambda: open(f"{state}/train/metrics.jsonl", "a").write("x"))
else:  # MLflow's own error ('attempt to write a readonly database'), translated
    main_wrapper(lambda: mlflow.MlflowClient(f"sqlite:///{state}/mlflow.db").create_experiment("x"))
"""


@needs_mount
@pytest.mark.parametrize("what", ["file", "store"])
def test_state_turning_read_only_mid_run_is_translated_at_the_top(tmp_path, home_env, what):
    """After start-up (a volume remounted read-only): the CLI's top level names the state dir, no traceback."""
    state = tmp_path / "state"
    state.mkdir()
    py = f"{shlex.quote(sys.executable)} -c {shlex.quote(MID_RUN)} {shlex.quote(str(state))}"
    script = f"mount -t tmpfs tmpfs {state} && {py} setup && mount -o remount,ro {state} && exec {py} {what}"
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **home_env}, timeout=300)
    where = state / "train" / "metrics.jsonl" if what == "file" else state
    assert one_error(proc) == (f"VIDCUSTOM_HOME: {where} is on a read-only file system; point VIDCUSTOM_HOME at a "
                               "writable directory")


REMOTE_FIX = ("point validate.remote (or $VIDCUSTOM_DVC_REMOTE) at a remote that takes writes, or set "
              "validate.push=false")


@needs_mount
def test_dvc_remote_refusing_writes_stops_the_run_before_any_work(tmp_path, home_env):
    ro = tmp_path / "ro"
    ro.mkdir()
    got = one_error(vidcustom("run", "--preset", "ci", "--set", f"validate.remote={ro}/remote", env=home_env,
                              mounts=(("ro", ro),)))
    assert got == f"DVC remote '{ro}/remote': {ro}/remote is on a read-only file system; {REMOTE_FIX}"
    assert os.listdir(tmp_path / "state") == []  # checked, nothing written: no log, no store, no step


@needs_mount
def test_dvc_remote_filling_up_during_a_push_is_one_line(tmp_path):
    """The remote takes the probe write, then runs out of space mid-push: dvc-data logs a traceback per object
    and returns only a count; the push reports the cause once."""
    dataset = make_dataset(tmp_path / "dataset")
    (dataset / "weights.bin").write_bytes(os.urandom(2 << 20))  # more than the remote has left
    remote = tmp_path / "remote"
    remote.mkdir()
    script = ("import sys, logging; logging.basicConfig()\n"
              "from components.dataset_versioning import RemoteError, push\n"
              "try: push(sys.argv[1], sys.argv[2])\n"
              "except RemoteError as err: print(err)\n")
    proc = run([sys.executable, "-c", script, str(dataset), str(remote)], {}, (("size=1536k", remote),))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    got = proc.stdout.strip()
    assert got.startswith(f"DVC remote '{remote}': {remote} is full (") and got.endswith(
        f"free); free space there, or {REMOTE_FIX}")


def test_s3_remote_refusing_writes_is_one_line(s3, tmp_path, monkeypatch):
    """Credentials that may read the bucket but not write it (a real 403 from the S3 server)."""
    import boto3
    from moto import settings

    from components.dataset_versioning import RemoteError, push

    iam = boto3.client("iam", endpoint_url=s3.endpoint)
    iam.create_user(UserName="reader")
    iam.put_user_policy(UserName="reader", PolicyName="read-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", "Action": [
            "s3:ListBucket", "s3:GetObject", "s3:HeadBucket", "s3:GetBucketLocation"]}]}))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # the server now checks IAM policies
    with pytest.raises(RemoteError) as info:
        push(make_dataset(tmp_path / "dataset"), f"s3://{s3.bucket}/dvc")
    assert str(info.value) == (f"DVC remote 's3://{s3.bucket}/dvc' refuses writes at {s3.endpoint} (access denied: "
                               f"Access Denied); grant these credentials ($AWS_ACCESS_KEY_ID) s3:PutObject there, "
                               f"or {REMOTE_FIX}")


def test_end_of_run_hint_fits_the_store():
    from pipelines.summary import mlflow_hint

    assert mlflow_hint("http://127.0.0.1:5000") == ["  MLflow:   open http://127.0.0.1:5000 in a browser"]
    assert mlflow_hint("HTTPS://mlflow.example.com/") == ["  MLflow:   open HTTPS://mlflow.example.com/ in a browser"]
    assert mlflow_hint("sqlite:////data/state/mlflow.db") == [
        "  MLflow:   mlflow ui --backend-store-uri sqlite:////data/state/mlflow.db   (then http://127.0.0.1:5000)"]
    buffered = mlflow_hint("http://srv:5000", "sqlite:////s/mlflow-buffer/mlflow.db")
    assert "the server http://srv:5000 was unreachable" in buffered[0]
    assert "vidcustom mlflow sync" in buffered[1]
    assert buffered[2].endswith("mlflow ui --backend-store-uri sqlite:////s/mlflow-buffer/mlflow.db")
    assert not any("--backend-store-uri http" in line for hint in (buffered, mlflow_hint("http://x"))
                   for line in hint)
