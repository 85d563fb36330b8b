"""The `sprites` data backend: procedural subjects, motions and attribute changes, with ground truth.

Everything is numpy and a pure function of a seed, so the tiny preset can prove the SUGAR mechanism
on CPU and the benchmark can score generated videos against the truth instead of neural judges.

A subject's identity is (shape, texture, colour, size) under a category noun. Captions state the
noun, the colour, the motion and the background, never the shape or the texture: those reach the
model only through the identity image, which is what makes "no image condition -> identity drops"
measurable.

Specs are resolution-free (sizes and positions are fractions of the frame); `render` turns one
into frames at any (height, width, num_frames).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np

# Saturated colours with well-separated hues (nearest pair: orange/yellow, ~23 degrees apart).
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30), "orange": (250, 135, 20), "yellow": (240, 215, 30), "green": (30, 190, 40),
    "cyan": (30, 210, 220), "blue": (40, 70, 230), "purple": (130, 50, 200), "magenta": (220, 40, 200),
}
# Greys only: they share no hue with the palette, so a colour and its blends are never mistaken for one.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {"black": (0, 0, 0), "gray": (120, 120, 120),
                                                "white": (255, 255, 255)}
IDENTITY_BACKGROUND = (255, 255, 255)  # identity images: the subject alone on plain white

NOUNS: dict[str, str] = {  # noun -> category
    "cat": "animal", "bird": "animal", "fish": "animal",
    "robot": "active_object", "car": "active_object", "ball": "active_object",
    "vase": "static_object", "box": "static_object", "lamp": "static_object",
}
VERBS = {"cat": "walks", "bird": "flies", "fish": "swims", "robot": "walks", "car": "drives", "ball": "rolls",
         "vase": "slides", "box": "slides", "lamp": "drifts"}
SHAPES = ("circle", "square", "triangle", "diamond", "cross", "dome")
TEXTURES = ("solid", "stripes", "dots")
DIRECTIONS: dict[str, tuple[float, float]] = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0),
                                              "down": (0.0, 1.0)}  # image coordinates (x right, y down)
DIRECTION_WORDS = {"left": "to the left", "right": "to the right", "up": "upward", "down": "downward"}
STYLES = ("sketch",)

SHADE = 0.5            # second tone of stripes/dots: the subject colour at half brightness
FG_THRESHOLD = 40.0    # RGB distance from the background above which a pixel is foreground
SUPERSAMPLE = 4        # anti-aliasing: sub-samples per pixel side, so sub-pixel motion is smooth
SIZE_RANGE = (10 / 32, 14 / 32)  # subject box side as a fraction of the frame: ~10-14 px on 32 px
HELDOUT_MODULUS = 6    # one attribute combination in six is reserved for evaluation, see `is_heldout`


@dataclass(frozen=True)
class Subject:
    """One identity. `size` is the shape's box side as a fraction of min(height, width)."""

    subject_id: str
    category: str
    noun: str
    shape: str
    colour: str
    texture: str
    size: float


@dataclass(frozen=True)
class Motion:
    """Straight motion inside the frame; fractions of the free range, so the subject never leaves it.

    The subject's centre covers `travel` of the free range along the axis of `direction` over the
    clip, starting at `start` (0 = the side it leaves from); `offset` places it on the other axis.
    """

    direction: str
    travel: float
    start: float
    offset: float


@dataclass(frozen=True)
class SampleSpec:
    """A sample: subject + motion + background + optional attribute change, and its caption.

    At most one change: `new_colour` (a palette name) or `style` ("sketch": outline only, no texture).
    `identity_frame` in [0, 1) picks the frame that real-like samples cut their identity image from.
    """

    sample_id: str
    source: Literal["real", "synthetic"]
    subject: Subject
    motion: Motion
    background: str
    caption: str
    new_colour: str | None = None
    style: str | None = None
    identity_frame: float = 0.0

    @property
    def changed(self) -> bool:
        return self.new_colour is not None or self.style is not None

    @property
    def video_colour(self) -> str:
        return self.new_colour or self.subject.colour


def spec_to_dict(spec: SampleSpec) -> dict:
    return dataclasses.asdict(spec)


def spec_from_dict(data: dict) -> SampleSpec:
    data = dict(data)
    data["subject"] = Subject(**data["subject"])
    data["motion"] = Motion(**data["motion"])
    return SampleSpec(**data)


