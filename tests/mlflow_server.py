"""A real MLflow tracking server on loopback for tests: `mlflow server` in a subprocess.

    pytest_plugins = ["mlflow_server"]  # in the test module: registers the fixtures below

    def test_x(mlflow_server):
        cfg = run_config(f"mlflow.tracking_uri={mlflow_server.uri}")

The server (SQLite backend, proxied artifacts: --serve-artifacts --artifacts-destination, in a temporary
directory) listens on an internal port; tests talk to `uri`, a relay on another free port of 127.0.0.1
that is open only while the server is "up". So a test can log to `uri` while it refuses connections
(server down, as clients see it) and then bring the same URI up, while the server boots (10-30 s on a
busy machine) in the background meanwhile.

`mlflow_server_handle` (module): the server, launched in the background but not up: `uri` refuses
connections until `start()` (waits for /health, opens the relay); `stop()` closes the relay again (cutting
open connections); `hang()` makes it accept connections and never answer.
`bounded_mlflow_http` (function): MLflow's HTTP retries/timeout bounded as the steps do, for one test.
`mlflow_server` (module): the same, up.
`mlflow_server_postgres` (module): one on a throw-away PostgreSQL cluster; skipped without the PostgreSQL
binaries (initdb, pg_ctl, createdb), without psycopg2, or as root (initdb refuses to run as root).
"""

from __future__ import annotations

import importlib.util
import os
import select
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mlflow_cli() -> list[str]:
    exe = Path(sys.executable).with_name("mlflow")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "mlflow"]


class _Relay:
    """127.0.0.1:<port> -> 127.0.0.1:<target>, byte for byte, while open; connection refused while closed
    (connections open at that moment are cut, as a killed server's would be). Hung: connections are
    accepted and never answered (a server stuck, or a black-holed network)."""

    class _Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

    def __init__(self, port: int, target: int):
        self.port, self.target = port, target
        self._server: socketserver.ThreadingTCPServer | None = None
        self._open: set[socket.socket] = set()
        self.hung = False

    def open(self) -> None:
        if self._server is not None:
            return
        relay, target = self, self.target

        class Pipe(socketserver.BaseRequestHandler):
            def handle(self):
                relay._open.add(self.request)
                try:
                    if relay.hung:  # read and drop the request until the client or the relay closes
                        while self.request.recv(1 << 16):
                            pass
                    else:
                        self.pipe()
                finally:
                    relay._open.discard(self.request)

            def pipe(self):
                with socket.create_connection(("127.0.0.1", target), timeout=60) as up:
                    ends = {self.request: up, up: self.request}
                    while True:
                        ready, _, _ = select.select(list(ends), [], [], 120)
                        if not ready:
                            return
                        for sock in ready:
                            data = sock.recv(1 << 16)
                            if not data:
                                return
                            ends[sock].sendall(data)

        self._server = self._Server(("127.0.0.1", self.port), Pipe)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for sock in list(self._open):  # keep-alive connections of clients die with the server
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class MlflowServer:
    def __init__(self, root: Path, backend_uri: str | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.backend_uri = backend_uri or f"sqlite:///{self.root / 'mlflow.db'}"
        self.artifacts = self.root / "artifacts"
        self.internal_port = free_port()
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"  # what tests use: the relay
        self.log = self.root / "server.log"
        self.proc: subprocess.Popen | None = None
        self._relay = _Relay(self.port, self.internal_port)
        self.up = False

    def launch(self) -> "MlflowServer":
        """Start the server process, without waiting for it and without opening `uri`."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        cmd = _mlflow_cli() + ["server", "--backend-store-uri", self.backend_uri, "--serve-artifacts",
                               "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1",
                               "--port", str(self.internal_port), "--workers", "1"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env.update(PYTHONUNBUFFERED="1", MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.root,
                                         start_new_session=True)
        return self

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.internal_port}/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def start(self) -> "MlflowServer":
        """Bring `uri` up: launch the server if needed, wait for /health, open the relay."""
        if self._relay.hung:
            self.stop()
        self.launch()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.proc.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not healthy after {START_TIMEOUT_S} s:\n{self.tail()}")
            time.sleep(0.2)
        self._relay.open()
        self.up = True
        return self

    def stop(self) -> None:
        """Take `uri` down (connections refused, open ones cut); the process keeps running for a later start()."""
        self._relay.close()
        self._relay.hung = False
        self.up = False

    def hang(self) -> None:
        """`uri` accepts connections and never answers (open ones are cut); start() brings it back."""
        self.stop()
        self._relay.hung = True
        self._relay.open()

    def shutdown(self) -> None:
        self.stop()
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server and its uvicorn worker (own session)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.is_file() else ""


@pytest.fixture
def bounded_mlflow_http(monkeypatch):
    """MLflow's HTTP retries and timeout for one test, bounded as the steps bound them (a generous timeout:
    a busy test machine must not look like a dead server), restored afterwards; the steps only set them
    where unset, so nothing leaks into other tests."""
    for name, value in {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
                        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def mlflow_server_handle(tmp_path_factory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server")).launch()  # boots while tests run
    try:
        yield server
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def mlflow_server(mlflow_server_handle) -> MlflowServer:
    return mlflow_server_handle.start()


class _Postgres:
    def __init__(self, root: Path):
        self.root, self.port = root, free_port()
        self.data, self.sockets = root / "pgdata", root / "sock"

    def start(self) -> str:
        self.sockets.mkdir(parents=True)
        subprocess.run(["initdb", "-D", str(self.data), "-U", "mlflow", "--auth=trust"], check=True,
                       capture_output=True, timeout=120)
        subprocess.run(["pg_ctl", "-D", str(self.data), "-l", str(self.root / "pg.log"), "-w", "-o",
                        f"-p {self.port} -k {self.sockets} -h 127.0.0.1", "start"], check=True,
                       capture_output=True, timeout=120)
        subprocess.run(["createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "mlflow", "mlflow"], check=True,
                       capture_output=True, timeout=60)
        return f"postgresql://mlflow@127.0.0.1:{self.port}/mlflow"

    def stop(self) -> None:
        if self.data.is_dir():
            subprocess.run(["pg_ctl", "-D", str(self.data), "-m", "fast", "stop"], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def mlflow_server_postgres(tmp_path_factory):
    missing = [b for b in ("initdb", "pg_ctl", "createdb") if shutil.which(b) is None]
    if missing:
        pytest.skip(f"no PostgreSQL binaries ({', '.join(missing)})")
    if importlib.util.find_spec("psycopg2") is None:
        pytest.skip("psycopg2 is not installed: mlflow server cannot use a PostgreSQL backend")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("running as root: initdb refuses to create a PostgreSQL cluster")
    root = tmp_path_factory.mktemp("mlflow-postgres")
    pg = _Postgres(root)
    server = None
    try:
        server = MlflowServer(root / "server", backend_uri=pg.start()).start()
        yield server
    finally:
        if server is not None:
            server.shutdown()
        pg.stop()
