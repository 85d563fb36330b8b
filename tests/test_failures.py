"""Unreachable services and bad requests fail with a message that names the cause, and lose nothing."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest


def _refused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: connecting is refused


def test_dead_mlflow_server_is_named(run_config, monkeypatch):
    from components.tracking import configure

    url = f"http://127.0.0.1:{_refused_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    cfg = run_config("mlflow.retries=2", "mlflow.retry_wait_s=0.01", "mlflow.offline=fail")
    with pytest.raises(RuntimeError, match=f"{url} is unreachable after 2 tries"):
        configure(cfg)


def test_evaluation_results_survive_a_dead_tracking_server(tmp_path, run_config, monkeypatch):
    """Evaluate writes its results before logging, so a dead server costs the upload, not the results."""
    from components.evaluate.evaluate import run
    from model.pipeline import SugarPipeline

    cfg = run_config("evaluate.num_samples=2", "evaluate.baselines=false", "mlflow.retries=1", "mlflow.offline=fail")
    SugarPipeline.from_config(cfg.model).save_pretrained(tmp_path / "ck")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_refused_port()}")
    with pytest.raises(RuntimeError, match="unreachable"):
        run(tmp_path / "ck", tmp_path / "ev", cfg)
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert "sprites_identity" in metrics and (tmp_path / "ev" / "per_sample.parquet").is_file()


def test_submit_to_an_unreachable_kfp_endpoint_names_it():
    url = f"http://127.0.0.1:{_refused_port()}"
    out = subprocess.run([sys.executable, "-m", "pipelines.cli", "submit", "--host", url, "--preset", "ci"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert f"could not submit to Kubeflow Pipelines at {url}" in out.stderr


def test_data_pull_restores_a_validated_dataset(tiny_dataset, run_config, tmp_path):
    from components.validate.validate import run as validate
    from pipelines.cli import main

    cfg = run_config()
    result = validate(tiny_dataset, tmp_path / "report", cfg)
    with pytest.raises(SystemExit) as done:
        main(["data", "pull", result.dvc_hash, str(tmp_path / "restored"), "--preset", "ci"])
    assert done.value.code == 0
    assert (tmp_path / "restored" / "manifest.parquet").read_bytes() == (tiny_dataset / "manifest.parquet").read_bytes()

    # a failed pull leaves the destination as it was; a forced pull replaces it with exactly the version
    from components.dataset_versioning import RemoteError, content_hash, pull

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        pull(result.dvc_hash, cfg.dvc_remote(), busy)
    with pytest.raises(RemoteError, match="not in DVC remote"):
        pull("0" * 32, cfg.dvc_remote(), busy, force=True)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    pull(result.dvc_hash, cfg.dvc_remote(), busy, force=True)
    assert content_hash(busy)[0] == result.dvc_hash and not (busy / "keep.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".busy")] == []  # no staging left behind


def test_serving_rejects_bad_requests():
    from components.serving import encode_png, parse_request

    with pytest.raises(ValueError, match="missing columns"):
        parse_request(pd.DataFrame([{"prompt": "x"}]), 32, 32)
    with pytest.raises(ValueError, match="row 0: identity image is not a readable PNG/JPEG"):
        parse_request(pd.DataFrame([{"identity_image": "bm90IGFuIGltYWdl", "prompt": "x"}]), 32, 32)
    img = encode_png(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="row 0: prompt has 5000 characters"):
        parse_request(pd.DataFrame([{"identity_image": img, "prompt": "x" * 5000}]), 32, 32)