# ----------------------------------------------------------------------------------------- subjects
def seeded_rng(keys: list[int]) -> np.random.Generator:
    """A generator for a tuple of integer keys; negative seeds are folded (SeedSequence refuses them)."""
    return np.random.default_rng([int(k) % 2**32 for k in keys])


Combo = tuple[str, str, str, str]  # (noun, shape, colour, texture)


def is_heldout(combo: Combo) -> bool:
    """A fixed, seed-independent partition of the attribute space.

    Training subjects are drawn only from combinations where this is False and held-out subjects
    only from those where it is True, so they are disjoint for every seed and every subject count.
    Each single attribute value still appears on both sides (the other indices can make up the sum).
    """
    noun, shape, colour, texture = combo
    idx = list(NOUNS).index(noun) + SHAPES.index(shape) + list(PALETTE).index(colour) + TEXTURES.index(texture)
    return idx % HELDOUT_MODULUS == 0


def _combos(heldout: bool, category: str | None = None) -> list[Combo]:
    return [(n, s, c, t) for n in NOUNS for s in SHAPES for c in PALETTE for t in TEXTURES
            if is_heldout((n, s, c, t)) == heldout and (category is None or NOUNS[n] == category)]


def _subject(subject_id: str, combo: Combo, rng: np.random.Generator,
             size_range: tuple[float, float] = SIZE_RANGE) -> Subject:
    noun, shape, colour, texture = combo
    size = round(float(rng.uniform(*size_range)), 4)
    return Subject(subject_id, NOUNS[noun], noun, shape, colour, texture, size)


def training_subjects(seed: int, n: int, size_range: tuple[float, float] = SIZE_RANGE) -> list[Subject]:
    """`n` training subjects `sub0000`...; distinct combinations while the pool (1080) lasts, then reused."""
    pool = _combos(heldout=False)
    order = seeded_rng([seed, 0]).permutation(len(pool))
    return [_subject(f"sub{i:04d}", pool[order[i % len(pool)]], seeded_rng([seed, 1, i]), size_range)
            for i in range(n)]


# ------------------------------------------------------------------------------------------ captions
REAL_TEMPLATES = (
    "{a_colour} {colour} {noun} {verb} {dir}{speed} on a {bg} background",
    "on a plain {bg} background, {a_colour} {colour} {noun} {verb} {dir}{speed}",
    "{a_colour} {colour} {noun} {verb}{speed} {dir} against a {bg} backdrop",
)
COLOUR_TEMPLATES = (
    "a {noun}, now in {new}, {verb} {dir}{speed} on a {bg} background",
    "the {noun} turned {new} and {verb} {dir}{speed} on a {bg} background",
    "{a_new} {new} version of the {noun} {verb} {dir}{speed} against a {bg} backdrop",
)
SKETCH_TEMPLATES = (
    "a pencil sketch of the {colour} {noun}, which {verb} {dir}{speed} on a {bg} background",
    "the {colour} {noun}, drawn as an outline sketch, {verb} {dir}{speed} on a {bg} background",
)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption_for(subject: Subject, motion: Motion, background: str, new_colour: str | None, style: str | None,
                template: int, name_colour: bool = True) -> str:
    """The caption states noun, colour (the new one if changed), direction, speed and background.

    name_colour=False leaves the subject's own colour out (a new colour is still named), so colour, like
    shape and texture, reaches the model only through the identity image.
    """
    speed = " quickly" if motion.travel >= 0.6 else " slowly" if motion.travel < 0.4 else ""
    colour = subject.colour if name_colour else ""
    words = dict(noun=subject.noun, colour=colour, a_colour=_article(colour or subject.noun),
                 verb=VERBS[subject.noun], dir=DIRECTION_WORDS[motion.direction], speed=speed, bg=background,
                 new=new_colour or "", a_new=_article(new_colour or "x"))
    templates = COLOUR_TEMPLATES if new_colour else SKETCH_TEMPLATES if style else REAL_TEMPLATES
    return " ".join(templates[template % len(templates)].format(**words).split())


