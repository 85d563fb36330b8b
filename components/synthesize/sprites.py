"""The `sprites` data backend: procedural subjects, motions and attribute changes, with ground truth.

Everything is numpy and a pure function of a seed, so the tiny preset can prove the SUGAR mechanism
on CPU and the benchmark can score generated videos against the truth instead of neural judges.

A subject's identity is (shape, texture, colour, size) under a category noun. Captions state the
noun, the colour, the motion and the background, never the shape or the texture (unless a texture
change asks for a new one): those reach the model only through the identity image, which is what
makes "no image condition -> identity drops" measurable.

Motions suit the category (animals walk, run, jump; active objects run, jump, spin, slide; static
objects slide, float, spin, zoom). Synthetic samples change one attribute as their caption says:
colour, texture, style (pencil sketch, pixel art) or background (a patterned scene); real-like
samples keep the subject and cut their identity image from their own video. Scores against this
ground truth live in `sprites_scoring`.

Specs are resolution-free (sizes and positions are fractions of the frame); `render` turns one
into frames at any (height, width, num_frames).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np

from components.dataset import CATEGORY_MOTIONS

from .common import article, seeded_rng, subject_on_white

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
# walk/run verbs per noun (a bird flies where a cat walks); other motions share verbs across nouns.
GAIT_VERBS = {"cat": ("walks", "runs"), "bird": ("flies", "darts"), "fish": ("swims", "darts"),
              "robot": ("walks", "runs"), "car": ("drives", "speeds"), "ball": ("rolls", "races"),
              "vase": ("moves", "hurries"), "box": ("moves", "hurries"), "lamp": ("moves", "hurries")}
MOTION_VERBS = {"jump": ("jumps", "hops", "leaps"), "spin": ("spins", "twirls", "turns around"),
                "slide": ("slides", "glides"), "float": ("floats", "drifts")}
SHAPES = ("circle", "square", "triangle", "diamond", "cross", "dome")
TEXTURES = ("solid", "stripes", "dots")
DIRECTIONS: dict[str, tuple[float, float]] = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0),
                                              "down": (0.0, 1.0)}  # image coordinates (x right, y down)
DIRECTION_WORDS = {"left": "to the left", "right": "to the right", "up": "upward", "down": "downward"}
STYLES = ("sketch", "pixel")
# Patterned scenes for the background change: two greys each (no hue, like BACKGROUNDS), so a subject
# colour is never confused with the scene. (tone a, tone b, tile size as a fraction of min(H, W)).
SCENES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int], float]] = {
    "checkered floor": ((70, 70, 70), (170, 170, 170), 1 / 4),
    "striped wall": ((40, 40, 40), (200, 200, 200), 1 / 8),
}
TEXTURE_WORDS = {"solid": "in one plain colour", "stripes": "covered in stripes", "dots": "covered in polka dots"}

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
    """Motion inside the frame; positions are fractions of the free range, so the subject never leaves it.

    The subject's centre covers `travel` of the free range along the axis of `direction` over the
    clip, starting at `start` (0 = the side it leaves from); `offset` places it on the other axis.
    `kind` adds to that straight path: walk/run bob and jump hops (`amplitude` high, `cycles` times,
    perpendicular to the path), float sways, spin turns the subject `cycles` turns (signed), zoom
    scales it from 1 to `scale_end` in place (direction "in" or "out", travel 0).
    """

    direction: str
    travel: float
    start: float
    offset: float
    kind: str = "slide"
    amplitude: float = 0.0  # fraction of min(H, W)
    cycles: float = 0.0
    scale_end: float = 1.0


@dataclass(frozen=True)
class SampleSpec:
    """A sample: subject + motion + background + optional attribute change, and its caption.

    At most one change: `new_colour` (a palette name), `new_texture`, `style` ("sketch": outline only,
    no texture; "pixel": rendered at half resolution without anti-aliasing, blocks of 2 px), or a
    `background` from SCENES. `identity_frame` in [0, 1) picks the frame that real-like samples cut
    their identity image from.
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
    new_texture: str | None = None

    @property
    def changed(self) -> bool:
        return (self.new_colour is not None or self.style is not None or self.new_texture is not None
                or self.background in SCENES)

    @property
    def change(self) -> str | None:
        """"colour" | "texture" | "sketch" | "pixel" | "background" | None."""
        if self.new_colour:
            return "colour"
        if self.new_texture:
            return "texture"
        if self.style:
            return self.style
        return "background" if self.background in SCENES else None

    @property
    def video_colour(self) -> str:
        return self.new_colour or self.subject.colour

    @property
    def video_texture(self) -> str:
        return self.new_texture or self.subject.texture


