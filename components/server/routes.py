"""The async job API beside the open inference protocol, the request-size limit, and error bodies without
stack traces.

    POST   /v1/jobs                  {"identity_image": base64, "prompt": str, optional "seed",
                                      "num_inference_steps", "image_scale", "text_scale", "num_frames",
                                      "timeout_s"}  -> 202 {"id", "state", "status_url", "video_url"}
    GET    /v1/jobs/{id}             -> state, progress {step, total_steps, fraction}, queue position, error
    DELETE /v1/jobs/{id}             -> cancels: a queued job never runs, a running one stops at its next step
    GET    /v1/jobs/{id}/video.mp4   -> the MP4 once succeeded (409 before, 404 for unknown or forgotten jobs)

Errors are `{"error": message}` with 400 (bad input, the field named), 404, 409, 413 (too large),
503 + Retry-After (queue full or shutting down).
"""

from __future__ import annotations

import asyncio
import json
import logging

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from components.server import metrics
from components.server.jobs import QueueFull, ShuttingDown, State

log = logging.getLogger(__name__)

RETRY_AFTER_S = "5"


def error(status: int, message: str, **headers) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


class BodyLimit:
    """ASGI middleware: refuse bodies over `max_bytes` (413) by Content-Length, or while reading a chunked one,
    before the application parses them."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    def _too_large(self) -> JSONResponse:
        return error(413, f"request body is over the limit of {self.max_bytes:,} bytes (--max-request-bytes); "
                          "send a smaller identity image")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            metrics.SUBMITTED.labels("http", "too_large").inc()
            return await self._too_large()(scope, receive, send)
        seen, started = 0, False

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            metrics.SUBMITTED.labels("http", "too_large").inc()
            if not started:
                await self._too_large()(scope, receive, send)


class _TooLarge(Exception):
    pass


def install(app: FastAPI, model) -> None:
    """Add the job API, the size limit and the 503 handlers to KServe's FastAPI app."""
    app.add_middleware(BodyLimit, max_bytes=model.limits.max_request_bytes)
    app.add_exception_handler(QueueFull, lambda _r, exc: error(503, str(exc), **{"Retry-After": RETRY_AFTER_S}))
    app.add_exception_handler(ShuttingDown, lambda _r, exc: error(503, str(exc)))
    app.include_router(job_router(model))


def job_router(model) -> APIRouter:
    router = APIRouter(prefix="/v1/jobs")

    def status(job) -> dict:
        body = job.status()
        body["queue_position"] = model.queue.position(job) if job.state == State.QUEUED else None
        body["status_url"] = f"/v1/jobs/{job.id}"
        body["video_url"] = f"/v1/jobs/{job.id}/video.mp4"
        return body

    @router.post("", status_code=202)
    async def submit(request: Request):
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            metrics.SUBMITTED.labels("jobs", "invalid").inc()
            return error(400, "the body must be a JSON object: {\"identity_image\": base64, \"prompt\": str, ...}")
        if not isinstance(body, dict):
            metrics.SUBMITTED.labels("jobs", "invalid").inc()
            return error(400, "the body must be a JSON object, one video per job")
        timeout = body.pop("timeout_s", None)
        unknown = set(body) - {"identity_image", "prompt", "seed", "num_inference_steps", "image_scale",
                               "text_scale", "num_frames"}
        try:
            if unknown:
                raise ValueError(f"unknown fields {sorted(unknown)}")
            if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                        or not 0 < timeout):
                raise ValueError(f"timeout_s={timeout!r} must be a positive number of seconds (the server caps it "
                                 f"at {model.limits.request_timeout_s:g})")
            rows = await asyncio.to_thread(model.parse, [body])  # decoding a 40 MP photo: off the event loop
            job = model.submit(rows, timeout)
        except ValueError as err:
            metrics.SUBMITTED.labels("jobs", "invalid").inc()
            return error(400, str(err))
        except QueueFull as err:
            metrics.SUBMITTED.labels("jobs", "queue_full").inc()
            return error(503, str(err), **{"Retry-After": RETRY_AFTER_S})
        except ShuttingDown as err:
            metrics.SUBMITTED.labels("jobs", "shutting_down").inc()
            return error(503, str(err))
        metrics.SUBMITTED.labels("jobs", "accepted").inc()
        return JSONResponse(status(job), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})

    def find(job_id: str):
        job = model.queue.get(job_id)
        if job is None:
            return None, error(404, f"no job {job_id!r} (unknown, or finished long enough ago to be forgotten: the "
                                    f"server keeps the last {model.limits.retain_jobs})")
        return job, None

    @router.get("/{job_id}")
    async def get(job_id: str):
        job, missing = find(job_id)
        return missing or status(job)

    @router.delete("/{job_id}")
    async def cancel(job_id: str):
        job, missing = find(job_id)
        if missing:
            return missing
        model.queue.cancel(job_id)
        return status(job)

    @router.get("/{job_id}/video.mp4")
    async def video(job_id: str):
        job, missing = find(job_id)
        if missing:
            return missing
        if job.state != State.SUCCEEDED:
            return error(409, f"job {job_id} is {job.state.value}" + (f": {job.error}" if job.error else
                                                                       "; poll its status until it succeeds"))
        return Response(job.result[0], media_type="video/mp4")

    return router
