"""The job queue: bounded, a fixed number of worker threads, compatible jobs batched into one sampler call,
cancel and time limits that stop the computation at the next denoising step.

A job is one request (one or more videos). `run_batch(rows, callback)` computes the rows of a batch and calls
`callback(step, total)` after every denoising step; the queue raises `Stopped` from that callback once no job
of the batch is still wanted (all cancelled or past their time limit), which ends the computation. A job
cancelled while batched with live ones stops counting at once; its rows finish with the others' (wasted work
bounded by the batch).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable

from components.server import metrics

log = logging.getLogger(__name__)


class State(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (State.SUCCEEDED, State.FAILED, State.CANCELLED)


class QueueFull(Exception):
    """The queue holds max_queue jobs: come back later (HTTP 503 with Retry-After)."""


class ShuttingDown(Exception):
    """The server is draining after SIGTERM and takes no new work (HTTP 503)."""


class Stopped(Exception):
    """Raised from the step callback: nobody wants this batch any more."""


@dataclass
class Job:
    rows: list[dict]
    key: tuple  # jobs with equal keys may share a sampler call (same steps and guidance scales)
    timeout_s: float
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: State = State.QUEUED
    step: int = 0
    total_steps: int = 0
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    result: list | None = None  # what `finish` made of the rows' videos (MP4 bytes)
    model_version: str | None = None
    _deadline: float = 0.0
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _callbacks: list = field(default_factory=list, repr=False)

    def __post_init__(self):
        self._deadline = time.monotonic() + self.timeout_s

    @property
    def expired(self) -> bool:
        return time.monotonic() > self._deadline

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def add_done_callback(self, fn: Callable[["Job"], None]) -> None:
        """fn(job) once the job is final (at once if it already is); called from a worker thread."""
        self._callbacks.append(fn)
        if self._done.is_set():
            fn(self)

    def status(self) -> dict:
        return {"id": self.id, "state": self.state.value, "videos": len(self.rows), "model_version": self.model_version,
                "progress": {"step": self.step, "total_steps": self.total_steps,
                             "fraction": round(self.step / self.total_steps, 4) if self.total_steps else 0.0},
                "created": self.created, "started": self.started, "finished": self.finished, "error": self.error,
                "timeout_s": self.timeout_s}


class JobQueue:
    """Bounded queue + `workers` threads. `run_batch(rows, callback) -> (videos, model_version)`;
    `finish(videos) -> result` turns a job's videos into what is kept (MP4 bytes), in the worker thread."""

    def __init__(self, run_batch: Callable, finish: Callable, max_queue: int = 16, workers: int = 1,
                 max_batch: int = 4, retain: int = 64, current_version: Callable[[], str | None] = lambda: None):
        if max_queue < 1 or workers < 1 or max_batch < 1:
            raise ValueError("max_queue, workers and max_batch must be at least 1")
        self.run_batch, self.finish, self.current_version = run_batch, finish, current_version
        self.max_queue, self.max_batch, self.retain = max_queue, max_batch, retain
        self._pending: deque[Job] = deque()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._running: set[str] = set()
        self._cond = threading.Condition()
        self._closing = False
        self._threads = [threading.Thread(target=self._work, name=f"vidcustom-worker-{i}", daemon=True)
                         for i in range(workers)]
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------------ the API's side

    def submit(self, rows: list[dict], key: tuple, timeout_s: float) -> Job:
        with self._cond:
            if self._closing:
                raise ShuttingDown("the server is shutting down and takes no new jobs; retry on another replica")
            if len(self._pending) >= self.max_queue:
                raise QueueFull(f"the queue is full ({self.max_queue} jobs waiting); retry later")
            job = Job(rows=rows, key=key, timeout_s=timeout_s)
            self._jobs[job.id] = job
            self._pending.append(job)
            self._evict()
            metrics.QUEUED.set(len(self._pending))
            self._cond.notify()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._cond:
            return self._jobs.get(job_id)

    def position(self, job: Job) -> int | None:
        """0-based place in the queue of a queued job."""
        with self._cond:
            try:
                return self._pending.index(job)
            except ValueError:
                return None

    def cancel(self, job_id: str) -> Job | None:
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None or job.state.final:
                return job
            if job in self._pending:
                self._pending.remove(job)
                metrics.QUEUED.set(len(self._pending))
            self._end(job, State.CANCELLED, "cancelled by the client")
        return job

    def counts(self) -> dict:
        with self._cond:
            return {"queued": len(self._pending), "running": len(self._running)}

    def shutdown(self, grace_s: float) -> None:
        """Take no new jobs, cancel the queued ones, give running ones `grace_s` to finish, then stop them."""
        with self._cond:
            self._closing = True
            while self._pending:
                self._end(self._pending.popleft(), State.CANCELLED, "the server shut down before this job started")
            metrics.QUEUED.set(0)
            self._cond.notify_all()
        deadline = time.monotonic() + grace_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            for job_id in list(self._running):
                self._end(self._jobs[job_id], State.CANCELLED, "the server shut down while this job ran")
        for t in self._threads:
            t.join(5.0)

    # ------------------------------------------------------------------ the workers' side

    def _end(self, job: Job, state: State, error: str | None = None, result=None) -> None:
        """Make a job final (under the lock); the first call wins."""
        if job.state.final:
            return
        job.state, job.error, job.result, job.finished = state, error, result, time.time()
        self._running.discard(job.id)
        metrics.RUNNING.set(len(self._running))
        metrics.FINISHED.labels(state.value).inc()
        job._done.set()
        for fn in job._callbacks:
            try:
                fn(job)
            except Exception:  # a waiter's hook must not break the queue
                log.exception("job %s: done callback failed", job.id)

    def _evict(self) -> None:
        """Forget the oldest finished jobs beyond `retain` (their results are the memory a server holds)."""
        finished = [j for j in self._jobs.values() if j.state.final]
        for job in finished[: max(0, len(finished) - self.retain)]:
            del self._jobs[job.id]

    def _take_batch(self) -> list[Job] | None:
        with self._cond:
            while not self._pending and not self._closing:
                self._cond.wait()
            if not self._pending:
                return None
            first = self._pending.popleft()
            batch, rows = [first], len(first.rows)
            for job in list(self._pending):
                if job.key == first.key and rows + len(job.rows) <= self.max_batch:
                    self._pending.remove(job)
                    batch.append(job)
                    rows += len(job.rows)
            now = time.time()
            live = []
            for job in batch:
                if job.expired:
                    self._end(job, State.FAILED, f"time limit of {job.timeout_s:g} s reached while queued")
                    continue
                job.state, job.started, job.model_version = State.RUNNING, now, self.current_version()
                self._running.add(job.id)
                metrics.QUEUE_WAIT.observe(now - job.created)
                live.append(job)
            metrics.QUEUED.set(len(self._pending))
            metrics.RUNNING.set(len(self._running))
            return live

    def _callback(self, batch: list[Job], chunk: int, chunks: int) -> Callable[[int, int], None]:
        """Progress of chunk `chunk` of `chunks` (rows beyond max_batch run as further sampler calls)."""
        def on_step(step: int, total: int) -> None:
            with self._cond:
                for job in batch:
                    if job.state.final:
                        continue
                    job.step, job.total_steps = chunk * total + step + 1, chunks * total
                    if job.expired:
                        self._end(job, State.FAILED, f"time limit of {job.timeout_s:g} s reached at step "
                                                     f"{job.step} of {job.total_steps}; the computation was stopped")
                if all(job.state.final for job in batch):
                    raise Stopped
        return on_step

    def _run(self, batch: list[Job]) -> tuple[list, str | None]:
        """The batch's rows, at most max_batch per sampler call (one request may carry more)."""
        rows = [row for job in batch for row in job.rows]
        chunks = [rows[i: i + self.max_batch] for i in range(0, len(rows), self.max_batch)]
        videos, version = [], None
        for k, chunk in enumerate(chunks):
            metrics.BATCH_ROWS.observe(len(chunk))
            out, version = self.run_batch(chunk, self._callback(batch, k, len(chunks)))
            videos += list(out)
        return videos, version

    def _work(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            if not batch:
                continue
            t0 = time.monotonic()
            try:
                videos, version = self._run(batch)
                i = 0
                for job in batch:
                    mine = videos[i: i + len(job.rows)]
                    i += len(job.rows)
                    if job.state.final:  # cancelled or timed out while its batch-mates went on
                        continue
                    result = self.finish(mine)
                    with self._cond:
                        job.model_version = version
                        self._end(job, State.SUCCEEDED, result=result)
                metrics.RUN_TIME.observe(time.monotonic() - t0)
            except Stopped:
                pass
            except ValueError as err:  # the sampler refused these inputs: the client's to fix
                with self._cond:
                    for job in batch:
                        self._end(job, State.FAILED, str(err))
            except Exception:
                log.exception("jobs %s failed", [j.id for j in batch])
                with self._cond:
                    for job in batch:
                        self._end(job, State.FAILED, f"internal error; the server log has the details (job {job.id})")
            with self._cond:
                self._evict()