# --------------------------------------------------------------------------------------------- specs
def _random_spec(sample_id: str, subject: Subject, synthetic: bool, rng: np.random.Generator,
                 change: str | None = None, name_colour: bool = True) -> SampleSpec:
    """Draw motion, background and (for synthetic samples) the change; `change` forces "colour"/"sketch"."""
    fast = subject.category != "static_object"  # animals and active objects move more
    travel = float(rng.uniform(0.55, 0.95) if fast else rng.uniform(0.2, 0.4))
    motion = Motion(direction=str(rng.choice(list(DIRECTIONS))), travel=round(travel, 4),
                    start=round(float(rng.uniform(0.0, 1.0 - travel)), 4), offset=round(float(rng.uniform()), 4))
    background = str(rng.choice(list(BACKGROUNDS)))
    new_colour = style = None
    if synthetic:
        change = change or ("colour" if rng.uniform() < 0.7 else "sketch")
        if change == "colour":
            new_colour = str(rng.choice([c for c in PALETTE if c != subject.colour]))
        else:
            style = "sketch"
    template = int(rng.integers(0, 6))
    caption = caption_for(subject, motion, background, new_colour, style, template, name_colour)
    return SampleSpec(sample_id, "synthetic" if synthetic else "real", subject, motion, background, caption,
                      new_colour, style, identity_frame=round(float(rng.uniform()), 4))


def sample_spec(seed: int, subject: Subject, subject_index: int, sample_index: int, synthetic: bool,
                name_colour: bool = True) -> SampleSpec:
    """Sample `sample_index` of training subject `subject_index`; a function of these arguments only."""
    rng = seeded_rng([seed, 2, subject_index, sample_index])
    return _random_spec(f"{subject.subject_id}-{sample_index:03d}", subject, synthetic, rng, name_colour=name_colour)


