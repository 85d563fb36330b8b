"""Rules every synthesis backend shares, written once: the val split, the synthetic share, the identity cut-out.

The seeded choices reproduce the sprites plan's draws exactly (same rng streams, same order), so a
sprites dataset keeps its bytes; the other backends make the same choices for the same counts.
"""

from __future__ import annotations

import numpy as np


def seeded_rng(keys: list[int]) -> np.random.Generator:
    """A generator for a tuple of integer keys; negative seeds are folded (SeedSequence refuses them)."""
    return np.random.default_rng([int(k) % 2**32 for k in keys])

VAL_STREAM = 11  # seeded_rng([seed, VAL_STREAM]): the val-subject permutation
SYNTHETIC_STREAM = 10  # seeded_rng([seed, SYNTHETIC_STREAM]): the synthetic-sample permutation


def val_subject_indices(seed: int, n_subjects: int, val_fraction: float) -> set[int]:
    """Indices (< n_subjects) of the val subjects: a seeded choice of round(n * fraction).

    A requested val split (fraction > 0) is never empty and never takes every subject (with one
    subject, none: train cannot be empty). Whole subjects go to val, so no subject is in both splits.
    """
    n_val = round(n_subjects * val_fraction)
    if val_fraction > 0:
        n_val = min(max(n_val, 1), n_subjects - 1)
    return set(seeded_rng([seed, VAL_STREAM]).permutation(n_subjects)[:max(n_val, 0)].tolist())


def synthetic_indices(seed: int, total: int, n_synthetic: int) -> set[int]:
    """Indices (< total) of the samples that get an attribute change: exactly n_synthetic of them, spread
    over the subjects by a seeded permutation (sample k of subject i is index i * samples_per_subject + k)."""
    return set(seeded_rng([seed, SYNTHETIC_STREAM]).permutation(total)[:max(n_synthetic, 0)].tolist())


def subject_on_white(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """An identity image: the pixels of `mask` ((H, W) bool) from `frame` ((H, W, 3)), moved so their
    bounding box is centred, on white; (H, W, 3) uint8. An empty mask gives an all-white image."""
    frame = np.asarray(frame)
    mask = np.asarray(mask, bool)
    if frame.ndim != 3 or frame.shape[-1] != 3 or mask.shape != frame.shape[:2]:
        raise ValueError(f"subject_on_white: expected an (H, W, 3) frame and an (H, W) mask, got {frame.shape} "
                         f"and {mask.shape}")
    h, w = mask.shape
    out = np.full(frame.shape, 255, np.uint8)
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return out
    # The box's centre moves to the image's: its top-left lands at (h // 2 - height // 2, ...), in bounds.
    dy = h // 2 - (ys.min() + ys.max() + 1) // 2
    dx = w // 2 - (xs.min() + xs.max() + 1) // 2
    out[ys + dy, xs + dx] = frame[ys, xs]
    return out


def article(word: str) -> str:
    """The indefinite article for `word`: "an" before a vowel letter, else "a" (also for an empty word)."""
    return "an" if word and word[0].lower() in "aeiou" else "a"
