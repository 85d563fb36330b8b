"""`vidcustom serve` over loopback HTTP: a tiny random SUGAR pipeline exported to ONNX, registered twice in a
throw-away MLflow registry, served by alias. Job lifecycle, cancel, time limit, bad requests, the open inference
protocol, a full queue, a reload when the alias moves, metrics, SIGTERM."""

from __future__ import annotations

import base64
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
NAME = "vidcustom-onnx"
pytestmark = pytest.mark.timeout(300)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _png(h: int, w: int, seed: int = 0) -> str:
    from components.serving import encode_png

    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 255, np.uint8)
    img[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = rng.integers(0, 255, 3)
    return encode_png(img)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A sqlite MLflow registry with NAME versions 1 and 2 (the same export), champion -> 1."""
    import mlflow

    from components.export.onnx_export import export_pipeline
    from components.export.pyfunc import OnnxSugarPyfunc
    from model.config import model_config
    from model.pipeline import SugarPipeline

    tmp = tmp_path_factory.mktemp("serve")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    export_pipeline(SugarPipeline.from_config(model_config("tiny")), tmp / "onnx")
    client = mlflow.MlflowClient(uri, registry_uri=uri)  # not a registry an earlier test set globally
    exp = client.create_experiment("serve", artifact_location=str(tmp / "artifacts"))
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        for _ in range(2):
            with mlflow.start_run(experiment_id=exp):
                mlflow.pyfunc.log_model(name="onnx_model", python_model=OnnxSugarPyfunc(),
                                        artifacts={"onnx": str(tmp / "onnx")}, registered_model_name=NAME)
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    client.set_registered_model_alias(NAME, "champion", "1")
    return {"uri": uri, "client": client, "tmp": tmp}


class Server:
    def __init__(self, registry, *flags: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "MLFLOW_TRACKING_URI": registry["uri"], "MLFLOW_REGISTRY_URI": registry["uri"],
               "VIDCUSTOM_HOME": str(registry["tmp"])}
        self.log = open(registry["tmp"] / f"server-{self.port}.log", "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "serve", "--model",
                                      f"models:/{NAME}@champion", "--http-port", str(self.port), *flags],
                                     cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(600):
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited {self.proc.returncode}:\n{self.output()}")
            try:
                if requests.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the server never got ready:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def submit(self, **body) -> requests.Response:
        return requests.post(self.url + "/v1/jobs", json=body, timeout=30)

    def status(self, job_id: str) -> dict:
        return requests.get(f"{self.url}/v1/jobs/{job_id}", timeout=30).json()

    def wait(self, job_id: str, polls: int = 6000) -> dict:
        for _ in range(polls):  # every 20 ms; the module's pytest timeout is the backstop
            s = self.status(job_id)
            if s["state"] in ("succeeded", "failed", "cancelled"):
                return s
            time.sleep(0.02)
        raise AssertionError(f"job {job_id} did not finish: {s}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def server(registry):
    s = Server(registry, "--poll-seconds", "0.5", "--max-concurrency", "1", "--max-batch", "4")
    yield s
    s.stop()


def _decode_mp4(data: bytes) -> np.ndarray:
    from components.media import read_video

    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "v.mp4"
        p.write_bytes(data)
        return read_video(p)[0]


def _no_trace(text: str) -> None:
    assert "Traceback" not in text and 'File "' not in text and "site-packages" not in text, text


def test_job_lifecycle_submit_progress_video(server):
    r = server.submit(identity_image=_png(480, 640), prompt="a red cat walks left", seed=3, num_inference_steps=4)
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["Location"] == f"/v1/jobs/{job['id']}" and job["state"] in ("queued", "running")
    done = server.wait(job["id"])
    assert done["state"] == "succeeded", done
    assert done["progress"] == {"step": 4, "total_steps": 4, "fraction": 1.0}
    assert done["model_version"] == "1"
    v = requests.get(server.url + done["video_url"], timeout=30)
    assert v.status_code == 200 and v.headers["content-type"] == "video/mp4"
    frames = _decode_mp4(v.content)
    assert frames.ndim == 4 and frames.shape[-1] == 3 and frames.shape[0] >= 2


def test_same_request_same_video_through_the_job_api_and_the_inference_protocol(server):
    """The open inference protocol and the job API run the same sampler on the same validated rows."""
    img = _png(300, 1200, seed=1)
    job = server.wait(server.submit(identity_image=img, prompt="a blue box", seed=9, num_inference_steps=3).json()["id"])
    via_job = _decode_mp4(requests.get(server.url + job["video_url"], timeout=30).content)
    body = {"inputs": [{"name": "identity_image", "shape": [1], "datatype": "BYTES", "data": [img]},
                       {"name": "prompt", "shape": [1], "datatype": "BYTES", "data": ["a blue box"]},
                       {"name": "seed", "shape": [1], "datatype": "INT64", "data": [9]},
                       {"name": "num_inference_steps", "shape": [1], "datatype": "INT64", "data": [3]}]}
    r = requests.post(server.url + "/v2/models/vidcustom/infer", json=body, timeout=120)
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    via_oip = _decode_mp4(base64.b64decode(out["video"]["data"][0]))
    assert out["num_frames"]["data"] == [via_oip.shape[0]]
    assert np.array_equal(via_job, via_oip)


def test_cancel_stops_a_running_job_and_a_queued_one_never_runs(server):
    first = server.submit(identity_image=_png(64, 64), prompt="slow", num_inference_steps=100).json()
    queued = server.submit(identity_image=_png(64, 64), prompt="slow", num_inference_steps=99).json()  # other key
    while server.status(first["id"])["progress"]["step"] < 1:
        time.sleep(0.005)
    assert requests.delete(f"{server.url}/v1/jobs/{queued['id']}", timeout=30).json()["state"] == "cancelled"
    assert requests.delete(f"{server.url}/v1/jobs/{first['id']}", timeout=30).json()["state"] == "cancelled"
    s = server.wait(first["id"])
    time.sleep(0.3)
    later = server.status(first["id"])
    assert later["state"] == "cancelled" and later["progress"]["step"] == s["progress"]["step"] < 100
    q = server.status(queued["id"])
    assert q["state"] == "cancelled" and q["started"] is None and q["progress"]["step"] == 0
    r = requests.get(f"{server.url}/v1/jobs/{first['id']}/video.mp4", timeout=30)
    assert r.status_code == 409 and "cancelled" in r.json()["error"]


def _metric(server, name: str) -> float:
    for line in requests.get(server.url + "/metrics", timeout=30).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_compatible_queued_jobs_run_as_one_batch(server):
    rows0, calls0 = _metric(server, "vidcustom_batch_rows_sum"), _metric(server, "vidcustom_batch_rows_count")
    blocker = server.submit(identity_image=_png(64, 64), prompt="slow", num_inference_steps=100).json()
    while server.status(blocker["id"])["state"] == "queued":
        time.sleep(0.005)
    jobs = [server.submit(identity_image=_png(64, 64, seed=i), prompt=f"box {i}", seed=i, num_inference_steps=2
                          ).json() for i in range(3)]
    requests.delete(f"{server.url}/v1/jobs/{blocker['id']}", timeout=30)
    done = [server.wait(j["id"]) for j in jobs]
    assert all(d["state"] == "succeeded" for d in done), done
    # the blocker's batch (1 video) and one batch of the three compatible jobs
    assert _metric(server, "vidcustom_batch_rows_count") - calls0 == 2
    assert _metric(server, "vidcustom_batch_rows_sum") - rows0 == 4
    videos = [requests.get(server.url + d["video_url"], timeout=30).content for d in done]
    assert len(set(videos)) == 3  # each row its own seed and image


def test_time_limit_stops_the_computation(server):
    job = server.submit(identity_image=_png(64, 64), prompt="x", num_inference_steps=100, timeout_s=0.05).json()
    s = server.wait(job["id"])
    assert s["state"] == "failed" and "time limit of 0.05 s" in s["error"], s
    assert s["progress"]["step"] < 100


BAD = [
    ({"identity_image": "not base64!!", "prompt": "x"}, "identity_image is not valid base64"),
    ({"identity_image": base64.b64encode(b"\xff\xd8\xff\xe0 truncated").decode(), "prompt": "x"}, "not a readable"),
    ({"prompt": "x"}, "identity_image must be a base64 string"),
    ({"identity_image": "IMG", "prompt": ""}, "prompt must be a non-empty string"),
    ({"identity_image": "IMG", "prompt": "x" * 2001}, "the limit is 2000"),
    ({"identity_image": "IMG", "prompt": "x", "num_inference_steps": -3}, "num_inference_steps=-3 is out of range"),
    ({"identity_image": "IMG", "prompt": "x", "num_inference_steps": 0}, "allowed: 1 to 100"),
    ({"identity_image": "IMG", "prompt": "x", "num_inference_steps": 100000}, "num_inference_steps=100000"),
    ({"identity_image": "IMG", "prompt": "x", "seed": -1}, "seed=-1 is out of range"),
    ({"identity_image": "IMG", "prompt": "x", "seed": 2**32}, "seed=4294967296 is out of range"),
    ({"identity_image": "IMG", "prompt": "x", "image_scale": 50}, "image_scale=50 is out of range"),
    ({"identity_image": "IMG", "prompt": "x", "text_scale": "high"}, "text_scale='high' must be a number"),
    ({"identity_image": "IMG", "prompt": "x", "num_frames": 999}, "num_frames=999 is not offered: this model makes 8-frame videos"),
    ({"identity_image": "IMG", "prompt": "x", "timeout_s": -1}, "timeout_s=-1 must be a positive number"),
    ({"identity_image": "IMG", "prompt": "x", "colour": "red"}, "unknown fields ['colour']"),
]


@pytest.mark.parametrize("body,message", BAD, ids=[m[:30] for _, m in BAD])
def test_bad_requests_name_the_field(server, body, message):
    body = {k: (_png(32, 32) if v == "IMG" else v) for k, v in body.items()}
    r = server.submit(**body)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"], r.json()
    _no_trace(r.text)


def test_hostile_inputs_are_refused_without_a_trace(server):
    from PIL import Image

    buf = io.BytesIO()  # a 12000 x 12000 PNG is ~400 KB of bytes and 432 MB of pixels
    Image.new("RGB", (12000, 12000), "white").save(buf, format="PNG")
    r = server.submit(identity_image=base64.b64encode(buf.getvalue()).decode(), prompt="x")
    assert r.status_code == 400 and "pixels" in r.json()["error"], r.text
    r = requests.post(server.url + "/v1/jobs", data=b"{not json", timeout=30)
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    r = requests.post(server.url + "/v1/jobs", data=b"x" * 28_000_000, timeout=60)
    assert r.status_code == 413 and "limit" in r.json()["error"]
    r = requests.get(server.url + "/v1/jobs/nope", timeout=30)
    assert r.status_code == 404
    bad_oip = {"inputs": [{"name": "identity_image", "shape": [1], "datatype": "BYTES", "data": ["@@"]},
                          {"name": "prompt", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}
    r = requests.post(server.url + "/v2/models/vidcustom/infer", json=bad_oip, timeout=30)
    assert r.status_code == 400 and "identity_image is not valid base64" in r.json()["error"], r.text
    for resp in (r,):
        _no_trace(resp.text)
    assert requests.get(server.url + "/v2/health/live", timeout=30).status_code == 200


def test_metrics_count_requests_and_name_the_served_version(server):
    text = requests.get(server.url + "/metrics", timeout=30).text
    assert 'vidcustom_requests_total{api="jobs",outcome="accepted"}' in text
    assert 'vidcustom_requests_total{api="jobs",outcome="invalid"}' in text
    assert "vidcustom_job_run_seconds_count" in text and "vidcustom_jobs_queued" in text
    assert f'vidcustom_model_info{{model="{NAME}",version="1"}} 1.0' in text


def test_a_new_champion_is_served_without_a_restart(server, registry):
    """Runs last among the shared server's tests: it moves the alias."""
    registry["client"].set_registered_model_alias(NAME, "champion", "2")
    try:
        for _ in range(300):  # the server checks the alias every 0.5 s
            job = server.wait(server.submit(identity_image=_png(32, 32), prompt="x", num_inference_steps=1).json()["id"])
            if job["model_version"] == "2":
                break
            time.sleep(0.2)
        assert job["model_version"] == "2", server.output()[-3000:]
        assert f'vidcustom_model_info{{model="{NAME}",version="2"}} 1.0' in requests.get(server.url + "/metrics").text
    finally:
        registry["client"].set_registered_model_alias(NAME, "champion", "1")


def test_full_queue_refuses_with_503_and_sigterm_drains(registry):
    s = Server(registry, "--max-queue", "1", "--max-concurrency", "1", "--max-batch", "1", "--grace-seconds", "20",
               "--poll-seconds", "0")
    try:
        running = s.submit(identity_image=_png(32, 32), prompt="a", num_inference_steps=100).json()
        queued = s.submit(identity_image=_png(32, 32), prompt="b", num_inference_steps=100).json()
        r = s.submit(identity_image=_png(32, 32), prompt="c", num_inference_steps=100)
        assert r.status_code == 503 and r.headers["Retry-After"] and "queue is full" in r.json()["error"], r.text
        while s.status(running["id"])["state"] != "running":
            time.sleep(0.01)
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=60) == 0, s.output()[-3000:]
        log = s.output()
        assert "draining" in log, log[-3000:]
        assert "Traceback" not in log, log[-3000:]  # a clean shutdown, not a crash
        assert queued["id"] != running["id"]
    finally:
        s.stop()


def test_model_references_are_parsed_and_a_missing_model_is_named(tmp_path):
    import mlflow

    from components.server.loader import ModelRef, load

    assert ModelRef.parse("models:/vidcustom-onnx@champion") == ModelRef("models:/vidcustom-onnx@champion",
                                                                         "vidcustom-onnx", "champion", None)
    assert ModelRef.parse("models:/vidcustom-onnx/3").version == "3"
    assert ModelRef.parse(str(tmp_path)).name is None  # a local MLflow model folder
    with pytest.raises(ValueError, match="models:/NAME@ALIAS"):
        ModelRef.parse("models:/a/b/c")
    uri = f"sqlite:///{tmp_path / 'empty.db'}"
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        with pytest.raises(ValueError, match=r"cannot load models:/nope@champion from sqlite:.*empty.db: .*nope not "
                                             r"found.*--tracking-uri"):
            load(ModelRef.parse("models:/nope@champion"))
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
