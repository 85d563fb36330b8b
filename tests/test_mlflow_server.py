"""MLflow against a real tracking server on loopback: nested pipeline runs, the registry, an unreachable
server (buffer or fail), and `vidcustom mlflow sync` uploading the buffer once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest_plugins = ["mlflow_server"]
pytestmark = pytest.mark.usefixtures("bounded_mlflow_http")

MODEL = "vidcustom-test"


def _pyfunc():
    import mlflow.pyfunc

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input: list[str], params=None) -> list[str]:
            return model_input

    return Echo()


def _log_step(cfg, step: str, data_version: str | None, tmp_path, model: str | None = None,
              gate_champion: str = "none") -> str:
    """Log a step run like the steps do: params, a metric history, artifacts, and (model) a registered
    version tagged and aliased like components/register does; returns the run id."""
    import mlflow

    from components.tracking import step_run

    art = tmp_path / f"{step}-report.txt"
    art.write_text(f"{step} report\n")
    with step_run(cfg, step, data_version) as run:
        mlflow.log_param("extra.lr", "0.001")
        for i in range(5):
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i * 10)
        mlflow.log_metric("final_score", 0.75)
        mlflow.log_artifact(str(art), "reports")
        if model:
            info = mlflow.pyfunc.log_model(name="model", python_model=_pyfunc(), pip_requirements=[])
            version = mlflow.register_model(info.model_uri, model, tags={"gate": "passed",
                                                                         "gate_champion": gate_champion}).version
            client = mlflow.MlflowClient()
            client.update_model_version(model, version, description="gate passed")
            for alias in ("challenger", "champion"):
                client.set_registered_model_alias(model, alias, version)
        return run.info.run_id


def _server_runs(uri: str, pipeline_run: str):
    from mlflow import MlflowClient

    client = MlflowClient(uri, uri)
    exp = client.get_experiment_by_name("vidcustom")
    runs = client.search_runs([exp.experiment_id], f"tags.`vidcustom.pipeline_run` = '{pipeline_run}'")
    by_step: dict[str, list] = {}
    for r in runs:
        by_step.setdefault(r.data.tags["vidcustom.step"], []).append(r)
    return client, by_step


def _sync_cli(capsys, *argv: str) -> dict:
    from pipelines.cli import main

    with pytest.raises(SystemExit) as done:
        main(["mlflow", "sync", "--preset", "ci", *argv])
    out = capsys.readouterr()
    assert done.value.code == 0, out.err
    return json.loads(out.out)


def test_unreachable_server_buffers_locally_and_sync_uploads_once(run_config, mlflow_server_handle, monkeypatch,
                                                                  tmp_path, capsys):
    import mlflow
    from mlflow import MlflowClient

    from components.tracking.buffer import TrackingBufferedWarning, buffer_dir, buffer_uri, load_manifest

    server = mlflow_server_handle
    server.stop()  # up for an earlier test: down again (the process keeps running behind it)
    monkeypatch.setenv("VIDCUSTOM_PIPELINE_RUN", "pipe-offline")
    cfg = run_config(f"mlflow.tracking_uri={server.uri}", "mlflow.retries=2", "mlflow.retry_wait_s=0.1")

    with pytest.warns(TrackingBufferedWarning, match=f"{server.uri} is unreachable after 2 tries.*mlflow sync"):
        train = _log_step(cfg, "train", "dv-offline", tmp_path, model=MODEL)
    with pytest.warns(TrackingBufferedWarning):
        evaluate = _log_step(cfg, "evaluate", "dv-offline", tmp_path)

    # Everything is in the buffer store, listed in pending.json with its target server.
    manifest = load_manifest(cfg.state)
    assert (buffer_dir(cfg.state) / "pending.json").is_file()
    runs = manifest["runs"]
    parent = next(rid for rid, e in runs.items() if e["step"] == "pipeline")
    for rid, step in ((train, "train"), (evaluate, "evaluate")):
        assert runs[rid]["target_uri"] == server.uri and runs[rid]["experiment"] == "vidcustom"
        assert runs[rid]["step"] == step and runs[rid]["parent_run_id"] == parent and runs[rid]["synced"] == {}
    assert f"{MODEL}/1" in manifest["model_versions"]
    local = MlflowClient(buffer_uri(cfg.state), buffer_uri(cfg.state))
    assert local.get_run(train).data.tags["mlflow.parentRunId"] == parent
    assert local.get_run(parent).data.tags["data_version"] == "dv-offline"
    assert str(local.get_model_version_by_alias(MODEL, "champion").version) == "1"

    from pipelines.cli import main

    with pytest.raises(SystemExit) as failed:  # still down: sync says so and keeps the buffer
        main(["mlflow", "sync", "--preset", "ci", "--set", "mlflow.retries=1"])
    assert failed.value.code == 2
    assert f"cannot sync: MLflow tracking server {server.uri} is unreachable" in capsys.readouterr().err

    server.start()
    done = _sync_cli(capsys)
    assert {r["step"] for r in done["uploaded_runs"]} == {"pipeline", "train", "evaluate"}, done
    assert [v["buffer"] for v in done["model_versions"]] == [f"{MODEL}/1"]
    assert sorted(done["aliases"]) == [f"{MODEL}@challenger -> 1", f"{MODEL}@champion -> 1"]
    assert done["pending"] == []

    client, steps = _server_runs(server.uri, "pipe-offline")
    assert set(steps) == {"pipeline", "train", "evaluate"} and all(len(v) == 1 for v in steps.values())
    server_parent, server_train = steps["pipeline"][0], steps["train"][0]
    assert server_parent.info.run_name == "pipeline pipe-offline" and server_parent.info.status == "FINISHED"
    for step in ("train", "evaluate"):
        assert steps[step][0].data.tags["mlflow.parentRunId"] == server_parent.info.run_id
    buffered = local.get_run(train)
    assert server_train.data.params == buffered.data.params and server_train.data.params["extra.lr"] == "0.001"
    history = client.get_metric_history(server_train.info.run_id, "loss")
    assert [(m.step, round(m.value, 4)) for m in history] == [(i * 10, round(1 / (i + 1), 4)) for i in range(5)]
    assert server_train.info.start_time == buffered.info.start_time and server_train.info.status == "FINISHED"
    assert server_train.data.tags["vidcustom.synced_from"] == train
    files = {f.path for f in client.list_artifacts(server_train.info.run_id)}
    assert {"config.json", "reports"} <= files
    report = client.download_artifacts(server_train.info.run_id, "reports/train-report.txt", str(tmp_path))
    assert Path(report).read_text() == "train report\n"
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.run_id == server_train.info.run_id and champion.tags["gate"] == "passed"
    assert champion.description == "gate passed"
    mlflow.set_tracking_uri(server.uri)
    model_dir = mlflow.artifacts.download_artifacts(f"models:/{MODEL}@champion", dst_path=str(tmp_path / "dl"))
    assert (Path(model_dir) / "MLmodel").is_file()
    assert local.get_run(train).data.tags["vidcustom.synced_to"] == f"{server.uri} {server_train.info.run_id}"
    assert load_manifest(cfg.state)["runs"][train]["synced"][server.uri]["run_id"] == server_train.info.run_id

    again = _sync_cli(capsys)  # idempotent: nothing new
    assert again["uploaded_runs"] == again["model_versions"] == again["updated_parents"] == [] and \
        again["already_synced"] == 4, again
    _, steps_after = _server_runs(server.uri, "pipe-offline")
    assert {k: len(v) for k, v in steps_after.items()} == {"pipeline": 1, "train": 1, "evaluate": 1}


@pytest.mark.timeout(300)  # a hang guard only; the tries are configured and named in the message
def test_offline_fail_names_the_server_within_seconds(run_config, tmp_path):
    from components.tracking import step_run
    from mlflow_server import free_port

    uri = f"http://127.0.0.1:{free_port()}"
    cfg = run_config(f"mlflow.tracking_uri={uri}", "mlflow.retries=2", "mlflow.retry_wait_s=0.1",
                     "mlflow.offline=fail")
    with pytest.raises(RuntimeError, match=f"{uri} is unreachable after 2 tries.*Check that the server is running"):
        with step_run(cfg, "train"):
            pass
    assert not (cfg.state / "mlflow-buffer").exists()


def test_steps_nest_under_one_pipeline_run_on_a_server(run_config, mlflow_server, monkeypatch, tmp_path):
    from components.tracking import begin_pipeline, step_run

    monkeypatch.setenv("VIDCUSTOM_PIPELINE_RUN", "pipe-online")
    monkeypatch.setenv("VIDCUSTOM_GIT_COMMIT", "abc123")
    cfg = run_config(f"mlflow.tracking_uri={mlflow_server.uri}")
    begin_pipeline(cfg)  # the driver, holding the whole config, tags the parent with the model it trains
    validate = _log_step(cfg.model_copy(update={"step": "validate"}), "validate", "dv-online", tmp_path)
    train = _log_step(cfg, "train", "dv-online", tmp_path, model="vidcustom-online")

    client, steps = _server_runs(mlflow_server.uri, "pipe-online")
    assert set(steps) == {"pipeline", "validate", "train"} and len(steps["pipeline"]) == 1
    parent = steps["pipeline"][0]
    assert parent.info.run_name == "pipeline pipe-online" and parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert (tags["preset"], tags["method"], tags["git_commit"], tags["data_version"]) == \
        ("ci", cfg.model.method, "abc123", "dv-online")
    for rid in (validate, train):
        run = client.get_run(rid)
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.params["extra.lr"] == "0.001" and run.data.metrics["final_score"] == 0.75
        assert [m.step for m in client.get_metric_history(rid, "loss")] == [0, 10, 20, 30, 40]
        assert {f.path for f in client.list_artifacts(rid, "reports")} == {f"reports/{run.info.run_name}-report.txt"}
    champion = client.get_model_version_by_alias("vidcustom-online", "champion")
    assert champion.run_id == train and champion.tags["gate"] == "passed"
    assert not (cfg.state / "mlflow-buffer").exists()

    monkeypatch.delenv("VIDCUSTOM_PIPELINE_RUN")  # a step's CLI on its own: no parent
    with step_run(cfg, "evaluate", log_config=False) as run:
        pass
    alone = client.get_run(run.info.run_id)
    assert "mlflow.parentRunId" not in alone.data.tags and "vidcustom.pipeline_run" not in alone.data.tags


def test_sync_merges_buffered_steps_into_the_servers_pipeline_run(run_config, mlflow_server, monkeypatch, tmp_path):
    """Server up for validate and a first registration, down for train: sync hangs train under the
    server's parent; the offline gate never saw the server's champion, so champion stays put."""
    from components.tracking.sync import sync
    from components.tracking.buffer import TrackingBufferedWarning
    from mlflow_server import free_port

    monkeypatch.setenv("VIDCUSTOM_PIPELINE_RUN", "pipe-mixed")
    online = run_config(f"mlflow.tracking_uri={mlflow_server.uri}")
    _log_step(online, "validate", "dv-mixed", tmp_path, model="vidcustom-mixed")
    dead = f"http://127.0.0.1:{free_port()}"
    offline = run_config(f"mlflow.tracking_uri={dead}", "mlflow.retries=1")
    with pytest.warns(TrackingBufferedWarning):
        train = _log_step(offline, "train", "dv-mixed", tmp_path, model="vidcustom-mixed")

    done = sync(offline.state, tracking_uri=mlflow_server.uri, retries=1)
    assert len(done["merged_parents"]) == 1 and [r["step"] for r in done["uploaded_runs"]] == ["train"]
    client, steps = _server_runs(mlflow_server.uri, "pipe-mixed")
    assert len(steps["pipeline"]) == 1 and set(steps) == {"pipeline", "validate", "train"}
    parent = steps["pipeline"][0].info.run_id
    assert steps["train"][0].data.tags["mlflow.parentRunId"] == parent
    assert steps["train"][0].data.tags["vidcustom.synced_from"] == train
    assert done["aliases"] == ["vidcustom-mixed@challenger -> 2"]
    assert [s["alias"] for s in done["aliases_skipped"]] == ["champion"]
    assert client.get_model_version_by_alias("vidcustom-mixed", "champion").version == "1"
    assert client.get_model_version_by_alias("vidcustom-mixed", "challenger").version == "2"
    assert sync(offline.state, tracking_uri=mlflow_server.uri, retries=1)["uploaded_runs"] == []

    # While one sync holds the buffer, a second one is refused instead of racing it.
    import fcntl

    from components.tracking.buffer import buffer_dir

    with open(buffer_dir(offline.state) / ".sync.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(RuntimeError, match="another `vidcustom mlflow sync`"):
            sync(offline.state, tracking_uri=mlflow_server.uri, retries=1)


def test_postgres_backed_server(run_config, mlflow_server_postgres, tmp_path):
    cfg = run_config(f"mlflow.tracking_uri={mlflow_server_postgres.uri}")
    rid = _log_step(cfg, "train", "dv-pg", tmp_path, model="vidcustom-pg")
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server_postgres.uri, mlflow_server_postgres.uri)
    assert client.get_run(rid).data.metrics["final_score"] == 0.75
    assert client.get_model_version_by_alias("vidcustom-pg", "champion").run_id == rid


def test_a_corrupted_buffer_manifest_loses_no_runs(run_config, mlflow_server_handle, monkeypatch, tmp_path, capsys):
    """pending.json cut off mid-write (a full disk, a killed sync): sync rebuilds from the buffer store itself."""
    from components.tracking.buffer import TrackingBufferedWarning, buffer_dir

    server = mlflow_server_handle
    server.stop()
    monkeypatch.setenv("VIDCUSTOM_PIPELINE_RUN", "pipe-corrupt")
    cfg = run_config(f"mlflow.tracking_uri={server.uri}", "mlflow.retries=1", "mlflow.retry_wait_s=0.1")
    with pytest.warns(TrackingBufferedWarning):
        _log_step(cfg, "train", "dv-corrupt", tmp_path, model=MODEL)
    manifest = buffer_dir(cfg.state) / "pending.json"
    manifest.write_text(manifest.read_text()[: len(manifest.read_text()) // 2])  # truncated JSON
    server.start()
    done = _sync_cli(capsys)
    assert {r["step"] for r in done["uploaded_runs"]} == {"pipeline", "train"}, done
    _, steps = _server_runs(server.uri, "pipe-corrupt")
    assert set(steps) == {"pipeline", "train"} and all(len(v) == 1 for v in steps.values())
    assert _sync_cli(capsys)["uploaded_runs"] == []  # and a second sync uploads nothing
