"""The server's job queue on a fake sampler whose steps the test releases one at a time: batching of compatible
jobs, chunks of max_batch, cancel (queued and running), time limits, a full queue, shutdown."""

from __future__ import annotations

import threading
import time

import pytest

from components.server.jobs import JobQueue, QueueFull, ShuttingDown, State

pytestmark = pytest.mark.timeout(60)


class FakeSampler:
    """run_batch(rows, callback): `steps` steps (each row's "steps"), each waiting for `release()`."""

    def __init__(self, auto: bool = False):
        self.calls: list[list[dict]] = []
        self.steps_run = 0
        self._gate = threading.Semaphore(0)
        self.auto = auto
        self.started = threading.Event()

    def release(self, n: int = 1):
        for _ in range(n):
            self._gate.release()

    def __call__(self, rows, callback):
        self.calls.append(rows)
        self.started.set()
        total = rows[0]["steps"]
        for step in range(total):
            if not self.auto:
                self._gate.acquire()
            self.steps_run += 1
            callback(step, total)
        return [f"video of {r['name']}" for r in rows], "7"


def _rows(name: str, steps: int = 3, n: int = 1) -> list[dict]:
    return [{"name": f"{name}{i}" if n > 1 else name, "steps": steps} for i in range(n)]


def _queue(sampler, **kw) -> JobQueue:
    return JobQueue(sampler, lambda videos: [v.upper() for v in videos], **kw)


def _until(cond, attempts: int = 5000):
    """Poll `cond` every 2 ms, a bounded number of times (the module's pytest timeout is the backstop)."""
    for _ in range(attempts):
        if cond():
            return
        time.sleep(0.002)
    raise AssertionError(f"condition not reached after {attempts} polls")


def test_a_job_runs_reports_progress_and_keeps_its_result():
    s = FakeSampler()
    q = _queue(s, current_version=lambda: "7")
    job = q.submit(_rows("a"), key=(3,), timeout_s=60)
    _until(s.started.is_set)
    s.release()
    _until(lambda: job.step == 1)
    assert job.state == State.RUNNING and job.model_version == "7" and job.status()["progress"] == {"step": 1, "total_steps": 3, "fraction": 0.3333}
    s.release(2)
    assert job.wait(10) and job.state == State.SUCCEEDED
    assert job.result == ["VIDEO OF A"] and job.model_version == "7" and q.get(job.id) is job


def test_compatible_queued_jobs_share_a_sampler_call_in_chunks_of_max_batch():
    s = FakeSampler()
    q = _queue(s, max_batch=3)
    blocker = q.submit(_rows("block", steps=1), key=("other",), timeout_s=60)
    _until(s.started.is_set)
    jobs = [q.submit(_rows(n), key=(3,), timeout_s=60) for n in "abcd"]  # 4 compatible: batches of 3 + 1
    big = q.submit(_rows("m", n=4), key=(3,), timeout_s=60)  # 4 rows > max_batch: its own chunks of 3 + 1
    s.auto = True
    s.release()
    for j in [blocker, *jobs, big]:
        assert j.wait(10) and j.state == State.SUCCEEDED, j
    assert [len(c) for c in s.calls] == [1, 3, 1, 3, 1]
    assert [r["name"] for r in s.calls[1]] == ["a", "b", "c"]
    assert jobs[1].result == ["VIDEO OF B"] and big.result == ["VIDEO OF M0", "VIDEO OF M1", "VIDEO OF M2",
                                                                "VIDEO OF M3"]
    assert big.total_steps == 2 * 3 and big.step == 6


def test_cancel_a_queued_job_it_never_runs_and_a_running_one_stops_at_the_next_step():
    s = FakeSampler()
    q = _queue(s)
    running = q.submit(_rows("r", steps=50), key=(50,), timeout_s=60)
    queued = q.submit(_rows("q", steps=50), key=(49,), timeout_s=60)
    _until(s.started.is_set)
    s.release(2)
    _until(lambda: running.step == 2)
    q.cancel(queued.id)
    assert queued.state == State.CANCELLED and queued.started is None
    q.cancel(running.id)
    assert running.state == State.CANCELLED
    s.release(1)  # the sampler finishes its current step, then the callback stops it
    _until(lambda: len(s.calls) == 1 and s.steps_run == 3)
    time.sleep(0.05)
    s.release(10)
    time.sleep(0.05)
    assert s.steps_run == 3 and len(s.calls) == 1  # stopped; the cancelled queued job never started
    assert running.result is None and q.counts() == {"queued": 0, "running": 0}


