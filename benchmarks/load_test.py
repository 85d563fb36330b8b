"""Load test of `vidcustom serve` over loopback: latency, throughput, errors and the server's peak memory at
several client concurrencies, with bad and oversized requests mixed in.

    python benchmarks/load_test.py                         # starts `vidcustom serve` on the state dir's champion
    python benchmarks/load_test.py --model models:/vidcustom-onnx/3 --concurrency 1,4,16 --requests 48
    python benchmarks/load_test.py --url http://127.0.0.1:8080   # an already running server (no memory figure)

Each client sends, in a fixed rotation, 8 good requests (the job API: submit, poll every 50 ms, download the
MP4; or the open inference protocol with --api infer), 1 bad request (invalid base64 or out-of-range steps:
must get 400) and 1 oversized body (28 MB: must get 413). Latency is submit -> MP4 received. A 503 (queue full)
is counted as refused, not as an error; an error is a good request that did not give a video, or a bad one
that did not get its 4xx. Memory is the server's peak RSS, sampled every 50 ms. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
ROTATION = ["good"] * 8 + ["bad", "oversized"]


def _png(seed: int) -> str:
    from components.serving import encode_png

    rng = np.random.default_rng(seed)
    h, w = 480, 640  # a phone-photo-like size: exercises the server's own fit to the model size
    img = np.full((h, w, 3), 255, np.uint8)
    img[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = rng.integers(0, 255, 3)
    return encode_png(img)


class Client:
    def __init__(self, url: str, api: str, steps: int, image: str):
        self.url, self.api, self.steps, self.image = url, api, steps, image
        self.session = requests.Session()

    def good(self, seed: int) -> str:
        body = {"identity_image": self.image, "prompt": "a red cat walks to the left", "seed": seed,
                "num_inference_steps": self.steps}
        if self.api == "infer":
            inputs = [{"name": k, "shape": [1], "datatype": "INT64" if isinstance(v, int) else "BYTES", "data": [v]}
                      for k, v in body.items()]
            r = self.session.post(f"{self.url}/v2/models/vidcustom/infer", json={"inputs": inputs}, timeout=900)
            return "ok" if r.status_code == 200 else ("refused" if r.status_code == 503 else f"http {r.status_code}")
        r = self.session.post(f"{self.url}/v1/jobs", json=body, timeout=60)
        if r.status_code == 503:
            return "refused"
        if r.status_code != 202:
            return f"http {r.status_code}"
        job = r.json()
        while True:
            s = self.session.get(f"{self.url}/v1/jobs/{job['id']}", timeout=60).json()
            if s["state"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.05)
        if s["state"] != "succeeded":
            return f"job {s['state']}"
        v = self.session.get(f"{self.url}{job['video_url']}", timeout=60)
        return "ok" if v.status_code == 200 and v.content[4:8] == b"ftyp" else f"video http {v.status_code}"

    def bad(self, i: int) -> str:
        body = ({"identity_image": "not base64!!", "prompt": "x"} if i % 2 else
                {"identity_image": self.image, "prompt": "x", "num_inference_steps": -3})
        r = self.session.post(f"{self.url}/v1/jobs", json=body, timeout=60)
        return "ok" if r.status_code == 400 and "Traceback" not in r.text else f"http {r.status_code}"

    def oversized(self) -> str:
        r = self.session.post(f"{self.url}/v1/jobs", data=b"x" * 28_000_000,
                              headers={"content-type": "application/json"}, timeout=60)
        return "ok" if r.status_code == 413 else f"http {r.status_code}"


def run_level(url: str, api: str, concurrency: int, total: int, steps: int, image: str) -> dict:
    lock = threading.Lock()
    counter = iter(range(total))
    rows: list[tuple[str, str, float]] = []

    def worker():
        client = Client(url, api, steps, image)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            kind = ROTATION[i % len(ROTATION)]
            t0 = time.perf_counter()
            try:
                outcome = client.good(i) if kind == "good" else client.bad(i) if kind == "bad" else client.oversized()
            except requests.RequestException as err:
                outcome = type(err).__name__
            with lock:
                rows.append((kind, outcome, time.perf_counter() - t0))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    good = [r for r in rows if r[0] == "good"]
    lat = sorted(r[2] for r in good if r[1] == "ok")
    q = statistics.quantiles(lat, n=20) if len(lat) >= 2 else lat * 19
    errors = [r for r in rows if r[1] not in ("ok", "refused")]
    return {"concurrency": concurrency, "requests": len(rows), "videos": len(lat), "wall_s": wall,
            "p50_s": statistics.median(lat) if lat else float("nan"), "p95_s": q[18] if lat else float("nan"),
            "videos_per_s": len(lat) / wall, "refused_503": sum(r[1] == "refused" for r in rows),
            "errors": len(errors), "error_kinds": sorted({f"{k}: {o}" for k, o, _ in errors}),
            "bad_refused_ok": sum(r[0] != "good" and r[1] == "ok" for r in rows),
            "bad_total": sum(r[0] != "good" for r in rows)}


class ServerProcess:
    """`vidcustom serve` in a child process, and its peak RSS."""

    def __init__(self, model: str, extra: list[str]):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # The server's log goes to a file: a pipe nobody reads would fill and block its logging.
        self.log = tempfile.NamedTemporaryFile("w+", prefix="vidcustom-serve-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "serve", "--model", model,
                                      "--http-port", str(self.port), *extra], cwd=ROOT,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.peak = 0
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()
        for _ in range(1200):
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited:\n{Path(self.log.name).read_text()[-3000:]}")
            try:
                if requests.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.25)
        raise SystemExit(f"the server did not get ready in 5 minutes; its log: {self.log.name}")

    def _sample(self):
        import psutil

        p = psutil.Process(self.proc.pid)
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, p.memory_info().rss)
            except psutil.Error:
                return

    def reset_peak(self):
        self.peak = 0

    def stop(self):
        self._stop.set()
        self.proc.terminate()
        self.proc.wait(60)
        self.log.close()
        os.unlink(self.log.name)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running server (default: start one)")
    ap.add_argument("--model", default="models:/vidcustom-onnx@champion", help="model to start a server with")
    ap.add_argument("--server-args", default="", help='extra `vidcustom serve` flags, e.g. "--max-batch 4"')
    ap.add_argument("--concurrency", default="1,4,16", help="client concurrencies (default: %(default)s)")
    ap.add_argument("--requests", type=int, default=40, help="requests per level, 80%% good (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=20, help="denoising steps of the good requests")
    ap.add_argument("--api", choices=("jobs", "infer"), default="jobs")
    args = ap.parse_args(argv)

    server = None if args.url else ServerProcess(args.model, args.server_args.split())
    url = args.url or server.url
    image = _png(0)
    results = []
    try:
        Client(url, args.api, args.steps, image).good(0)  # warm-up: sessions, first-call allocations
        for c in (int(x) for x in args.concurrency.split(",")):
            if server:
                server.reset_peak()
            r = run_level(url, args.api, c, args.requests, args.steps, image)
            r["peak_rss_mb"] = server.peak / 2**20 if server else float("nan")
            results.append(r)
            print(f"concurrency {c}: {r}", file=sys.stderr, flush=True)
    finally:
        if server:
            server.stop()
    print(f"\n{args.api} API, {args.steps} steps, {os.cpu_count()} CPUs, server flags: "
          f"{args.server_args or '(defaults)'}\n")
    print("| clients | requests | videos | p50 s | p95 s | videos/s | refused 503 | errors | bad/oversized "
          "refused correctly | server peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['concurrency']} | {r['requests']} | {r['videos']} | {r['p50_s']:.2f} | {r['p95_s']:.2f} | "
              f"{r['videos_per_s']:.2f} | {r['refused_503']} | {r['errors']} | {r['bad_refused_ok']}/"
              f"{r['bad_total']} | {r['peak_rss_mb']:.0f} |")
    for r in results:
        if r["error_kinds"]:
            print(f"errors at {r['concurrency']} clients: {r['error_kinds']}")
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
