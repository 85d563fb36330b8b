"""Prometheus metrics of the model server, on KServe's `/metrics` (prometheus_client's default registry).

Created once per process: a second server in the same process (tests) shares them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SUBMITTED = Counter("vidcustom_requests_total", "Video requests by outcome at submission",
                    ["api", "outcome"])  # outcome: accepted | invalid | queue_full | too_large | shutting_down
FINISHED = Counter("vidcustom_jobs_finished_total", "Jobs by final state", ["state"])
QUEUED = Gauge("vidcustom_jobs_queued", "Jobs waiting for a worker")
RUNNING = Gauge("vidcustom_jobs_running", "Jobs being computed")
QUEUE_WAIT = Histogram("vidcustom_queue_wait_seconds", "Submission to start of computation",
                       buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600))
RUN_TIME = Histogram("vidcustom_job_run_seconds", "Start of computation to result (MP4 encoded)",
                     buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600))
BATCH_ROWS = Histogram("vidcustom_batch_rows", "Videos computed together in one sampler call",
                       buckets=(1, 2, 4, 8, 16))
MODEL_VERSION = Gauge("vidcustom_model_info", "The model being served (value 1)", ["model", "version"])
RELOADS = Counter("vidcustom_model_reloads_total", "Alias checks that loaded a new version, by outcome",
                  ["outcome"])  # loaded | failed