def test_a_job_cancelled_in_a_batch_stops_counting_while_its_batch_mates_finish():
    s = FakeSampler(auto=False)
    q = _queue(s)
    blocker = q.submit(_rows("block", steps=1), key=("other",), timeout_s=60)
    _until(s.started.is_set)
    a, b = q.submit(_rows("a"), key=(3,), timeout_s=60), q.submit(_rows("b"), key=(3,), timeout_s=60)
    s.release()
    _until(lambda: a.state == State.RUNNING)
    q.cancel(a.id)
    s.release(3)
    assert b.wait(10) and b.state == State.SUCCEEDED and b.result == ["VIDEO OF B"]
    assert a.state == State.CANCELLED and a.result is None and blocker.state == State.SUCCEEDED


def test_the_time_limit_stops_the_computation_and_expires_queued_jobs():
    s = FakeSampler()
    q = _queue(s)
    slow = q.submit(_rows("slow", steps=100), key=(100,), timeout_s=0.2)
    waiting = q.submit(_rows("w", steps=100), key=(99,), timeout_s=0.1)
    _until(s.started.is_set)
    s.release()
    time.sleep(0.25)
    s.release()  # the step after the deadline: the callback ends the job and stops the sampler
    assert slow.wait(10) and slow.state == State.FAILED and "time limit of 0.2 s reached at step 2 of 100" in slow.error
    assert waiting.wait(10) and waiting.state == State.FAILED and "while queued" in waiting.error
    assert len(s.calls) == 1 and s.steps_run == 2


def test_a_full_queue_refuses_and_shutdown_cancels_queued_and_drains_running():
    s = FakeSampler()
    q = _queue(s, max_queue=2)
    running = q.submit(_rows("r", steps=4), key=(4,), timeout_s=60)
    _until(s.started.is_set)
    queued = [q.submit(_rows(n), key=(3,), timeout_s=60) for n in "ab"]
    with pytest.raises(QueueFull, match="queue is full"):
        q.submit(_rows("c"), key=(3,), timeout_s=60)
    s.auto = True
    threading.Timer(0.1, s.release).start()
    q.shutdown(grace_s=10)  # the running job gets to finish: it was released within the grace period
    assert running.state == State.SUCCEEDED
    assert all(j.state == State.CANCELLED and "shut down before this job started" in j.error for j in queued)
    with pytest.raises(ShuttingDown):
        q.submit(_rows("d"), key=(3,), timeout_s=60)


def test_shutdown_stops_a_running_job_after_the_grace_period():
    s = FakeSampler()
    q = _queue(s)
    job = q.submit(_rows("r", steps=1000), key=(1000,), timeout_s=600)
    _until(s.started.is_set)
    releaser = threading.Thread(target=lambda: [s.release() or time.sleep(0.01) for _ in range(300)], daemon=True)
    releaser.start()
    q.shutdown(grace_s=0.3)
    assert job.state == State.CANCELLED and "shut down while this job ran" in job.error
    steps = s.steps_run
    time.sleep(0.1)
    assert s.steps_run == steps < 1000  # no further steps once stopped


def test_a_sampler_error_fails_the_batch_without_leaking_details_and_the_queue_goes_on():
    calls = []

    def broken(rows, callback):
        calls.append(rows)
        if len(calls) == 1:
            raise RuntimeError("/secret/path/model.onnx: kernel exploded")
        if len(calls) == 2:
            raise ValueError("identity image must be uint8")
        return ["v"] * len(rows), "1"

    q = _queue(broken)
    a = q.submit(_rows("a"), key=(1,), timeout_s=60)
    assert a.wait(10) and a.state == State.FAILED and "internal error" in a.error and "secret" not in a.error
    b = q.submit(_rows("b"), key=(1,), timeout_s=60)
    assert b.wait(10) and b.state == State.FAILED and b.error == "identity image must be uint8"
    c = q.submit(_rows("c"), key=(1,), timeout_s=60)
    assert c.wait(10) and c.state == State.SUCCEEDED


def test_finished_jobs_beyond_retain_are_forgotten():
    q = _queue(FakeSampler(auto=True), retain=3)
    jobs = [q.submit(_rows(str(i), steps=1), key=(1,), timeout_s=60) for i in range(6)]
    for j in jobs:
        j.wait(10)
    q.submit(_rows("last", steps=1), key=(1,), timeout_s=60).wait(10)
    kept = [j for j in jobs if q.get(j.id) is not None]
    assert len(kept) <= 3 and jobs[0] not in kept
