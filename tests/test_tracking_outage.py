"""Fault injection for MLflow tracking: the server going away at each point of a step, killed and failed
runs, two runs creating a fresh store at once, and `vidcustom mlflow sync` in the documented set-up
($MLFLOW_TRACKING_URI), interrupted and repeated. Each test injects the fault and checks what is kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest_plugins = ["mlflow_server"]
pytestmark = pytest.mark.usefixtures("bounded_mlflow_http")

ROOT = Path(__file__).resolve().parents[1]
HANG_GUARD_S = 600  # a subprocess still running after this is a hang (generous: shared 2-core machines)


def _client(uri: str):
    """A client for checking a store. The step's process stays on the buffer after a failover, so forget
    that first, as a new process would."""
    from mlflow import MlflowClient

    from components.tracking.failover import reset

    reset()
    return MlflowClient(uri, uri)


def _steps(uri: str, pipeline_run: str) -> dict[str, list]:
    """The active runs of one pipeline execution in a store, by step."""
    client = _client(uri)
    exp = client.get_experiment_by_name("vidcustom")
    out: dict[str, list] = {}
    for r in client.search_runs([exp.experiment_id], f"tags.`vidcustom.pipeline_run` = '{pipeline_run}'"):
        out.setdefault(r.data.tags["vidcustom.step"], []).append(r)
    return out


def _sync(state, uri: str | None = None) -> dict:
    from components.tracking.sync import sync

    return sync(state, uri, retries=1, retry_wait_s=0.1)


def _buffer_runs(state) -> list:
    from components.tracking.buffer import buffer_uri

    client = _client(buffer_uri(state))
    return client.search_runs([client.get_experiment_by_name("vidcustom").experiment_id])


def _nothing_moved(done: dict) -> bool:
    return not (done["uploaded_runs"] or done["merged_parents"] or done["updated_parents"] or done["model_versions"]
                or done["aliases"])


def _pyfunc():
    import mlflow.pyfunc

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    return Echo()


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n" + textwrap.dedent(body))
    return path


def _python(script: Path, env: dict, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script)], env=env, cwd=script.parent, capture_output=True, text=True,
                          timeout=HANG_GUARD_S, **kw)


# -- the server goes away in the middle of a step --------------------------------------------------------


@pytest.mark.parametrize("fault", ["step_start", "metrics", "artifact", "step_end"])
def test_outage_during_a_step_continues_in_the_buffer_and_sync_completes_the_run(
        fault, run_config, mlflow_server, monkeypatch, tmp_path):
    """Killed after the step's health check (before its run exists), while it logs metrics, at an artifact
    upload, or at its run's end: the step finishes; after sync the server holds one run for the step with
    every metric point once, its params, tags, artifacts and FINISHED, under one FINISHED parent."""
    import mlflow

    from components import tracking
    from components.tracking import liveness as tracking_liveness
    from components.tracking.buffer import TrackingBufferedWarning, load_manifest

    server, pipeline_run = mlflow_server, f"pipe-{fault}"
    monkeypatch.setenv("VIDCUSTOM_PIPELINE_RUN", pipeline_run)
    cfg = run_config(f"mlflow.tracking_uri={server.uri}")
    if fault == "step_start":  # dies right after the health check, before the parent and the run are looked up
        sweep = tracking_liveness.end_stale_runs
        monkeypatch.setattr(tracking_liveness, "end_stale_runs", lambda *a, **k: (sweep(*a, **k), server.stop()))
    report = tmp_path / "report.txt"
    report.write_text("kept\n")
    try:
        with pytest.warns(TrackingBufferedWarning, match=f"{server.uri} stopped answering"):
            with tracking.step_run(cfg, "train", "dv-outage") as run:
                for i in range(10):
                    if i == 5 and fault == "metrics":
                        server.stop()
                    mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
                if fault == "artifact":
                    server.stop()
                mlflow.log_artifact(str(report), "reports")
                mlflow.log_param("late.param", "kept")
                mlflow.set_tag("late.tag", "kept")
                if fault == "step_end":
                    server.stop()
    finally:
        server.start()
    entries = load_manifest(cfg.state)["runs"].values()
    assert {e["target_uri"] for e in entries} == {server.uri}  # the server, never the buffer

    done = _sync(cfg.state)
    assert done["pending"] == [], done
    steps = _steps(server.uri, pipeline_run)
    assert {k: len(v) for k, v in steps.items()} == {"pipeline": 1, "train": 1}
    parent, train = steps["pipeline"][0], steps["train"][0]
    if fault != "step_start":  # the run the step started on the server is the one completed
        assert train.info.run_id == run.info.run_id
    client = _client(server.uri)
    assert [(m.step, m.value) for m in client.get_metric_history(train.info.run_id, "loss")] == \
        [(i, 1.0 / (i + 1)) for i in range(10)]
    assert train.data.params["late.param"] == "kept" and train.data.params["train.stage1_steps"]
    assert train.data.tags["late.tag"] == "kept" and train.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert {f.path for f in client.list_artifacts(train.info.run_id)} >= {"config.json", "reports"}
    uploaded = client.download_artifacts(train.info.run_id, "reports/report.txt", str(tmp_path / "dl"))
    assert Path(uploaded).read_text() == "kept\n"
    assert (train.info.status, parent.info.status) == ("FINISHED", "FINISHED")
    assert _nothing_moved(_sync(cfg.state))


@pytest.mark.slow
def test_a_hung_server_costs_a_bounded_wait_then_the_step_goes_on(run_config, mlflow_server, tmp_path):
    """The server accepts connections and never answers (MLflow's defaults would retry for minutes): with
    no MLFLOW_HTTP_* settings of its own, the step waits one bounded call (about mlflow.failover_s) and
    finishes in the buffer."""
    server = mlflow_server
    script = _script(tmp_path, "hung.py", f"""
        import json, time
        from pathlib import Path
        import mlflow
        from components.config import load_config
        from components.tracking import step_run

        # failover_s=6 (default 30): the same bounded wait, in a fifth of the time
        cfg = load_config(preset="ci", overrides=["mlflow.tracking_uri={server.uri}", "mlflow.failover_s=6"])
        with step_run(cfg, "train") as run:
            mlflow.log_metric("loss", 1.0, step=0)
            Path("ready").touch()
            while not Path("hung").exists():
                time.sleep(0.1)
            mlflow.log_metric("loss", 0.5, step=1)
            mlflow.log_metric("loss", 0.25, step=2)
        print(json.dumps({{"run_id": run.info.run_id}}))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["VIDCUSTOM_HOME"] = str(tmp_path / "state")
    proc = subprocess.Popen([sys.executable, str(script)], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + HANG_GUARD_S
        while not (tmp_path / "ready").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        server.hang()
        (tmp_path / "hung").touch()
        out, err = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        proc.kill()
        server.start()
    assert proc.returncode == 0, err[-3000:]
    assert "stopped answering" in err and "timed out" in err.lower()
    rid = json.loads(out.strip().splitlines()[-1])["run_id"]
    _sync(tmp_path / "state")
    client = _client(server.uri)
    assert [m.value for m in client.get_metric_history(rid, "loss")] == [1.0, 0.5, 0.25]
    assert client.get_run(rid).info.status == "FINISHED"


@pytest.mark.parametrize("fault", ["model_upload", "before_version", "after_version"])
def test_outage_in_the_registry(fault, run_config, mlflow_server, monkeypatch, tmp_path):
    """The register step read the server's champion (v1), then the server died while uploading the model's
    files, before registering v2 or after: the model (all its files), v2 with its aliases, description and
    tags are on the server after sync, champion moved as gated."""
    import mlflow
    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository

    from components.tracking import step_run
    from components.tracking.buffer import TrackingBufferedWarning

    server, model = mlflow_server, f"vidcustom-registry-{fault.replace('_', '-')}"
    upload, sent, in_step = HttpArtifactRepository.log_artifact, [], [True]
    cfg = run_config(f"mlflow.tracking_uri={server.uri}")
    with step_run(cfg, "register"):  # the server's champion: v1
        info = mlflow.pyfunc.log_model(name="model", python_model=_pyfunc(), pip_requirements=[])
        v1 = mlflow.register_model(info.model_uri, model).version
        mlflow.MlflowClient().set_registered_model_alias(model, "champion", v1)
    try:
        with pytest.warns(TrackingBufferedWarning):
            with step_run(cfg, "register") as run:
                client = mlflow.MlflowClient()
                champion = client.get_model_version_by_alias(model, "champion").version  # the gate's baseline
                if fault == "model_upload":  # dies after the model's first file reached the server
                    def dies_midway(repo, local_file, artifact_path=None):
                        if sent and in_step:
                            server.stop()
                        sent.append(local_file)
                        return upload(repo, local_file, artifact_path)

                    monkeypatch.setattr(HttpArtifactRepository, "log_artifact", dies_midway)
                info = mlflow.pyfunc.log_model(name="model", python_model=_pyfunc(), pip_requirements=[])
                if fault == "before_version":
                    server.stop()
                version = mlflow.register_model(info.model_uri, model, tags={"gate": "passed",
                                                                             "gate_champion": champion}).version
                if fault == "after_version":
                    server.stop()
                client.update_model_version(model, version, description="gate passed")
                for alias in ("challenger", "champion"):
                    client.set_registered_model_alias(model, alias, version)
                assert sorted(client.get_model_version(model, version).aliases) == ["challenger", "champion"]
    finally:
        in_step.clear()
        server.start()
    done = _sync(cfg.state)
    assert done["pending"] == [] and done["aliases_skipped"] == [], done
    client = _client(server.uri)
    versions = client.search_model_versions(f"name = '{model}'")
    assert sorted(v.version for v in versions) == ["1", "2"]  # no duplicate of v2
    v2 = client.get_model_version(model, "2")
    assert (v2.tags["gate"], v2.description) == ("passed", "gate passed")
    assert sorted(v2.aliases) == ["challenger", "champion"]
    assert v2.run_id == run.info.run_id  # the step's own server run
    assert "vidcustom.continues" not in v2.tags and "vidcustom.server_numbers" not in v2.tags
    mlflow.set_tracking_uri(server.uri)
    mlflow.set_registry_uri(server.uri)
    loaded = mlflow.artifacts.download_artifacts(f"models:/{model}@champion", dst_path=str(tmp_path / "dl"))
    assert {p.name for p in Path(loaded).iterdir()} >= {"MLmodel", "python_model.pkl", "requirements.txt"}
    assert _nothing_moved(_sync(cfg.state))


def test_outage_at_the_pipeline_end(run_config, mlflow_server, monkeypatch, tmp_path):
    """Killed between the last step and the parent run's end: the end is buffered, sync applies it."""
    import mlflow

    from components.tracking import begin_pipeline, end_pipeline, step_run
    from components.tracking.buffer import TrackingBufferedWarning

    server = mlflow_server
    monkeypatch.setenv("VIDCUSTOM_PIPELINE_RUN", "pipe-end")
    cfg = run_config(f"mlflow.tracking_uri={server.uri}")
    pipeline = begin_pipeline(cfg)
    with step_run(cfg, "validate"):
        mlflow.log_metric("rows", 8)
    server.stop()
    try:
        with pytest.warns(TrackingBufferedWarning):
            end_pipeline(pipeline, succeeded=False)
    finally:
        server.start()
    assert _client(server.uri).get_run(pipeline["parent_run_id"]).info.status == "FINISHED"  # as the step left it
    done = _sync(cfg.state)
    assert [p["server_run_id"] for p in done["merged_parents"]] == [pipeline["parent_run_id"]], done
    steps = _steps(server.uri, "pipe-end")
    assert {k: len(v) for k, v in steps.items()} == {"pipeline": 1, "validate": 1}
    assert steps["pipeline"][0].info.status == "FAILED"
    assert _nothing_moved(_sync(cfg.state))


@pytest.mark.timeout(HANG_GUARD_S)
def test_outage_after_register_numbered_its_version_then_export_offline(run_config, mlflow_server, monkeypatch,
                                                                        tmp_path):
    """The server numbers the new torch version (v2), then dies: register finishes in the buffer (there
    the version is a continuation numbered 1), and export, a new process, starts in the buffer with
    register's output naming v2. Export must not look v2 up in the buffer (a missing or wrong version):
    after sync the ONNX version is on the server with `source_model` = v2, v2's metrics and gate, and
    `champion` on both, exactly as online."""
    import mlflow

    from components.export.export import run as export
    from components.register.register import run as register
    from components.tracking.buffer import TrackingBufferedWarning
    from components.tracking.failover import reset
    from model.config import model_config
    from model.pipeline import SugarPipeline

    server, torch_name, onnx_name = mlflow_server, "vidcustom-numbered", "vidcustom-numbered-onnx"
    monkeypatch.setenv("VIDCUSTOM_PIPELINE_RUN", "pipe-numbered")
    cfg = run_config(f"mlflow.tracking_uri={server.uri}", f"register.model_name={torch_name}",
                     f"export.model_name={onnx_name}", "evaluate.num_inference_steps=2")
    ckpts = [SugarPipeline.from_config(model_config("tiny"), seed=s).save_pretrained(
        tmp_path / f"ckpt{s}", metadata={"training_stage": "2", "data_version": "abc.dir"}) for s in (0, 1)]
    evaluation = tmp_path / "eval"
    evaluation.mkdir()
    (evaluation / "metrics.json").write_text(json.dumps({
        "sprites_identity": 0.4, "sprites_motion": 0.5, "baseline_untrained/sprites_motion": 0.05,
        "image_effect/sprites_identity": 0.1, "image_effect/sprites_identity_lo": 0.05,
        "image_effect/sprites_identity_hi": 0.15}))
    assert register(ckpts[0], evaluation, cfg, "abc.dir")["version"] == "1"  # online: v1 is the champion

    registered = mlflow.register_model

    def numbered_then_dies(model_uri, name, **kw):
        out = registered(model_uri, name, **kw)
        server.stop()
        return out

    monkeypatch.setattr(mlflow, "register_model", numbered_then_dies)
    try:
        with pytest.warns(TrackingBufferedWarning):
            reg = register(ckpts[1], evaluation, cfg, "abc.dir")
        assert (reg["version"], reg["numbering"], reg["champion"]) == ("2", "server", True)
        reset()  # export is a new process: it starts in the buffer (this pipeline execution logs there)
        with pytest.warns(TrackingBufferedWarning):
            exported = export(ckpts[1], tmp_path / "onnx", cfg, "abc.dir", reg)
        assert exported["registered"] and "champion" in exported["aliases"]
    finally:
        server.start()
    done = _sync(cfg.state)
    assert done["pending"] == [] and done["aliases_skipped"] == [], done
    client = _client(server.uri)
    assert sorted(v.version for v in client.search_model_versions(f"name = '{torch_name}'")) == ["1", "2"]
    assert client.get_model_version_by_alias(torch_name, "champion").version == "2"
    onnx = client.search_model_versions(f"name = '{onnx_name}'")
    assert [v.version for v in onnx] == ["1"]
    tags = onnx[0].tags
    assert tags["source_model"] == f"{torch_name}/2" and tags["gate"] == "passed"
    assert float(tags["metric.sprites_motion"]) == 0.5 and "vidcustom.server_numbers" not in tags
    assert client.get_model_version_by_alias(onnx_name, "champion").version == "1"
    assert _nothing_moved(_sync(cfg.state))


# -- sync in the documented set-up ------------------------------------------------------------------------


def test_documented_env_setup_uploads_to_the_server_once(run_config, mlflow_server_handle, monkeypatch, tmp_path,
                                                         capsys):
    """$MLFLOW_TRACKING_URI names the server (README, ConfigMap), which is down for a step that configures
    twice (as register does): pending.json names the server, not the buffer; `vidcustom mlflow sync` without
    --tracking-uri uploads there, never into the buffer itself, and a second sync uploads nothing."""
    import mlflow

    from components.tracking import configure, step_run
    from components.tracking.buffer import TrackingBufferedWarning, load_manifest
    from pipelines.cli import main

    server = mlflow_server_handle
    server.stop()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    monkeypatch.setenv("VIDCUSTOM_PIPELINE_RUN", "pipe-env")
    cfg = run_config("mlflow.retries=1")
    with pytest.warns(TrackingBufferedWarning):
        configure(cfg)
        with step_run(cfg, "register"):
            mlflow.log_metric("score", 0.5)
            info = mlflow.pyfunc.log_model(name="model", python_model=_pyfunc(), pip_requirements=[])
            mlflow.register_model(info.model_uri, "vidcustom-env")
    assert os.environ["MLFLOW_TRACKING_URI"] == server.uri  # MLflow's rewrite to the buffer was undone
    assert {e["target_uri"] for e in load_manifest(cfg.state)["runs"].values()} == {server.uri}
    buffered = len(_buffer_runs(cfg.state))

    server.start()
    for expected in (2, 0):
        with pytest.raises(SystemExit) as done:
            main(["mlflow", "sync", "--preset", "ci"])
        assert done.value.code == 0, capsys.readouterr().err
        result = json.loads(capsys.readouterr().out)
        assert len(result["uploaded_runs"]) == expected and result["pending"] == [], result
    assert len(_buffer_runs(cfg.state)) == buffered  # nothing copied into the buffer
    steps = _steps(server.uri, "pipe-env")
    assert {k: len(v) for k, v in steps.items()} == {"pipeline": 1, "register": 1}
    versions = _client(server.uri).search_model_versions("name = 'vidcustom-env'")
    assert [v.run_id for v in versions] == [steps["register"][0].info.run_id]


def test_sync_never_targets_the_buffer(run_config, mlflow_server, monkeypatch, tmp_path):
    """A buffer written before the fix (its runs name the buffer as target, and a sync copied them into it)
    goes to $MLFLOW_TRACKING_URI, copies excluded; the buffer is refused as a target or a tracking store."""
    import mlflow

    from components.tracking import configure, step_run
    from components.tracking.sync import sync
    from components.tracking.buffer import TrackingBufferedWarning, _manifest, buffer_uri
    from mlflow_server import free_port

    monkeypatch.setenv("VIDCUSTOM_PIPELINE_RUN", "pipe-legacy")
    dead = run_config(f"mlflow.tracking_uri=http://127.0.0.1:{free_port()}", "mlflow.retries=1")
    with pytest.warns(TrackingBufferedWarning):
        with step_run(dead, "train"):
            mlflow.log_metric("loss", 0.1)
    buffer = buffer_uri(dead.state)
    local = _client(buffer)
    original = _buffer_runs(dead.state)
    exp = original[0].info.experiment_id
    with _manifest(dead.state) as m:  # what the old bug wrote
        for entry in m["runs"].values():
            entry["target_uri"] = buffer
    for run in original:
        local.set_tag(run.info.run_id, "vidcustom.buffered_for", buffer)
    copy = local.create_run(exp, tags={"vidcustom.synced_from": original[0].info.run_id,
                                       "vidcustom.pipeline_run": "pipe-legacy", "vidcustom.step": "train"})
    with pytest.raises(RuntimeError, match="that is the buffer itself"):
        sync(dead.state, buffer, retries=1)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", buffer)
    with pytest.raises(ValueError, match="offline buffer, not a tracking server"):
        configure(run_config())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    done = _sync(dead.state)
    assert {r["target"] for r in done["uploaded_runs"]} == {mlflow_server.uri}
    assert copy.info.run_id not in {r["run_id"] for r in done["uploaded_runs"]}
    assert {k: len(v) for k, v in _steps(mlflow_server.uri, "pipe-legacy").items()} == {"pipeline": 1, "train": 1}


def test_an_interrupted_sync_resumes_without_duplicates(run_config, mlflow_server, monkeypatch, tmp_path):
    """train loses the server halfway (continued in the buffer); evaluate then stays on the buffer with the
    server back (same pipeline execution); a sync dies after uploading a run but before recording it; the
    next sync finishes: one run per step, each metric point once."""
    import mlflow

    from components.tracking import sync as tracking_sync
    from components.tracking import step_run
    from components.tracking.buffer import TrackingBufferedWarning

    server = mlflow_server
    monkeypatch.setenv("VIDCUSTOM_PIPELINE_RUN", "pipe-resume")
    cfg = run_config(f"mlflow.tracking_uri={server.uri}")
    try:
        with pytest.warns(TrackingBufferedWarning):
            with step_run(cfg, "train"):
                for i in range(6):
                    if i == 3:
                        server.stop()
                    mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
    finally:
        server.start()
    from components.tracking import failover as tracking_failover

    tracking_failover.reset()  # evaluate runs in a process of its own, as in a pipeline
    with pytest.warns(TrackingBufferedWarning, match="earlier in pipeline run pipe-resume"):
        with step_run(cfg, "evaluate") as evaluate:
            mlflow.log_metrics({"score": 0.9, "fid": 12.0})
    assert evaluate.info.run_id not in {r.info.run_id for rs in _steps(server.uri, "pipe-resume").values() for r in rs}

    real_mark, died = tracking_sync._Sync.mark_run, set()

    def dies_before_recording_each_step(self, run, target, record):  # each step uploaded, then the sync dies
        if run.data.tags.get("vidcustom.step") != "pipeline" and run.info.run_id not in died:
            died.add(run.info.run_id)
            raise ConnectionResetError("sync killed")
        return real_mark(self, run, target, record)

    monkeypatch.setattr(tracking_sync._Sync, "mark_run", dies_before_recording_each_step)
    for _ in range(2):  # dies after appending train's second half, then after uploading evaluate
        with pytest.raises(ConnectionResetError):
            _sync(cfg.state)
    done = _sync(cfg.state)
    assert done["pending"] == [], done
    steps = _steps(server.uri, "pipe-resume")
    assert {k: len(v) for k, v in steps.items()} == {"pipeline": 1, "train": 1, "evaluate": 1}
    client = _client(server.uri)
    assert [m.step for m in client.get_metric_history(steps["train"][0].info.run_id, "loss")] == list(range(6))
    assert [m.value for m in client.get_metric_history(steps["evaluate"][0].info.run_id, "score")] == [0.9]
    assert _nothing_moved(_sync(cfg.state))


# -- killed and failed runs --------------------------------------------------------------------------------


def test_killed_failed_and_terminated_runs_never_stay_running(run_config, monkeypatch, tmp_path):
    """SIGKILL inside a step: the next start ends its run (and the parent it held) KILLED; SIGTERM: the run
    ends KILLED on the way out and the process still dies of the signal; an exception: FAILED; an earlier
    attempt of the same step on another host: KILLED; another host's other step: left alone."""
    import mlflow

    from components.tracking import step_run
    from components.tracking.tags import OWNER_TAG

    monkeypatch.setenv("VIDCUSTOM_PIPELINE_RUN", "pipe-killed")
    cfg = run_config()
    uri = cfg.tracking_uri()
    env = dict(os.environ)
    runs = {}
    for signal_name in ("SIGTERM", "SIGKILL"):  # SIGKILL last: the next start (SIGTERM's) would end its run
        script = _script(tmp_path, f"{signal_name}.py", f"""
            import os, signal
            from pathlib import Path
            from components.config import load_config
            from components.tracking import step_run

            with step_run(load_config(preset="ci"), "train") as run:
                Path("{signal_name}.run").write_text(run.info.run_id)
                os.kill(os.getpid(), signal.{signal_name})
        """)
        proc = _python(script, env)
        assert proc.returncode == -getattr(__import__("signal"), signal_name), proc.stderr[-2000:]
        runs[signal_name] = (tmp_path / f"{signal_name}.run").read_text()
    client = _client(uri)
    assert client.get_run(runs["SIGKILL"]).info.status == "RUNNING"  # nobody could end it yet
    assert client.get_run(runs["SIGTERM"]).info.status == "KILLED"
    exp = client.get_experiment_by_name("vidcustom").experiment_id
    elsewhere = {"vidcustom.pipeline_run": "pipe-killed", OWNER_TAG: "other-host:7:123"}
    retried = client.create_run(exp, tags=elsewhere | {"vidcustom.step": "evaluate"}).info.run_id
    other = client.create_run(exp, tags=elsewhere | {"vidcustom.step": "register"}).info.run_id

    with pytest.raises(ZeroDivisionError):
        with step_run(cfg, "evaluate") as failed:
            mlflow.log_metric("x", 1 / 0)
    status = {k: client.get_run(v).info.status for k, v in
              {"killed": runs["SIGKILL"], "retried": retried, "other": other, "failed": failed.info.run_id}.items()}
    assert status == {"killed": "KILLED", "retried": "KILLED", "other": "RUNNING", "failed": "FAILED"}
    assert _steps(uri, "pipe-killed")["pipeline"][0].info.status == "FAILED"


# -- concurrent runs on a fresh store -----------------------------------------------------------------------


@pytest.mark.slow
def test_runs_starting_together_on_a_fresh_sqlite_store(tmp_path):
    """Four processes open the same fresh SQLite store at the same moment (MLflow would migrate the schema
    in each: `duplicate column name`); all of them log their run."""
    n = 4
    script = _script(tmp_path, "together.py", """
        import sys, time
        from pathlib import Path
        import mlflow
        from components.config import load_config
        from components.tracking import step_run

        cfg = load_config(preset="ci")
        Path(f"ready-{sys.argv[1]}").touch()
        while not Path("go").exists():
            time.sleep(0.005)
        with step_run(cfg, "train", log_config=False):
            mlflow.log_metric("loss", float(sys.argv[1]))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["VIDCUSTOM_HOME"] = str(tmp_path / "state")
    procs = [subprocess.Popen([sys.executable, str(script), str(i)], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(n)]
    try:
        deadline = time.monotonic() + HANG_GUARD_S
        while sum((tmp_path / f"ready-{i}").exists() for i in range(n)) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        (tmp_path / "go").touch()
        results = [p.communicate(timeout=HANG_GUARD_S) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0] * n, [err[-1500:] for _, err in results]
    uri = f"sqlite:///{tmp_path / 'state' / 'mlflow.db'}"
    runs = _client(uri).search_runs([_client(uri).get_experiment_by_name("vidcustom").experiment_id])
    assert sorted(r.data.metrics["loss"] for r in runs) == [float(i) for i in range(n)]
