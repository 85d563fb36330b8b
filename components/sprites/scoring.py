"""Scores of a generated video against a sprite spec's ground truth: identity, motion, attribute.

No neural judge: the truth is the spec, rendered afresh at the video's size (`sprites.render`), so the
tiny preset can measure what the model learned from the image, the text and the motion on CPU.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from .render import (PIXEL_BLOCK, _erode, _frame, background_image, expected_displacement, fill_holes, pose,
                     render)
from .spec import FG_THRESHOLD, PALETTE, SHADE, SampleSpec


MAX_COLOUR_RESIDUAL = 30.0  # RGB distance; true pixels through the codec: 99.9th percentile 24
MIN_COLOUR_WEIGHT = 0.2     # the palette colour's weight in the pixel (1 full colour, SHADE for texture)


@functools.lru_cache(maxsize=64)
def _unmix_bases(background: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per palette colour k: basis B_k = [c_k, bg] (K, 3, 2) and its pseudo-inverse (K, 2, 3)."""
    bg = np.asarray(background, np.float64)
    bases = np.stack([np.stack([np.asarray(c, np.float64), bg], axis=1) for c in PALETTE.values()])
    return bases, np.linalg.pinv(bases)  # pinv: on black the bg column is zero and gets coefficient 0


def _classify_one(p: np.ndarray, background: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    bases, pinvs = _unmix_bases(background)
    coef = np.einsum("kij,nj->nki", pinvs, p)                      # (N, K, 2)
    resid = np.linalg.norm(p[:, None] - np.einsum("kij,nkj->nki", bases, coef), axis=-1)
    resid[coef[..., 0] <= 0] = np.inf
    label = resid.argmin(axis=1)
    best = coef[np.arange(len(p)), label]
    # A pixel is a palette colour only if that colour makes up a real part of it and the fit is close:
    # greys blend exactly into grey/white backgrounds with a trace of any colour, and would otherwise
    # count as whatever colour the trace happens to be.
    label[~(resid.min(axis=1) <= MAX_COLOUR_RESIDUAL) | (best[:, 0] < MIN_COLOUR_WEIGHT)] = -1
    fg_share = 1.0 - best[:, 1] if any(background) else np.ones(len(p))
    return label, best[:, 0] / np.maximum(fg_share, 1e-3)


def classify_colours(pixels: np.ndarray, background) -> tuple[np.ndarray, np.ndarray]:
    """Nearest palette colour up to shading and blending with the background.

    A sprite pixel is x * c_k + y * bg (x < 1: shade or anti-aliased edge; y: the background share),
    so each pixel is fitted in every plane span(c_k, bg) and takes the colour with the smallest
    residual; x < 0 (the complementary hue) is not allowed, and a pixel whose best fit is poor (residual >
    MAX_COLOUR_RESIDUAL) or holds little colour (x < MIN_COLOUR_WEIGHT, e.g. a grey) is no colour (-1). pixels (..., 3); background: one RGB
    colour, or per-pixel colours of the same shape as `pixels` (patterned scenes). Returns (label
    (...) int, index into PALETTE, -1 if no fit; brightness (...) = x / (1 - y), 1 for full colour,
    SHADE for the texture tone).
    """
    p = np.asarray(pixels, np.float64).reshape(-1, 3)
    shape = np.shape(pixels)[:-1]
    bg = np.asarray(background, np.float64)
    if bg.ndim == 1:
        label, bright = _classify_one(p, tuple(int(c) for c in bg))
        return label.reshape(shape), bright.reshape(shape)
    bg = np.broadcast_to(bg, np.shape(pixels)).reshape(-1, 3)
    label, bright = np.empty(len(p), np.int64), np.empty(len(p))
    colours, inverse = np.unique(bg, axis=0, return_inverse=True)  # scenes have two tones
    for k, colour in enumerate(colours):
        sel = inverse.ravel() == k
        label[sel], bright[sel] = _classify_one(p[sel], tuple(int(c) for c in colour))
    return label.reshape(shape), bright.reshape(shape)


def foreground(frames: np.ndarray, background) -> np.ndarray:
    """(T, H, W, 3) -> bool (T, H, W): pixels far from the background (one colour or an (H, W, 3) image)."""
    diff = frames.astype(np.float64) - np.asarray(background, np.float64)
    return np.linalg.norm(diff, axis=-1) > FG_THRESHOLD


def _shape_iou(fg: np.ndarray, spec: SampleSpec) -> float:
    """Mean over frames of IoU(filled foreground, filled foreground of the true frame at the same centroid).

    The reference frame is rendered afresh at the observed centroid, with the true frame's scale and
    turn, and thresholded the same way, so a faithful video scores ~1 wherever it puts the subject.
    """
    t_, h, w = fg.shape
    bg = background_image(spec.background, h, w)
    p = pose(spec, h, w, t_)
    ious = []
    for t in range(t_):
        filled = fill_holes(fg[t])
        ys, xs = np.nonzero(filled)
        if len(ys) == 0:
            ious.append(0.0)
            continue
        ref0 = fill_holes(foreground(_frame(spec, (w / 2, h / 2), h, w, p.scales[t], p.angles[t])[0][None], bg)[0])
        ys0, xs0 = np.nonzero(ref0)
        off = np.array([xs0.mean() - w / 2, ys0.mean() - h / 2]) if len(ys0) else np.zeros(2)  # asymmetric shapes
        centre = tuple(np.array([xs.mean(), ys.mean()]) - off)
        ref = fill_holes(foreground(_frame(spec, centre, h, w, p.scales[t], p.angles[t])[0][None], bg)[0])
        ious.append((ref & filled).sum() / max((ref | filled).sum(), 1))
    return float(np.mean(ious))


def _shaded_share(frames: np.ndarray, fg: np.ndarray, background: np.ndarray) -> float:
    """Share of interior foreground pixels (edges eroded away) in the texture's dark tone."""
    core = _erode(fg)
    if not core.any():
        return 0.0
    bg = np.broadcast_to(background, frames.shape)
    _, bright = classify_colours(frames[core], bg[core])
    # Linear in brightness, so a pixel half covered by a dark band counts half: the share does not
    # depend on where the texture falls relative to the pixel grid.
    return float(np.mean((1.0 - np.clip(bright, SHADE, 1.0)) / (1.0 - SHADE)))


def _texture_map_match(frames: np.ndarray, fg: np.ndarray, spec: SampleSpec, background: np.ndarray) -> float:
    """Where the dark tone lies, not only how much of it: per frame, the true frame is rendered at the
    observed centroid and the dark-tone maps are compared inside both eroded subjects; 1 - mean |diff| /
    0.25, clipped, averaged over frames with a subject. Tells stripes from dots of similar area."""
    t_, h, w = fg.shape
    p = pose(spec, h, w, t_)
    out = []
    for t in range(t_):
        ys, xs = np.nonzero(fg[t])
        if len(ys) == 0:
            continue
        ref, _ = _frame(spec, tuple(p.centres[t] + [xs.mean(), ys.mean()] - _centroid(spec, p, t, h, w)), h, w,
                        p.scales[t], p.angles[t])
        both = _erode(fg[t]) & _erode(foreground(ref[None], background)[0])
        if not both.any():
            out.append(0.0)
            continue
        _, b_gen = classify_colours(frames[t][both], background[both])
        _, b_ref = classify_colours(ref[both], background[both])
        dark = lambda b: (1.0 - np.clip(b, SHADE, 1.0)) / (1.0 - SHADE)  # noqa: E731
        out.append(float(np.clip(1.0 - np.abs(dark(b_gen) - dark(b_ref)).mean() / 0.25, 0.0, 1.0)))
    return float(np.mean(out)) if out else 0.0


def _centroid(spec: SampleSpec, p, t: int, h: int, w: int) -> np.ndarray:
    """Centroid (x, y) of the true frame t's foreground (differs from the box centre for asymmetric shapes)."""
    bg = background_image(spec.background, h, w)
    m = foreground(_frame(spec, p.centres[t], h, w, p.scales[t], p.angles[t])[0][None], bg)[0]
    ys, xs = np.nonzero(m)
    return np.array([xs.mean(), ys.mean()]) if len(ys) else np.asarray(p.centres[t])


def _hollowness(fg: np.ndarray) -> np.ndarray:
    """Per frame 1 - |fg| / |filled fg|: ~0 for a filled subject, large for an outline. (T,)"""
    out = np.zeros(len(fg))
    for t, m in enumerate(fg):
        filled = fill_holes(m).sum()
        out[t] = 1.0 - m.sum() / filled if filled else 0.0
    return out


def _split_block_share(fg: np.ndarray, b: int = PIXEL_BLOCK) -> float:
    """Share of the aligned b x b blocks touching the subject that are part subject, part background:
    0 for pixel art (edges on the block grid), high for anti-aliased drawing."""
    t, h, w = fg.shape
    blocks = fg[:, :h - h % b, :w - w % b].reshape(t, h // b, b, w // b, b).sum(axis=(2, 4))
    touched = blocks > 0
    return float((touched & (blocks < b * b)).sum() / max(touched.sum(), 1))


def _centroid_motion(fg: np.ndarray, want: np.ndarray) -> float:
    """Cosine between the fitted centroid displacement over the clip and `want`, clipped at 0, times
    min(1, |displacement| / (half of |want|))."""
    t_ = len(fg)
    present = np.nonzero(fg.any(axis=(1, 2)))[0]
    if len(present) < 2:
        return 0.0
    cents = np.array([[np.nonzero(fg[t])[1].mean(), np.nonzero(fg[t])[0].mean()] for t in present])
    disp = np.polyfit(present, cents, 1)[0] * (t_ - 1)  # (2,) px over the clip, least squares over frames
    norm = np.linalg.norm(disp) * np.linalg.norm(want)
    if np.linalg.norm(disp) < 1e-3 or norm == 0:  # a still subject (the fit leaves float noise, not motion)
        return 0.0
    cos = float(disp @ want / norm)
    return max(0.0, cos) * min(1.0, float(np.linalg.norm(disp) / (0.5 * np.linalg.norm(want))))


def _zoom_motion(fg: np.ndarray, scale_end: float) -> float:
    """Fitted log-area change over the clip against the true 2 log(scale_end): same sign, at least half."""
    t_ = len(fg)
    areas = np.array([fill_holes(m).sum() for m in fg], np.float64)
    present = np.nonzero(areas > 0)[0]
    if len(present) < 2:
        return 0.0
    got = np.polyfit(present, np.log(areas[present]), 1)[0] * (t_ - 1)
    want = 2.0 * np.log(scale_end)
    return float(np.clip(got / (0.5 * want), 0.0, 1.0))


IDENTITY_PARTS = ("identity_shape", "identity_colour", "identity_texture")


def combine_identity(shape: float, colour: float, texture: float) -> float:
    """shape * (1 + colour + texture) / (1 + parts that apply); NaN colour/texture = not applicable."""
    extra = [p for p in (colour, texture) if not np.isnan(p)]
    return float(shape * (1.0 + sum(extra)) / (1 + len(extra)))


def sprites_scores(frames: np.ndarray, spec: SampleSpec) -> dict[str, float]:
    """Score a generated video (T, H, W, 3) uint8 against the spec's ground truth; each score in [0, 1].

    Foreground = pixels farther than FG_THRESHOLD from the spec's background (colour or scene).
    - identity: how faithfully the subject is reproduced in what the caption does NOT change, from three
      parts, each in [0, 1] and reported on its own (`identity_shape`, `identity_colour`,
      `identity_texture`; NaN where the caption changes that attribute):
        shape: mean IoU of the filled foreground with the true frame's, placed at its centroid;
        colour: share of foreground pixels whose nearest palette colour is the subject's (not when the
          caption asks for a new colour);
        texture: 1 - |shaded share - true shaded share| / 0.25, clipped, where the shaded share is the area
          share of the dark tone inside the subject (not when a new texture or a style is asked for).
      identity = shape * (1 + colour + texture) / (1 + number of colour/texture parts that apply). Shape
      gates the rest, so noise (foreground everywhere, IoU ~ subject area / frame area) and a shapeless blob
      score low whatever their colours, while a wrong colour on the right shape keeps the shape's credit
      instead of zeroing the product: exact copy > right shape, wrong colour > blob > noise. 0 when there
      is no foreground.
    - motion: zoom -> the fitted log-area change against the true one (same sign, at least half of it
      scores 1); otherwise the cosine between the fitted centroid displacement over the clip and the
      true one, clipped at 0, times min(1, |displacement| / half the true displacement).
    - attribute: the requested change is present: new colour -> share of foreground pixels of that
      colour; new texture -> the texture formula above against the new texture's share, times the
      match of where the dark tone lies (`_texture_map_match`); sketch ->
      hollowness (1 - |fg| / |filled fg|) relative to the true outline's; pixel -> 1 - (share of
      subject blocks split by an edge) / (that share for the same subject drawn plainly); scene ->
      share of the true background area within FG_THRESHOLD of the scene. 1.0 when nothing is
      requested. "True" values come from `render(spec)` at this size.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames (T, H, W, 3), got {frames.shape}")
    t_, h, w, _ = frames.shape
    bg = background_image(spec.background, h, w)
    fg = foreground(frames, bg)
    change = spec.change
    scores = {"identity": 0.0, "identity_shape": 0.0, "identity_colour": 0.0, "identity_texture": 0.0,
              "motion": 0.0, "attribute": 0.0 if change else 1.0}
    if spec.new_colour is not None:
        scores["identity_colour"] = float("nan")
    if spec.style is not None or spec.new_texture is not None:
        scores["identity_texture"] = float("nan")
    if change == "background":  # measurable without a subject
        truth_masks = render(spec, h, w, t_)[1]
        around = _erode(~truth_masks)  # the true background, at least one pixel away from the subject
        near = np.linalg.norm(frames.astype(np.float64) - bg, axis=-1) <= FG_THRESHOLD
        scores["attribute"] = float(near[around].mean()) if around.any() else 0.0
    if not fg.any():
        return scores
    names = list(PALETTE)
    labels, _ = classify_colours(frames[fg], np.broadcast_to(bg, frames.shape)[fg])

    truth, _ = render(spec, h, w, t_)
    truth_fg = foreground(truth, bg)
    scores["identity_shape"] = _shape_iou(fg, spec)
    if spec.new_colour is None:
        scores["identity_colour"] = float((labels == names.index(spec.subject.colour)).mean())
    if spec.style is None and spec.new_texture is None:
        expected = _shaded_share(truth, truth_fg, bg)
        scores["identity_texture"] = float(np.clip(1.0 - abs(_shaded_share(frames, fg, bg) - expected) / 0.25,
                                                   0.0, 1.0))
    scores["identity"] = combine_identity(scores["identity_shape"], scores["identity_colour"],
                                          scores["identity_texture"])

    if spec.motion.kind == "zoom":
        scores["motion"] = _zoom_motion(fg, spec.motion.scale_end)
    else:
        scores["motion"] = _centroid_motion(fg, expected_displacement(spec, h, w, t_))

    if change == "colour":
        scores["attribute"] = float((labels == names.index(spec.new_colour)).mean())
    elif change == "texture":
        expected = _shaded_share(truth, truth_fg, bg)
        share = float(np.clip(1.0 - abs(_shaded_share(frames, fg, bg) - expected) / 0.25, 0.0, 1.0))
        scores["attribute"] = share * _texture_map_match(frames, fg, spec, bg)
    elif change == "sketch":
        ref = _hollowness(truth_fg).mean()
        scores["attribute"] = float(np.clip(_hollowness(fg).mean() / max(ref, 1e-6), 0.0, 1.0))
    elif change == "pixel":
        plain = foreground(render(dataclasses.replace(spec, style=None), h, w, t_)[0], bg)
        scores["attribute"] = float(np.clip(1.0 - _split_block_share(fg) / max(_split_block_share(plain), 1e-6),
                                            0.0, 1.0))
    return scores
