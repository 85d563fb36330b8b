"""The interface every synthesis backend implements (the registry that picks one is `backends.py`).

The synthesize step owns everything that is the same for every backend: shards, worker processes,
resume, the shared filters, the manifest. A backend only plans jobs and turns one job into a sample:

    plan(cfg)      -> [Job]      every sample of the run, in order; a Job is a JSON-able dict with at
                                 least "sample_id" and "split"; a pure function of the config
    generate(job)  -> Sample     one (identity image, video, caption) triplet, or raise SampleError to
                                 drop this job with a reason (recorded, never fatal)
    fingerprint()  -> dict       what, beyond the job list, changes a sample's bytes (model paths, ...)

Backends are built once per worker process from the run config (`backends.build_backend`), so heavy models
load once per process, not once per sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

Job = dict[str, Any]


class SampleError(ValueError):
    """This job cannot give a sample (corrupt source video, nothing segmented, ...); the message says why."""


@dataclass
class Sample:
    """One generated triplet. identity: (H, W, 3) uint8; frames: (T, H, W, 3) uint8 at the model's size."""

    sample_id: str
    source: str  # "synthetic" | "real"
    subject_id: str
    category: str  # "animal" | "active_object" | "static_object"
    caption: str
    identity: np.ndarray
    frames: np.ndarray
    truth: dict[str, Any] | None = None  # JSON-able ground truth (the sprite spec), kept in ground_truth.jsonl
    masks: np.ndarray | None = None  # (T, H, W) bool subject masks, kept as shards/NNNN/masks/<id>.png
    extra: dict[str, Any] = field(default_factory=dict)  # provenance (source file, clip start, ...) for records


class Backend(Protocol):
    name: str

    def plan(self) -> list[Job]: ...

    def generate(self, job: Job) -> Sample: ...

    def fingerprint(self) -> dict: ...
