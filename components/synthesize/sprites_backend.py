"""The `sprites` backend behind the common interface: procedural jobs, rendered samples with ground truth."""

from __future__ import annotations

from components import sprites
from components.sample_rules import synthetic_indices, val_subject_indices

from .backend import Job, Sample


def plan_specs(cfg) -> list[tuple[sprites.SampleSpec, str]]:
    """Every sample of the run in order, with its split: [(spec, "train" | "val")], split by subject."""
    s = cfg.synthesize
    subjects = sprites.training_subjects(s.seed, s.num_subjects, s.subject_size)
    total = s.num_subjects * s.samples_per_subject
    # Exactly round(total * fraction) synthetic samples, spread over subjects by a seeded permutation.
    synthetic = synthetic_indices(s.seed, total, round(total * s.synthetic_fraction))
    val = val_subject_indices(s.seed, s.num_subjects, s.val_fraction)
    out = []
    for i, subject in enumerate(subjects):
        for j in range(s.samples_per_subject):
            spec = sprites.sample_spec(s.seed, subject, i, j, (i * s.samples_per_subject + j) in synthetic,
                                      s.caption_colour, s.motions, s.changes, s.caption_position)
            out.append((spec, "val" if i in val else "train"))
    return out


class SpritesBackend:
    name = "sprites"

    def __init__(self, cfg):
        self.cfg = cfg
        m = cfg.model
        self.size = (m.height, m.width, m.num_frames)

    def plan(self) -> list[Job]:
        return [{"sample_id": spec.sample_id, "split": split, "spec": sprites.spec_to_dict(spec)}
                for spec, split in plan_specs(self.cfg)]

    def generate(self, job: Job) -> Sample:
        spec = sprites.spec_from_dict(job["spec"])
        h, w, t = self.size
        frames, masks = sprites.render(spec, h, w, t)
        identity = sprites.identity_image(spec, h, w, t, frames, masks)
        return Sample(sample_id=spec.sample_id, source=spec.source, subject_id=spec.subject.subject_id,
                      category=spec.subject.category, caption=spec.caption, identity=identity, frames=frames,
                      truth=job["spec"], masks=masks)

    def fingerprint(self) -> dict:
        return {"sprites_generator": 2}  # bump when rendering changes, so old shards are not reused
