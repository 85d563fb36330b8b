"""`DiffusersBackend`: SUGAR's synthetic data pipeline, each stage a diffusers/transformers model.

For one job: subject image -> [text-to-image: one attribute change, synthetic samples only] -> outpaint to
the video frame -> image-to-video with the caption. The identity image is the unchanged subject, segmented
by Grounded SAM and centred on white when `detector_path` and `sam_path` are set, else the subject image
itself. It is made first: a subject Grounded SAM cannot find drops the job before the expensive stages run.

Real-like samples (1 - synthetic_fraction of them) skip the text-to-image step, so the video shows the
subject as it is; synthetic ones change one attribute (colour, texture, style or background) and say so in
the caption. Without `t2i_path` nothing can change an attribute, so every sample is real-like.

Every number drawn for a sample is a function of (seed, subject index, sample index), the diffusion noise
of (seed, job index, stage); the same config gives the same samples whatever the worker or shard.
"""

from __future__ import annotations

import logging

import numpy as np

from components.synthesize.backend import Job, Sample
from components.sample_rules import subject_on_white, synthetic_indices, val_subject_indices

from . import prompts
from .i2v import ImageToVideo
from .loading import default_cache_dir, letterbox, seeded_generator
from .outpaint import Outpainter
from .subjects import load_subjects, subject_image
from .t2i import SubjectDrivenT2I

log = logging.getLogger(__name__)

# Bump when a stage's use of its model changes, so the step does not reuse old shards.
# 2: the segmented identity is centred on white (common.subject_on_white).
VERSION = 2
MODEL_FIELDS = ("t2i_path", "outpaint_path", "i2v_path", "detector_path", "sam_path")
WHITE = (255, 255, 255)


class DiffusersBackend:
    """The `diffusers` synthesis backend (components/synthesize/backend.py's interface).

    Model folders are resolved at construction (a missing one fails now, naming its config field); the
    models load on first use, once per instance, on `synthesize.scale.device` in `synthesize.scale.dtype`.
    """

    name = "diffusers"

    def __init__(self, cfg):
        self.cfg = cfg
        scale = cfg.synthesize.scale
        self.cache_dir = default_cache_dir(cfg)
        if bool(scale.detector_path) != bool(scale.sam_path):
            raise ValueError("synthesize.scale.detector_path and synthesize.scale.sam_path go together (Grounded "
                             "SAM needs both); set both or neither")
        self.t2i = SubjectDrivenT2I(scale, self.cache_dir) if scale.t2i_path else None
        self.outpaint = Outpainter(scale, self.cache_dir)
        self.i2v = ImageToVideo(scale, self.cache_dir)
        self.segmenter = None
        if scale.detector_path:
            from .segment import GroundedSamSegmenter

            self.segmenter = GroundedSamSegmenter(scale, self.cache_dir)

    # ------------------------------------------------------------------------------------------ plan
    def plan(self) -> list[Job]:
        """Every job in order: subjects x samples_per_subject, split by subject (val subjects never train)."""
        from components.sample_rules import seeded_rng

        s = self.cfg.synthesize
        subjects = load_subjects(self.cfg, self.cache_dir)
        n_subjects = len(subjects)
        total = n_subjects * s.samples_per_subject
        n_synthetic = round(total * s.synthetic_fraction) if self.t2i is not None else 0
        if self.t2i is None and s.synthetic_fraction > 0:
            log.warning("synthesize.scale.t2i_path is unset: no attribute changes, all %d samples are real-like "
                        "(synthetic_fraction=%s asked for some)", total, s.synthetic_fraction)
        # The same seeded choices as the sprites plan: exact synthetic count, spread over subjects.
        synthetic = synthetic_indices(s.seed, total, n_synthetic)
        val = val_subject_indices(s.seed, n_subjects, s.val_fraction)
        jobs = []
        for i, subject in enumerate(subjects):
            for j in range(s.samples_per_subject):
                k = i * s.samples_per_subject + j
                rng = seeded_rng([s.seed, 30, i, j])
                change = prompts.draw_change(s.changes, rng) if k in synthetic else None
                text = prompts.draw_text(subject["noun"], subject["category"], change, rng, tuple(s.motions))
                jobs.append({"sample_id": f"{subject['subject_id']}-{j:03d}", "split": "val" if i in val else "train",
                             "index": k, "source": "synthetic" if change else "real", "subject": subject, **text})
        return jobs

    # -------------------------------------------------------------------------------------- generate
    def generate(self, job: Job) -> Sample:
        """One job -> Sample: identity (H, W, 3) and frames (T, H, W, 3), uint8 at the model's size."""
        m, seed = self.cfg.model, self.cfg.synthesize.seed
        h, w, t = m.height, m.width, m.num_frames
        subject = job["subject"]
        source_image = subject_image(subject, h, w)  # (h', w', 3) fitting (H, W), sides multiples of 8
        # First: a subject Grounded SAM does not find drops the job (SampleError) before the diffusion stages.
        identity = self.identity(source_image, subject["noun"])
        image = source_image
        if job["t2i_prompt"] is not None:
            if self.t2i is None:
                raise ValueError(f"job {job['sample_id']} changes an attribute and synthesize.scale.t2i_path is unset; "
                                 "plan the jobs with this config")
            image = self.t2i(source_image, job["t2i_prompt"], seeded_generator(seed, job["index"], 1))
        first = self.outpaint(image, h, w, prompt=job["caption"], generator=seeded_generator(seed, job["index"], 2))
        frames = self.i2v(first, job["caption"], t, seeded_generator(seed, job["index"], 3))
        return Sample(sample_id=job["sample_id"], source=job["source"], subject_id=subject["subject_id"],
                      category=subject["category"], caption=job["caption"],
                      identity=identity, frames=frames,
                      extra={"subject_image": subject.get("name"), "motion": job["motion"],
                             "direction": job["direction"], "change": job["change"], "value": job["value"],
                             "t2i_prompt": job["t2i_prompt"]})

    def identity(self, image: np.ndarray, noun: str) -> np.ndarray:
        """The unchanged subject on white at the model's size (H, W, 3) uint8; SampleError if not segmented."""
        if self.segmenter is not None:
            image = subject_on_white(image, self.segmenter(image, noun))
        return letterbox(image, self.cfg.model.height, self.cfg.model.width, WHITE)[0]

    def fingerprint(self) -> dict:
        """Model locations and the settings that change a sample's bytes (not the local cache paths)."""
        scale = self.cfg.synthesize.scale
        return {"backend": self.name, "version": VERSION, "models": {f: getattr(scale, f) for f in MODEL_FIELDS},
                **scale.model_dump(include={"subjects", "num_inference_steps", "guidance_scale", "t2i_strength",
                                            "detection_threshold", "device", "dtype"})}

