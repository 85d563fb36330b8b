"""Subject segmenters for real videos: one frame in, the subject's mask out.

Every segmenter is a callable `segmenter(image, noun) -> mask`: image (H, W, 3) uint8 RGB, noun the
subject's class word (a text prompt for detectors; ignored by GrabCut), mask (H, W) bool, True on
the subject. An empty mask means nothing was found; callers decide what area is enough.

    grabcut        OpenCV GrabCut from a centred rectangle; no model, the tiny preset's default
    grounded_sam   Grounding DINO box + SAM mask (paper §1.5 item 6), from synthesize.scale's model paths
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Segmenter(Protocol):
    def __call__(self, image: np.ndarray, noun: str) -> np.ndarray: ...


class GrabCutSegmenter:
    """GrabCut from a centred box: outside it is sure background, inside it is the subject's search area.

    Real clips are framed on their subject, so a centred box is a usable prior without any model.
    `margin` is the share of each side left outside the box (0.1: the box spans 80 % of width and
    height).

    seed="colour" (default) starts GrabCut from a mask rather than the bare box: a pixel in the box is
    "probably background" when its colour is common in the border outside the box and "probably
    subject" otherwise. The plain box start (seed="rect") fits its subject colour model to the whole box,
    mostly background when the subject is small, and on 32x32 frames the mask then grew a halo of
    background around the subject (IoU with the true shape down to 0.2-0.4 in tests/test_ingest.py's
    disc videos, 0.73+ with colour seeds). When no pixel of the box has a colour
    of its own, it falls back to the plain box.

    Deterministic: OpenCV's k-means seeding draws from its global RNG, which is reset before every
    call, so the mask depends on the image alone.
    """

    name = "grabcut"

    def __init__(self, iterations: int = 5, margin: float = 0.1, seed: str = "colour",
                 largest_component: bool = True):
        if not 0.0 < margin < 0.5:
            raise ValueError(f"margin={margin} must be in (0, 0.5): the share of each side outside the box")
        if seed not in ("colour", "rect"):
            raise ValueError(f"seed={seed!r}: choose colour or rect")
        self.iterations = iterations
        self.margin = margin
        self.seed = seed
        self.largest_component = largest_component

    def __call__(self, image: np.ndarray, noun: str = "") -> np.ndarray:
        """image (H, W, 3) uint8 -> (H, W) bool subject mask (all False when GrabCut finds nothing)."""
        import cv2

        image = np.ascontiguousarray(image, dtype=np.uint8)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"GrabCut needs an (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        x0, y0 = int(round(w * self.margin)), int(round(h * self.margin))
        if x0 < 1 or y0 < 1 or w - 2 * x0 < 1 or h - 2 * y0 < 1:
            return np.zeros((h, w), bool)  # too small to leave any background outside the box
        box = np.zeros((h, w), bool)
        box[y0:h - y0, x0:w - x0] = True
        mask = np.where(box, cv2.GC_PR_FGD, cv2.GC_BGD).astype(np.uint8)
        if self.seed == "colour":
            seeded = np.where(_border_coloured(image, ~box), cv2.GC_PR_BGD, cv2.GC_PR_FGD).astype(np.uint8)
            if (seeded[box] == cv2.GC_PR_FGD).any():
                mask[box] = seeded[box]
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(0)  # GMM initialisation runs k-means++ on cv2's global RNG
        try:
            cv2.grabCut(image, mask, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:
            # e.g. a flat frame: no colour statistics to fit; report "nothing found", not a crash.
            return np.zeros((h, w), bool)
        subject = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
        if self.largest_component and subject.any():
            # Stray background specks would stretch the subject's box and off-centre the identity image.
            n, labels, stats, _ = cv2.connectedComponentsWithStats(subject.astype(np.uint8), connectivity=8)
            if n > 2:
                subject = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        return subject


def _border_coloured(image: np.ndarray, border: np.ndarray, step: int = 16, min_share: float = 0.002) -> np.ndarray:
    """(H, W) bool: pixels whose colour is common in `border` ((H, W) bool).

    Colours are binned into cubes of `step` levels per channel; a bin is a border colour when it holds
    at least `min_share` of the border's pixels (rare bins are noise, or the subject touching the
    border), and its 26 neighbours count too, so compression noise across a bin edge does not turn
    background into subject.
    """
    n = 256 // step
    q = image.astype(np.int64) // step
    bins = (q[..., 0] * n + q[..., 1]) * n + q[..., 2]
    counts = np.bincount(bins[border], minlength=n**3).reshape(n, n, n)
    common = np.pad(counts >= max(1.0, min_share * border.sum()), 1)
    grown = np.zeros((n, n, n), bool)
    for dr in range(3):
        for dg in range(3):
            for db in range(3):
                grown |= common[dr:dr + n, dg:dg + n, db:db + n]
    return grown.reshape(-1)[bins]


def build_segmenter(cfg) -> Segmenter:
    """The segmenter `cfg.synthesize.ingest.segmenter` names, built from the run config."""
    name = cfg.synthesize.ingest.segmenter
    if name == "grabcut":
        return GrabCutSegmenter()
    if name == "grounded_sam":
        # Lazy: pulls in torch/transformers and loads two models.
        from .scale.loading import default_cache_dir
        from .scale.segment import GroundedSamSegmenter

        return GroundedSamSegmenter(cfg.synthesize.scale, default_cache_dir(cfg))
    raise ValueError(f"synthesize.ingest.segmenter={name!r} is unknown; choose grabcut or grounded_sam")
