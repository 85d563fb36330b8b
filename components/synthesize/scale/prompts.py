"""Captions and text-to-image prompts for the `diffusers` backend, drawn from templates by a seeded rng.

SUGAR writes, per subject image, a prompt for a target video of the subject with changed visual attributes
(style, texture, colour, background) from hand-written templates [RECON: the paper enriches them with an
LLM; here the wording varies by template only]. A synthetic sample has one attribute change: the
text-to-image step applies it (`t2i_prompt`) and the caption states it. A real-like sample keeps the
subject as it is. Every caption also states a motion that suits the subject's category.
"""

from __future__ import annotations

import numpy as np

from components.dataset import CATEGORY_MOTIONS
from components.sample_rules import article


# Third-person phrases; {dir} takes one of the motion's directions.
MOTION_PHRASES: dict[str, tuple[str, ...]] = {
    "walk": ("walks {dir}", "strolls {dir}", "walks slowly {dir}"),
    "run": ("runs {dir}", "dashes {dir}", "runs quickly {dir}"),
    "jump": ("jumps up and down", "leaps {dir}", "hops {dir}"),
    "spin": ("spins in place", "rotates on the spot", "twirls around quickly"),
    "slide": ("slides {dir}", "glides {dir}", "moves smoothly {dir}"),
    "float": ("floats {dir}", "drifts gently {dir}", "hovers and drifts {dir}"),
    "zoom": ("looms closer as the camera zooms in", "recedes as the camera zooms out",
             "fills more of the frame as the camera slowly zooms in"),
}
MOTION_DIRECTIONS: dict[str, tuple[str, ...]] = {
    "walk": ("to the left", "to the right", "across the frame", "toward the camera"),
    "run": ("to the left", "to the right", "across the frame", "toward the camera"),
    "jump": ("to the left", "to the right", "forward"),
    "spin": ("",),
    "slide": ("to the left", "to the right", "across the table", "across the frame"),
    "float": ("upward", "downward", "to the left", "to the right"),
    "zoom": ("",),
}

CHANGE_VALUES: dict[str, tuple[str, ...]] = {
    "colour": ("red", "orange", "yellow", "green", "blue", "purple", "pink", "black", "white", "golden", "silver"),
    "texture": ("striped", "polka-dot", "wooden", "metallic", "glass", "knitted", "marble", "plush"),
    "style": ("pencil sketch", "pixel art", "watercolour", "oil painting", "cartoon", "claymation", "origami",
              "low-poly"),
    "background": ("on a sandy beach", "in a snowy forest", "on a busy city street", "in a grassy meadow",
                   "in outer space", "on a wooden table", "in a cozy living room", "under the sea"),
}

# Video captions: {subject} is "a cat" style (article + noun), {motion} a phrase above, {value} the change.
CAPTION_TEMPLATES: dict[str | None, tuple[str, ...]] = {
    None: ("{subject} {motion}", "a video of {subject} that {motion}", "the {noun} {motion}"),
    "colour": ("{a_value} {value} {noun} {motion}", "the {noun}, now {value}, {motion}",
               "{a_value} {value}-coloured {noun} {motion}"),
    "texture": ("{a_value} {value} {noun} {motion}", "the {noun}, with a {value} look, {motion}",
                "{a_value} {value} version of the {noun} {motion}"),
    "style": ("{subject} {motion}, in {value} style", "the {noun} {motion}, drawn in {value} style",
              "{value} style video: {subject} {motion}"),
    "background": ("{subject} {motion} {value}", "the {noun} {motion}, {value}", "{value}, {subject} {motion}"),
}
# Text-to-image prompts: the changed subject, still (the motion is the I2V step's business).
T2I_TEMPLATES: dict[str, tuple[str, ...]] = {
    "colour": ("a photo of {a_value} {value} {noun}", "the same {noun}, coloured {value}"),
    "texture": ("a photo of {a_value} {value} {noun}", "the {noun} with a {value} look"),
    "style": ("{subject} in {value} style", "the {noun}, drawn in {value} style"),
    "background": ("a photo of the {noun} {value}", "the {noun} {value}"),
}


def category_motions(category: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The motions of `category` that `allowed` (synthesize.motions) keeps; the error names both."""
    if category not in CATEGORY_MOTIONS:
        raise ValueError(f"unknown category {category!r}; choose one of {tuple(CATEGORY_MOTIONS)}")
    motions = tuple(m for m in CATEGORY_MOTIONS[category] if m in allowed)
    if not motions:
        raise ValueError(f"synthesize.motions={tuple(allowed)} has no motion for {category} subjects; add one of "
                         f"{CATEGORY_MOTIONS[category]}")
    return motions


def draw_text(noun: str, category: str, change: str | None, rng: np.random.Generator,
              allowed_motions: tuple[str, ...]) -> dict:
    """One sample's text: {"motion", "direction", "change", "value", "caption", "t2i_prompt"} (JSON-able).

    change: None for a real-like sample, else one of CHANGE_VALUES' kinds; t2i_prompt is None without one.
    """
    motions = category_motions(category, allowed_motions)
    motion = str(rng.choice(motions))
    direction = str(rng.choice(MOTION_DIRECTIONS[motion]))
    phrase = MOTION_PHRASES[motion][int(rng.integers(len(MOTION_PHRASES[motion])))]
    value = str(rng.choice(CHANGE_VALUES[change])) if change else ""
    words = dict(noun=noun, subject=f"{article(noun)} {noun}", value=value, a_value=article(value or noun),
                 motion=" ".join(phrase.format(dir=direction).split()))
    templates = CAPTION_TEMPLATES[change]
    caption = templates[int(rng.integers(len(templates)))].format(**words)
    t2i_prompt = None
    if change:
        t2i = T2I_TEMPLATES[change]
        t2i_prompt = t2i[int(rng.integers(len(t2i)))].format(**words)
    direction = direction if "{dir}" in phrase else ""  # "spins in place" has none
    return {"motion": motion, "direction": direction or None, "change": change, "value": value or None,
            "caption": " ".join(caption.split()), "t2i_prompt": t2i_prompt}


def draw_change(weights: dict[str, float], rng: np.random.Generator) -> str:
    """An attribute change kind drawn by synthesize.changes' relative weights."""
    kinds = sorted(weights)
    p = np.array([weights[k] for k in kinds], np.float64)
    return str(rng.choice(kinds, p=p / p.sum()))
