"""The `kserve.Model`: the loaded sampler, the job queue every request goes through (so the concurrency and
queue limits hold for the open inference protocol and the job API alike), and the open inference protocol's
`predict`.

Open inference protocol request (`POST /v2/models/{name}/infer`): BYTES inputs `identity_image` (base64
PNG/JPEG) and `prompt`, one element per video; optional inputs `seed`, `num_inference_steps` (INT64),
`image_scale`, `text_scale` (FP64), `num_frames` (INT64) and request `parameters` of the same names.
Response: BYTES `video` (base64 H.264 MP4) and INT64 `num_frames`, `height`, `width`, one element per video.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading

import kserve
from kserve.errors import InferenceError, InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from components.server import metrics
from components.server.jobs import Job, JobQueue, QueueFull, ShuttingDown, State
from components.server.limits import Limits
from components.server.loader import AliasWatcher, LoadedModel, ModelRef, load

log = logging.getLogger(__name__)


class VidcustomModel(kserve.Model):
    def __init__(self, name: str, model_uri: str, limits: Limits = Limits()):
        super().__init__(name)
        self.ref = ModelRef.parse(model_uri)
        self.limits = limits
        self.current: LoadedModel | None = None
        self.queue: JobQueue | None = None
        self.watcher: AliasWatcher | None = None
        self._swap_lock = threading.Lock()

    # ------------------------------------------------------------------ life cycle

    def load(self) -> bool:
        self._swap(load(self.ref))
        lim = self.limits
        self.queue = JobQueue(self._run_batch, self._encode, max_queue=lim.max_queue, workers=lim.max_concurrency,
                              max_batch=lim.max_batch, retain=lim.retain_jobs,
                              current_version=lambda: self.current.version)
        self.watcher = AliasWatcher(self.ref, self.current.version, self._swap, lim.poll_s).start()
        self.ready = True
        return self.ready

    def stop(self) -> None:
        """SIGTERM (via KServe's model server, after uvicorn drained its connections): not ready, no new jobs,
        running ones get the grace period, then everything stops."""
        self.ready = False
        if self.watcher:
            self.watcher.stop()
        if self.queue:
            log.info("draining: %s", self.queue.counts())
            self.queue.shutdown(self.limits.grace_s)

    def _swap(self, model: LoadedModel) -> None:
        with self._swap_lock:
            old, self.current = self.current, model
        if old is not None:
            metrics.MODEL_VERSION.remove(old.ref.name or old.ref.uri, str(old.version))
        metrics.MODEL_VERSION.labels(model.ref.name or model.ref.uri, str(model.version)).set(1)

    # ------------------------------------------------------------------ the work

    def parse(self, records: list[dict], params: dict | None = None) -> list[dict]:
        """Rows validated against the served model (components/serving.py: the pyfuncs' contract)."""
        from components.serving import MAX_ROWS, parse_row

        if not records:
            raise ValueError("the request has no rows; send identity_image and prompt")
        if len(records) > MAX_ROWS:
            raise ValueError(f"request has {len(records)} rows; the limit is {MAX_ROWS} videos per request")
        c = self.current.config
        rows, errors = [], []
        for i, r in enumerate(records):
            try:
                rows.append(parse_row(r, c["height"], c["width"], params, c["num_inference_steps"], c["num_frames"]))
            except ValueError as err:
                errors.append(f"row {i}: {err}" if len(records) > 1 else str(err))
        if errors:
            raise ValueError("; ".join(errors))
        return rows

    def submit(self, rows: list[dict], timeout_s: float | None = None) -> Job:
        lim = self.limits
        timeout = lim.request_timeout_s if timeout_s is None else min(float(timeout_s), lim.request_timeout_s)
        r = rows[0]
        key = (r["num_inference_steps"], r["image_scale"], r["text_scale"])
        if any((x["num_inference_steps"], x["image_scale"], x["text_scale"]) != key for x in rows):
            # a job is one sampler call (one progress bar): rows that differ belong in separate requests
            raise ValueError("all rows of one request must share num_inference_steps, image_scale and text_scale; "
                             "send rows that differ as separate requests")
        return self.queue.submit(rows, key, timeout)

    def _run_batch(self, rows: list[dict], callback) -> tuple[list, str | None]:
        model = self.current  # the version at the start; a reload meanwhile serves the next batch
        r = rows[0]
        videos = model.sampler.generate([x["image"] for x in rows], [x["prompt"] for x in rows],
                                        [x["seed"] for x in rows], num_inference_steps=r["num_inference_steps"],
                                        image_scale=r["image_scale"], text_scale=r["text_scale"], callback=callback)
        return videos, model.version

    def _encode(self, videos: list) -> list[bytes]:
        from components.serving import mp4_bytes

        fps = self.current.config["fps"]
        return [mp4_bytes(v, fps) for v in videos]

    # ------------------------------------------------------------------ open inference protocol

    async def predict(self, payload: InferRequest, headers: dict | None = None,
                      response_headers: dict | None = None) -> InferResponse:
        if not isinstance(payload, InferRequest):
            raise InvalidInput("use the open inference protocol: POST /v2/models/{name}/infer")
        try:
            rows = await asyncio.to_thread(self.parse, _records(payload), dict(payload.parameters or {}))
            job = self.submit(rows)
        except ValueError as err:
            metrics.SUBMITTED.labels("infer", "invalid").inc()
            raise InvalidInput(str(err)) from None
        except QueueFull:
            metrics.SUBMITTED.labels("infer", "queue_full").inc()
            raise
        except ShuttingDown:
            metrics.SUBMITTED.labels("infer", "shutting_down").inc()
            raise
        metrics.SUBMITTED.labels("infer", "accepted").inc()
        await wait_for(job)
        if job.state != State.SUCCEEDED:
            raise InferenceError(f"job {job.id} {job.state.value}: {job.error}")
        c, n = self.current.config, len(job.result)
        outputs = [InferOutput("video", [n], "BYTES", [base64.b64encode(b).decode() for b in job.result]),
                   InferOutput("num_frames", [n], "INT64", [c["num_frames"]] * n),
                   InferOutput("height", [n], "INT64", [c["height"]] * n),
                   InferOutput("width", [n], "INT64", [c["width"]] * n)]
        return InferResponse(payload.id or job.id, self.name, outputs, model_version=job.model_version)


async def wait_for(job: Job) -> None:
    """Await a job without holding a thread (the queue's worker calls back into the event loop)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def _wake(_job):
        loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

    job.add_done_callback(_wake)
    await done


def _records(payload: InferRequest) -> list[dict]:
    """The request's named inputs -> one dict per video (element i of every input)."""
    columns = {}
    for inp in payload.inputs:
        data = inp.data
        values = data.tolist() if hasattr(data, "tolist") else list(data or [])
        columns[inp.name] = [v.decode() if isinstance(v, bytes) else v for v in values]
    missing = {"identity_image", "prompt"} - set(columns)
    if missing:
        raise ValueError(f"missing inputs {sorted(missing)}; send identity_image (BYTES, base64 PNG/JPEG) and prompt "
                         "(BYTES)")
    unknown = set(columns) - {"identity_image", "prompt", "seed", "num_inference_steps", "image_scale", "text_scale",
                              "num_frames"}
    if unknown:
        raise ValueError(f"unknown inputs {sorted(unknown)}")
    n = len(columns["identity_image"])
    for name, values in columns.items():
        if len(values) != n:
            raise ValueError(f"input {name} has {len(values)} elements, identity_image has {n}: one per video")
    return [{name: values[i] for name, values in columns.items()} for i in range(n)]
