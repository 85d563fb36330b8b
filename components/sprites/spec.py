"""Sprite specs: the attribute space (palette, nouns, shapes, textures, motions, scenes), the
resolution-free `SampleSpec` with its subject and motion, and the fixed held-out partition.

A subject's identity is (shape, texture, colour, size) under a category noun. Captions state the
noun, the colour, the motion and the background, never the shape or the texture (unless a texture
change asks for a new one): those reach the model only through the identity image, which is what
makes "no image condition -> identity drops" measurable.

Motions suit the category (animals walk, run, jump; active objects run, jump, spin, slide; static
objects slide, float, spin, zoom). Synthetic samples change one attribute as their caption says:
colour, texture, style (pencil sketch, pixel art) or background (a patterned scene); real-like
samples keep the subject and cut their identity image from their own video. Scores against this
ground truth live in `components.sprites.scoring`.

Specs are resolution-free (sizes and positions are fractions of the frame); `render` turns one
into frames at any (height, width, num_frames).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

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