def spec_to_dict(spec: SampleSpec) -> dict:
    return dataclasses.asdict(spec)


def spec_from_dict(data: dict) -> SampleSpec:
    data = dict(data)
    data["subject"] = Subject(**data["subject"])
    data["motion"] = Motion(**data["motion"])
    return SampleSpec(**data)


# ----------------------------------------------------------------------------------------- subjects
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
BACKGROUND_PHRASES = ("on a {bg} background", "against a {bg} backdrop", "in front of a plain {bg} wall")
SCENE_PHRASES = ("on a {bg}", "in front of a {bg}")
# Word orders; {s} subject phrase, {m} motion phrase, {b} background phrase.
ORDERS = ("{s} {m} {b}", "{b}, {s} {m}", "{s} {m}, {b}")


def _subject_phrase(subject: Subject, change: str | None, new: str | None, colour: str, variant: int) -> str:
    noun = subject.noun
    own = f"{colour} {noun}".strip()
    if change == "colour":
        options = (f"the {noun}, now in {new},", f"{article(new)} {new} version of the {noun}",
                   f"the {noun}, turned {new},")
    elif change == "texture":
        options = (f"the {own}, now {TEXTURE_WORDS[new]},", f"{article(own)} {own} {TEXTURE_WORDS[new]}")
    elif change == "sketch":
        options = (f"a pencil sketch of the {own}, which", f"the {own}, drawn as an outline sketch,")
    elif change == "pixel":
        options = (f"a pixel-art {own}", f"the {own} in a retro pixel-art style")
    else:
        options = (f"{article(own)} {own}", f"the {own}")
    return options[variant % len(options)]


def _motion_phrase(subject: Subject, motion: Motion, variant: int) -> str:
    if motion.kind == "zoom":
        return ("comes closer to the camera", "moves toward the viewer")[variant % 2] if motion.scale_end > 1 else \
            ("moves away from the camera", "recedes into the distance")[variant % 2]
    speed = " quickly" if motion.travel >= 0.6 else " slowly" if motion.travel < 0.4 else ""
    if motion.kind in ("walk", "run"):
        verb = GAIT_VERBS[subject.noun][motion.kind == "run"]
    else:
        verbs = MOTION_VERBS[motion.kind]
        verb = verbs[variant % len(verbs)]
    where = DIRECTION_WORDS[motion.direction]
    if motion.kind == "spin":
        return f"{verb} while moving {where}{speed}"
    return f"{verb} {where}{speed}"


def start_region(subject: Subject, motion: Motion) -> str:
    """Where the subject is in the first frame, in thirds of the frame: "top left", "centre", "bottom", ..."""
    probe = SampleSpec("probe", "real", subject, motion, "black", "")
    x, y = pose(probe, 300, 300, 2).centres[0] / 300  # fractions; the pose's 1 px margin is negligible here
    col = ("left", "", "right")[min(int(x * 3), 2)]
    row = ("top", "", "bottom")[min(int(y * 3), 2)]
    return " ".join(w for w in (row, col) if w) or "centre"


def _where_phrase(subject: Subject, motion: Motion) -> str:
    region = start_region(subject, motion)
    if motion.kind == "zoom":  # in place
        return f"in the {region} of the frame"
    return f"from the {region}" if region != "centre" else "from the centre"


