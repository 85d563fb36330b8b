"""The server's limits (no KServe import: the CLI reads the defaults for --help)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_queue: int = 16
    max_concurrency: int = 1
    max_batch: int = 4
    request_timeout_s: float = 600.0
    max_request_bytes: int = 27_000_000  # one 20 MB image, base64-encoded, plus the JSON around it
    grace_s: float = 30.0
    poll_s: float = 30.0
    retain_jobs: int = 64