def heldout_specs(seed: int, n: int, name_colour: bool = True,
                  size_range: tuple[float, float] = SIZE_RANGE) -> list[SampleSpec]:
    """`n` evaluation specs on held-out subjects (`heldout0000`...), balanced over categories and changes.

    Disjointness from training: subjects come from the `is_heldout` side of a fixed partition of
    (noun, shape, colour, texture) that `training_subjects` never draws from, whatever either seed;
    ids differ by prefix. Categories cycle animal/active/static; changes cycle none/colour/sketch
    every three specs. Held-out samples are all "synthetic" in the sense that the identity image is
    rendered on white, not cut from the video.
    """
    rng = seeded_rng([seed, 3])
    pools = {cat: [_combos(True, cat)[k] for k in rng.permutation(len(_combos(True, cat)))] for cat in
             ("animal", "active_object", "static_object")}
    specs = []
    for i in range(n):
        cat = ("animal", "active_object", "static_object")[i % 3]
        combo = pools[cat][(i // 3) % len(pools[cat])]
        sub_rng = seeded_rng([seed, 4, i])
        subject = _subject(f"heldout{i:04d}", combo, sub_rng, size_range)
        change = (None, "colour", "sketch")[(i // 3) % 3]
        spec = _random_spec(f"heldout{i:04d}", subject, change is not None, sub_rng, change, name_colour)
        specs.append(dataclasses.replace(spec, source="synthetic"))
    return specs


# ------------------------------------------------------------------------------------------ drawing
def _shape_inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Shape on normalised coordinates: (u, v) in [-1, 1]^2 is the subject's box, v pointing down."""
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return (np.abs(u) <= 0.85) & (np.abs(v) <= 0.85)
    if shape == "triangle":  # pointing up
        return (v >= -0.95) & (v <= 0.85) & (np.abs(u) <= (v + 0.95) / 1.8)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if shape == "cross":
        return ((np.abs(u) <= 0.34) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.34) & (np.abs(u) <= 1.0))
    if shape == "dome":  # half ellipse, flat side down
        return (v <= 0.6) & (u * u + ((v - 0.6) / 1.6) ** 2 <= 1.0)
    raise ValueError(f"unknown shape {shape!r}; choose one of {SHAPES}")


def _texture_tone(texture: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Brightness per point: 1 for the full colour, SHADE for the texture's second tone."""
    if texture == "solid":
        return np.ones_like(u)
    if texture == "stripes":  # six horizontal bands, every other one shaded
        return np.where(np.floor((v + 1.0) * 3.0) % 2 == 1, SHADE, 1.0)
    if texture == "dots":  # a 3 x 3 grid of shaded dots
        du, dv = ((u + 1.0) * 1.5) % 1.0 - 0.5, ((v + 1.0) * 1.5) % 1.0 - 0.5
        return np.where(du * du + dv * dv < 0.33 ** 2, SHADE, 1.0)
    raise ValueError(f"unknown texture {texture!r}; choose one of {TEXTURES}")


def _draw(subject: Subject, colour: str, centre: tuple[float, float], background, height: int, width: int,
          textured: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One frame: float (H, W, 3) in 0..255 and coverage alpha (H, W) of the subject centred at (x, y)."""
    s = SUPERSAMPLE
    half = subject.size * min(height, width) / 2
    xs = (np.arange(width * s) + 0.5) / s
    ys = (np.arange(height * s) + 0.5) / s
    u = (xs[None, :] - centre[0]) / half
    v = (ys[:, None] - centre[1]) / half
    u, v = np.broadcast_arrays(u, v)
    inside = _shape_inside(subject.shape, u, v)
    tone = _texture_tone(subject.texture, u, v) if textured else np.ones_like(u)
    rgb = np.asarray(PALETTE[colour], np.float64)
    sub = np.where(inside[..., None], tone[..., None] * rgb, np.asarray(background, np.float64))
    img = sub.reshape(height, s, width, s, 3).mean(axis=(1, 3))
    alpha = inside.reshape(height, s, width, s).mean(axis=(1, 3))
    return img, alpha


def _erode(mask: np.ndarray) -> np.ndarray:
    """4-neighbour binary erosion of (..., H, W); outside the frame counts as background."""
    m = np.pad(mask, [(0, 0)] * (mask.ndim - 2) + [(1, 1), (1, 1)])
    return (m[..., 1:-1, 1:-1] & m[..., :-2, 1:-1] & m[..., 2:, 1:-1] & m[..., 1:-1, :-2] & m[..., 1:-1, 2:])


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> the mask with every background region not connected to the border filled."""
    import cv2

    outside = np.pad((~mask).astype(np.uint8), 1, constant_values=1)  # a background ring to start from
    cv2.floodFill(outside, None, (0, 0), 2, flags=4)  # 4-connected, so an 8-connected outline stays closed
    return outside[1:-1, 1:-1] != 2


def trajectory(spec: SampleSpec, height: int, width: int, num_frames: int) -> np.ndarray:
    """Subject centres (T, 2) as (x, y) pixels; the whole box stays at least 1 px inside the frame."""
    half = spec.subject.size * min(height, width) / 2
    lo = np.array([1 + half, 1 + half])
    hi = np.array([width - 1 - half, height - 1 - half])
    dx, dy = DIRECTIONS[spec.motion.direction]
    axis = 0 if dx else 1
    s = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)
    along = spec.motion.start + spec.motion.travel * s
    if (dx or dy) < 0:  # moving towards smaller coordinates: start from the high side
        along = 1.0 - along
    centres = np.empty((num_frames, 2))
    centres[:, axis] = lo[axis] + along * (hi[axis] - lo[axis])
    centres[:, 1 - axis] = lo[1 - axis] + spec.motion.offset * (hi[1 - axis] - lo[1 - axis])
    return centres


def expected_displacement(spec: SampleSpec, height: int, width: int) -> np.ndarray:
    """(dx, dy) pixels the subject's centre moves over the whole clip."""
    half = spec.subject.size * min(height, width) / 2
    dx, dy = DIRECTIONS[spec.motion.direction]
    span = (width - 2 - 2 * half) if dx else (height - 2 - 2 * half)
    return np.array([dx, dy]) * spec.motion.travel * span


def _frame(spec: SampleSpec, centre, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One video frame with the subject's box centred at (x, y): uint8 (H, W, 3) and mask bool (H, W)."""
    bg = BACKGROUNDS[spec.background]
    img, alpha = _draw(spec.subject, spec.video_colour, centre, bg, height, width, textured=spec.style is None)
    mask = alpha >= 0.5
    if spec.style == "sketch":  # outline only: the silhouette's 1 px border in full colour, no texture
        mask = mask & ~_erode(mask)
        img = np.where(mask[..., None], np.asarray(PALETTE[spec.video_colour], float), np.asarray(bg, float))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), mask


def render(spec: SampleSpec, height: int, width: int, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The sample's video as the caption describes it: frames uint8 (T, H, W, 3) and masks bool (T, H, W)."""
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    masks = np.empty((num_frames, height, width), bool)
    for t, centre in enumerate(trajectory(spec, height, width, num_frames)):
        frames[t], masks[t] = _frame(spec, centre, height, width)
    return frames, masks


def _cut_out(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The masked pixels moved to the image centre on white; (H, W, 3) uint8."""
    h, w = mask.shape
    out = np.full_like(frame, 255)
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return out
    dy = h // 2 - (ys.min() + ys.max() + 1) // 2
    dx = w // 2 - (xs.min() + xs.max() + 1) // 2
    out[ys + dy, xs + dx] = frame[ys, xs]
    return out


def identity_image(spec: SampleSpec, height: int, width: int, num_frames: int, frames: np.ndarray | None = None,
                   masks: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) uint8: the original subject, segmented, centred on white.

    Real-like samples cut it from frame `identity_frame` of their own video via the ground-truth
    mask (the Grounded-SAM step of the paper; pass the rendered frames and masks to skip re-rendering);
    others render the unchanged subject on white.
    """
    if spec.source == "real":
        if frames is None or masks is None:
            frames, masks = render(spec, height, width, num_frames)
        t = min(int(spec.identity_frame * len(frames)), len(frames) - 1)
        return _cut_out(frames[t], masks[t])
    img, alpha = _draw(spec.subject, spec.subject.colour, (width / 2, height / 2), IDENTITY_BACKGROUND, height,
                       width)
    frame = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return _cut_out(frame, alpha >= 0.5)


def generate(spec: SampleSpec, height: int, width: int, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The backend interface (DESIGN.md): spec -> (identity image (H, W, 3), video (T, H, W, 3)), uint8."""
    frames, masks = render(spec, height, width, num_frames)
    return identity_image(spec, height, width, num_frames, frames, masks), frames


# ------------------------------------------------------------------------------------------ scoring
@functools.lru_cache(maxsize=16)
def _unmix_bases(background: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per palette colour k: basis B_k = [c_k, bg] (K, 3, 2) and its pseudo-inverse (K, 2, 3)."""
    bg = np.asarray(background, np.float64)
    bases = np.stack([np.stack([np.asarray(c, np.float64), bg], axis=1) for c in PALETTE.values()])
    return bases, np.linalg.pinv(bases)  # pinv: on black the bg column is zero and gets coefficient 0


def classify_colours(pixels: np.ndarray, background) -> tuple[np.ndarray, np.ndarray]:
    """Nearest palette colour up to shading and blending with the background.

    A sprite pixel is x * c_k + y * bg (x < 1: shade or anti-aliased edge; y: the background share),
    so each pixel is fitted in every plane span(c_k, bg) and takes the colour with the smallest
    residual; x < 0 (the complementary hue) is not allowed. pixels (..., 3) -> (label (...) int,
    index into PALETTE, -1 if no fit; brightness (...) = x / (1 - y), 1 for full colour, SHADE for the
    texture tone).
    """
    bases, pinvs = _unmix_bases(tuple(int(c) for c in background))
    p = np.asarray(pixels, np.float64).reshape(-1, 3)
    coef = np.einsum("kij,nj->nki", pinvs, p)                      # (N, K, 2)
    resid = np.linalg.norm(p[:, None] - np.einsum("kij,nkj->nki", bases, coef), axis=-1)
    resid[coef[..., 0] <= 0] = np.inf
    label = resid.argmin(axis=1)
    best = coef[np.arange(len(p)), label]
    label[~np.isfinite(resid.min(axis=1))] = -1
    fg_share = 1.0 - best[:, 1] if any(background) else np.ones(len(p))
    brightness = best[:, 0] / np.maximum(fg_share, 1e-3)
    shape = np.shape(pixels)[:-1]
    return label.reshape(shape), brightness.reshape(shape)


def foreground(frames: np.ndarray, background) -> np.ndarray:
    """(T, H, W, 3) -> bool (T, H, W): pixels far from the requested background colour."""
    diff = frames.astype(np.float64) - np.asarray(background, np.float64)
    return np.linalg.norm(diff, axis=-1) > FG_THRESHOLD


def _shape_iou(fg: np.ndarray, spec: SampleSpec) -> float:
    """Mean over frames of IoU(filled foreground, filled foreground of the true frame at the same centroid).

    The reference frame is rendered afresh at the observed centroid and thresholded the same way, so
    a faithful video scores ~1 wherever it puts the subject.
    """
    t_, h, w = fg.shape
    bg = BACKGROUNDS[spec.background]
    ref0 = fill_holes(foreground(_frame(spec, (w / 2, h / 2), h, w)[0][None], bg)[0])
    ys0, xs0 = np.nonzero(ref0)
    off = np.array([xs0.mean() - w / 2, ys0.mean() - h / 2])  # shapes are not all symmetric
    ious = []
    for t in range(t_):
        filled = fill_holes(fg[t])
        ys, xs = np.nonzero(filled)
        if len(ys) == 0:
            ious.append(0.0)
            continue
        centre = tuple(np.array([xs.mean(), ys.mean()]) - off)
        ref = fill_holes(foreground(_frame(spec, centre, h, w)[0][None], bg)[0])
        ious.append((ref & filled).sum() / max((ref | filled).sum(), 1))
    return float(np.mean(ious))


def _shaded_share(frames: np.ndarray, fg: np.ndarray, background) -> float:
    """Share of interior foreground pixels (edges eroded away) in the texture's dark tone."""
    core = _erode(fg)
    if not core.any():
        return 0.0
    _, bright = classify_colours(frames[core], background)
    # Linear in brightness, so a pixel half covered by a dark band counts half: the share does not
    # depend on where the texture falls relative to the pixel grid.
    return float(np.mean((1.0 - np.clip(bright, SHADE, 1.0)) / (1.0 - SHADE)))


def _hollowness(fg: np.ndarray) -> np.ndarray:
    """Per frame 1 - |fg| / |filled fg|: ~0 for a filled subject, large for an outline. (T,)"""
    out = np.zeros(len(fg))
    for t, m in enumerate(fg):
        filled = fill_holes(m).sum()
        out[t] = 1.0 - m.sum() / filled if filled else 0.0
    return out


def sprites_scores(frames: np.ndarray, spec: SampleSpec) -> dict[str, float]:
    """Score a generated video (T, H, W, 3) uint8 against the spec's ground truth; each score in [0, 1].

    Foreground = pixels farther than FG_THRESHOLD from the spec's background colour.
    - identity: what the caption does NOT change, as a product of the applicable parts:
      shape (mean IoU of the filled foreground with the true frame's, placed at its centroid), colour
      (share of foreground pixels whose nearest palette colour is the subject's; only when the colour
      is not changed), texture (1 - |shaded share - true shaded share| / 0.25, clipped, where the
      shaded share is the area share of the dark tone inside the subject; only when the style is not
      changed). 0 when there is no foreground. "True" values come from `render(spec)` at this size.
    - motion: cosine between the fitted centroid displacement over the clip and the requested
      direction, clipped at 0, times min(1, |displacement| / (half the requested displacement)).
    - attribute: the requested change is present: new colour -> share of foreground pixels of that
      colour; sketch -> hollowness (1 - |fg| / |filled fg|) relative to the true outline's, clipped;
      1.0 when no change is requested.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames (T, H, W, 3), got {frames.shape}")
    t_, h, w, _ = frames.shape
    bg = BACKGROUNDS[spec.background]
    fg = foreground(frames, bg)
    scores = {"identity": 0.0, "motion": 0.0, "attribute": 0.0 if spec.changed else 1.0}
    if not fg.any():
        return scores
    names = list(PALETTE)
    labels, _ = classify_colours(frames[fg], bg)

    # References come from the spec's own ground-truth rendering at this size.
    truth, _ = render(spec, h, w, t_)
    truth_fg = foreground(truth, bg)
    parts = [_shape_iou(fg, spec)]
    if spec.new_colour is None:
        parts.append(float((labels == names.index(spec.subject.colour)).mean()))
    if spec.style is None:
        expected = _shaded_share(truth, truth_fg, bg)
        parts.append(float(np.clip(1.0 - abs(_shaded_share(frames, fg, bg) - expected) / 0.25, 0.0, 1.0)))
    scores["identity"] = float(np.prod(parts))

    present = np.nonzero(fg.any(axis=(1, 2)))[0]
    if len(present) >= 2:
        cents = np.array([[np.nonzero(fg[t])[1].mean(), np.nonzero(fg[t])[0].mean()] for t in present])
        slope = np.polyfit(present, cents, 1)[0]  # (2,) px per frame, least squares over frames
        disp = slope * (t_ - 1)
        want = expected_displacement(spec, h, w)
        norm = np.linalg.norm(disp) * np.linalg.norm(want)
        if norm > 0:
            cos = float(disp @ want / norm)
            scores["motion"] = max(0.0, cos) * min(1.0, float(np.linalg.norm(disp) / (0.5 * np.linalg.norm(want))))

    if spec.new_colour is not None:
        scores["attribute"] = float((labels == names.index(spec.new_colour)).mean())
    elif spec.style == "sketch":
        ref = _hollowness(truth_fg).mean()
        scores["attribute"] = float(np.clip(_hollowness(fg).mean() / max(ref, 1e-6), 0.0, 1.0))
    return scores