def caption_for(subject: Subject, motion: Motion, background: str, new_colour: str | None, style: str | None,
                template: int, name_colour: bool = True, new_texture: str | None = None,
                name_position: bool = False) -> str:
    """The caption states noun, colour (the new one if changed), the motion with its direction and speed,
    the background, and the requested change; never the shape, nor the texture unless it changes.

    name_colour=False leaves the subject's own colour out (a new colour is still named), so colour, like
    shape and texture, reaches the model only through the identity image. name_position=True also says where
    the subject starts, in thirds of the frame ("from the top left"), so that at high noise the text fixes
    where the subject is and only the image can say what it looks like [RECON: a data option for tiny].
    `template` picks the wording.
    """
    change = "colour" if new_colour else "texture" if new_texture else style
    colour = subject.colour if name_colour else ""
    s = _subject_phrase(subject, change, new_colour or new_texture, colour, template)
    m = _motion_phrase(subject, motion, template // 2)
    if name_position:
        m = f"{m} {_where_phrase(subject, motion)}"
    phrases = SCENE_PHRASES if background in SCENES else BACKGROUND_PHRASES
    b = phrases[(template // 3) % len(phrases)].format(bg=background)
    text = ORDERS[(template // 5) % len(ORDERS)].format(s=s, m=m, b=b)
    return " ".join(text.replace(",,", ",").split()).replace(" ,", ",")


# --------------------------------------------------------------------------------------------- specs
def _random_motion(category: str, rng: np.random.Generator, motions: tuple[str, ...]) -> Motion:
    """A motion that suits the category, from the allowed `motions` (all of them if none suits)."""
    allowed = [m for m in CATEGORY_MOTIONS[category] if m in motions] or list(motions)
    kind = str(rng.choice(allowed))
    travel = {"walk": (0.4, 0.7), "run": (0.7, 0.95), "jump": (0.3, 0.6), "spin": (0.2, 0.4),
              "slide": (0.2, 0.5), "float": (0.2, 0.4), "zoom": (0.0, 0.0)}[kind]
    travel = round(float(rng.uniform(*travel)), 4)
    directions = ["left", "right"] if kind == "jump" else list(DIRECTIONS)
    direction = str(rng.choice(directions))
    amplitude = cycles = 0.0
    scale_end = 1.0
    if kind in ("walk", "run"):
        amplitude, cycles = (0.03, 2.0) if kind == "walk" else (0.05, 3.0)
    elif kind == "jump":
        amplitude, cycles = round(float(rng.uniform(0.12, 0.2)), 4), float(rng.integers(1, 3))
    elif kind == "float":
        amplitude, cycles = 0.04, 1.0
    elif kind == "spin":
        cycles = round(float(rng.choice([-1, 1]) * rng.uniform(0.25, 0.6)), 4)
    elif kind == "zoom":
        scale_end = round(float(rng.uniform(1.4, 1.7) if rng.uniform() < 0.5 else rng.uniform(0.55, 0.7)), 4)
        direction = "in" if scale_end > 1 else "out"
    return Motion(direction=direction, travel=travel, start=round(float(rng.uniform(0.0, 1.0 - travel)), 4),
                  offset=round(float(rng.uniform()), 4), kind=kind, amplitude=amplitude, cycles=cycles,
                  scale_end=scale_end)


def _pick_change(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = sorted(weights)
    p = np.array([weights[n] for n in names], np.float64)
    change = str(rng.choice(names, p=p / p.sum()))
    if change == "style":
        change = str(rng.choice(STYLES))
    return change


DEFAULT_CHANGES = {"colour": 0.4, "texture": 0.2, "style": 0.25, "background": 0.15}
ALL_MOTIONS = ("walk", "run", "jump", "spin", "slide", "float", "zoom")


def _random_spec(sample_id: str, subject: Subject, synthetic: bool, rng: np.random.Generator,
                 change: str | None = None, name_colour: bool = True, motions: tuple[str, ...] = ALL_MOTIONS,
                 changes: dict[str, float] | None = None, name_position: bool = False) -> SampleSpec:
    """Draw motion, background and (for synthetic samples) the change; `change` forces one of
    "colour" | "texture" | "sketch" | "pixel" | "background"."""
    motion = _random_motion(subject.category, rng, motions)
    background = str(rng.choice(list(BACKGROUNDS)))
    new_colour = new_texture = style = None
    if synthetic:
        change = change or _pick_change(rng, changes or DEFAULT_CHANGES)
        if change == "colour":
            new_colour = str(rng.choice([c for c in PALETTE if c != subject.colour]))
        elif change == "texture":
            new_texture = str(rng.choice([t for t in TEXTURES if t != subject.texture]))
        elif change == "background":
            background = str(rng.choice(list(SCENES)))
        else:
            style = change
    template = int(rng.integers(0, 30))
    caption = caption_for(subject, motion, background, new_colour, style, template, name_colour, new_texture,
                          name_position)
    return SampleSpec(sample_id, "synthetic" if synthetic else "real", subject, motion, background, caption,
                      new_colour, style, identity_frame=round(float(rng.uniform()), 4), new_texture=new_texture)


def sample_spec(seed: int, subject: Subject, subject_index: int, sample_index: int, synthetic: bool,
                name_colour: bool = True, motions: tuple[str, ...] = ALL_MOTIONS,
                changes: dict[str, float] | None = None, name_position: bool = False) -> SampleSpec:
    """Sample `sample_index` of training subject `subject_index`; a function of these arguments only."""
    rng = seeded_rng([seed, 2, subject_index, sample_index])
    return _random_spec(f"{subject.subject_id}-{sample_index:03d}", subject, synthetic, rng, name_colour=name_colour,
                        motions=motions, changes=changes, name_position=name_position)


HELDOUT_CHANGES = (None, "colour", "sketch", "texture", "pixel", "background")


def heldout_specs(seed: int, n: int, name_colour: bool = True, size_range: tuple[float, float] = SIZE_RANGE,
                  motions: tuple[str, ...] = ALL_MOTIONS, name_position: bool = False) -> list[SampleSpec]:
    """`n` evaluation specs on held-out subjects (`heldout0000`...), balanced over categories and changes.

    Disjointness from training: subjects come from the `is_heldout` side of a fixed partition of
    (noun, shape, colour, texture) that `training_subjects` never draws from, whatever either seed;
    ids differ by prefix. Categories cycle animal/active/static; changes cycle through
    HELDOUT_CHANGES every three specs. Held-out samples are all "synthetic" in the sense that the
    identity image is rendered on white, not cut from the video.
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
        change = HELDOUT_CHANGES[(i // 3) % len(HELDOUT_CHANGES)]
        spec = _random_spec(f"heldout{i:04d}", subject, change is not None, sub_rng, change, name_colour, motions,
                            name_position=name_position)
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


def background_image(name: str, height: int, width: int) -> np.ndarray:
    """(H, W, 3) float64 background: a plain BACKGROUNDS colour or a patterned SCENES scene."""
    if name in BACKGROUNDS:
        return np.broadcast_to(np.asarray(BACKGROUNDS[name], np.float64), (height, width, 3))
    if name not in SCENES:
        raise ValueError(f"unknown background {name!r}; choose one of {[*BACKGROUNDS, *SCENES]}")
    a, b, tile = SCENES[name]
    step = max(1, round(tile * min(height, width)))
    ys, xs = np.arange(height)[:, None] // step, np.arange(width)[None, :] // step
    pick = ((ys + xs) % 2 == 1) if name == "checkered floor" else np.broadcast_to(ys % 2 == 1, (height, width))
    return np.where(pick[..., None], np.asarray(b, np.float64), np.asarray(a, np.float64))


def _draw(subject: Subject, colour: str, centre: tuple[float, float], background: np.ndarray, height: int,
          width: int, texture: str | None = None, scale: float = 1.0, angle: float = 0.0,
          supersample: int = SUPERSAMPLE) -> tuple[np.ndarray, np.ndarray]:
    """One frame: float (H, W, 3) in 0..255 and coverage alpha (H, W) of the subject centred at (x, y).

    background: (H, W, 3); texture None = untextured (full colour); the subject's box is scaled by
    `scale` and turned by `angle` radians about its centre.
    """
    s = supersample
    half = subject.size * min(height, width) * scale / 2
    xs = (np.arange(width * s) + 0.5) / s
    ys = (np.arange(height * s) + 0.5) / s
    x = (xs[None, :] - centre[0]) / half
    y = (ys[:, None] - centre[1]) / half
    x, y = np.broadcast_arrays(x, y)
    c, si = np.cos(angle), np.sin(angle)
    u, v = c * x + si * y, -si * x + c * y  # the subject's own frame, turned by `angle`
    inside = _shape_inside(subject.shape, u, v)
    tone = _texture_tone(texture, u, v) if texture else np.ones_like(u)
    rgb = np.asarray(PALETTE[colour], np.float64)
    bg = np.repeat(np.repeat(np.asarray(background, np.float64), s, axis=0), s, axis=1)
    sub = np.where(inside[..., None], tone[..., None] * rgb, bg)
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


@dataclass(frozen=True)
class Pose:
    """Per-frame placement: centres (T, 2) as (x, y) pixels, scales (T,), angles (T,) in radians."""

    centres: np.ndarray
    scales: np.ndarray
    angles: np.ndarray


def pose(spec: SampleSpec, height: int, width: int, num_frames: int) -> Pose:
    """Where the subject is in each frame; its whole (turned, scaled) box stays >= 1 px inside the frame."""
    m = spec.motion
    s = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)
    scales = m.scale_end ** s if m.kind == "zoom" else np.ones_like(s)
    angles = 2 * np.pi * m.cycles * s if m.kind == "spin" else np.zeros_like(s)
    reach = np.sqrt(2.0) if m.kind == "spin" else 1.0  # a turned box reaches out to its half-diagonal
    half = spec.subject.size * min(height, width) / 2 * scales.max() * reach
    lo = np.array([1 + half, 1 + half])
    hi = np.array([width - 1 - half, height - 1 - half])
    centres = np.empty((num_frames, 2))
    if m.kind == "zoom":  # in place: start/offset place the centre
        centres[:] = lo + np.array([m.start, m.offset]) * (hi - lo)
        return Pose(centres, scales, angles)
    dx, dy = DIRECTIONS[m.direction]
    axis = 0 if dx else 1
    along = m.start + m.travel * s
    if (dx or dy) < 0:  # moving towards smaller coordinates: start from the high side
        along = 1.0 - along
    amp = m.amplitude * min(height, width)
    if m.kind in ("walk", "run", "jump"):  # hops and bobs go up (negative y) or, on vertical paths, sideways
        wave = -amp * np.abs(np.sin(np.pi * m.cycles * s))
        room = (amp, 0.0)
    elif m.kind == "float":
        wave = amp * np.sin(2 * np.pi * m.cycles * s)
        room = (amp, amp)
    else:
        wave, room = np.zeros_like(s), (0.0, 0.0)
    other = 1 - axis
    span_lo, span_hi = lo[other] + room[0], hi[other] - room[1]
    if span_hi < span_lo:  # no room for the bob at this size: keep the path, drop the wave
        span_lo = span_hi = (lo[other] + hi[other]) / 2
        wave = np.zeros_like(s)
    centres[:, axis] = lo[axis] + along * (hi[axis] - lo[axis])
    centres[:, other] = span_lo + m.offset * (span_hi - span_lo) + wave
    return Pose(centres, scales, angles)


def trajectory(spec: SampleSpec, height: int, width: int, num_frames: int) -> np.ndarray:
    """Subject centres (T, 2) as (x, y) pixels."""
    return pose(spec, height, width, num_frames).centres


def expected_displacement(spec: SampleSpec, height: int, width: int, num_frames: int = 2) -> np.ndarray:
    """(dx, dy) pixels the subject's centre moves from the first frame to the last (0 for zoom)."""
    c = pose(spec, height, width, max(num_frames, 2)).centres
    return c[-1] - c[0]


PIXEL_BLOCK = 2  # "pixel" style: the subject drawn at 1/PIXEL_BLOCK resolution without anti-aliasing


def _frame(spec: SampleSpec, centre, height: int, width: int, scale: float = 1.0,
           angle: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """One video frame with the subject's box centred at (x, y): uint8 (H, W, 3) and mask bool (H, W)."""
    bg = background_image(spec.background, height, width)
    texture = spec.video_texture if spec.style is None else None
    colour = spec.video_colour
    if spec.style == "pixel":
        b = PIXEL_BLOCK
        if height % b or width % b:
            raise ValueError(f"{spec.sample_id}: pixel-art style needs a frame size divisible by {b}, got "
                             f"{height}x{width}")
        small, alpha = _draw(spec.subject, colour, (centre[0] / b, centre[1] / b), bg[::b, ::b], height // b,
                             width // b, texture, scale, angle, supersample=1)
        # supersample=1 samples each block at its centre: hard, aliased edges, as pixel art has.
        img = np.kron(small, np.ones((b, b, 1)))
        mask = np.kron(alpha >= 0.5, np.ones((b, b), bool))
        img = np.where(mask[..., None], img, bg)  # the scene stays at full resolution
        return np.clip(np.rint(img), 0, 255).astype(np.uint8), mask
    img, alpha = _draw(spec.subject, colour, centre, bg, height, width, texture, scale, angle)
    mask = alpha >= 0.5
    if spec.style == "sketch":  # outline only: the silhouette's 1 px border in full colour, no texture
        mask = mask & ~_erode(mask)
        img = np.where(mask[..., None], np.asarray(PALETTE[colour], float), bg)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), mask


def render(spec: SampleSpec, height: int, width: int, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The sample's video as the caption describes it: frames uint8 (T, H, W, 3) and masks bool (T, H, W)."""
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    masks = np.empty((num_frames, height, width), bool)
    p = pose(spec, height, width, num_frames)
    for t in range(num_frames):
        frames[t], masks[t] = _frame(spec, p.centres[t], height, width, p.scales[t], p.angles[t])
    return frames, masks


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
        return subject_on_white(frames[t], masks[t])
    white = background_image("white", height, width)
    img, alpha = _draw(spec.subject, spec.subject.colour, (width / 2, height / 2), white, height, width,
                       spec.subject.texture)
    frame = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return subject_on_white(frame, alpha >= 0.5)


def generate(spec: SampleSpec, height: int, width: int, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The backend interface (DESIGN.md): spec -> (identity image (H, W, 3), video (T, H, W, 3)), uint8."""
    frames, masks = render(spec, height, width, num_frames)
    return identity_image(spec, height, width, num_frames, frames, masks), frames
