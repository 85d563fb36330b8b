"""Runs never stay RUNNING after their process is gone.

Every step run (and a pipeline parent whenever a step sets it RUNNING) carries `vidcustom.owner` =
"<host>:<pid>:<process start time>". A process killed outright (SIGKILL, OOM, a node lost) cannot end its
run, so the next step or pipeline start ends the stale ones KILLED (`end_stale_runs`):
  - RUNNING runs owned by a process of this host that no longer exists (the start time tells a reused pid);
  - RUNNING runs of an earlier attempt of the same step of the same pipeline execution, on any host (a
    retried pod: its predecessor is gone even though this host cannot see it).
A SIGTERM (a cancelled KFP run, a pod eviction, `kill`) during a step ends the step's run KILLED before the
process goes, with the signal's usual exit (`sigterm_ends_run`).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from contextlib import contextmanager
from pathlib import Path

from .tags import OWNER_TAG, PIPELINE_RUN_TAG, STEP_TAG

log = logging.getLogger(__name__)



class StepTerminated(BaseException):
    """SIGTERM during a step (BaseException: a step's `except Exception` must not swallow it)."""


def _started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22), None if no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_started(os.getpid()) or '-'}"


def owner_alive(tag: str) -> bool | None:
    """Whether the owning process still runs; None when it ran on another host (this one cannot tell)."""
    try:
        host, pid, started = tag.rsplit(":", 2)
        pid_n = int(pid)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    if started != "-":
        return _started(pid_n) == started
    try:  # no /proc: a signal-0 probe
        os.kill(pid_n, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_stale_runs(client, experiment_id: str, pipeline_run: str | None = None, step: str | None = None) -> list[str]:
    """End KILLED the RUNNING runs of the experiment whose process is gone (see the module docstring);
    returns their ids. Never raises: a failed sweep leaves them for the next start."""
    me, ended = owner(), []
    try:
        runs = client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=1000)
        for run in runs:
            tag = run.data.tags.get(OWNER_TAG)
            if not tag or tag == me:
                continue
            alive = owner_alive(tag)
            retried = bool(step and pipeline_run and run.data.tags.get(PIPELINE_RUN_TAG) == pipeline_run
                           and run.data.tags.get(STEP_TAG) == step)
            if alive is False or (alive is None and retried):
                client.set_terminated(run.info.run_id, status="KILLED")
                ended.append(run.info.run_id)
    except Exception as err:  # noqa: BLE001 - housekeeping must not stop a step
        log.warning("could not end stale runs in experiment %s: %s", experiment_id, err)
    if ended:
        log.warning("ended %d run(s) of dead processes as KILLED: %s", len(ended), ", ".join(ended))
    return ended


@contextmanager
def sigterm_raises():
    """In this block SIGTERM raises StepTerminated, so the run is ended KILLED on the way out; afterwards
    the signal is delivered again with the previous handler (the process exits as it would have)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise StepTerminated(f"terminated by signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except StepTerminated:
        signal.signal(signal.SIGTERM, previous)
        os.kill(os.getpid(), signal.SIGTERM)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
