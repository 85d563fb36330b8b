"""Drawing specs from a seed: training subjects and their samples, and the held-out evaluation specs
(`heldout_specs_for` reads the run config, so evaluation and export draw the same ones)."""

from __future__ import annotations

import dataclasses

import numpy as np

from components.dataset import CATEGORY_MOTIONS
from components.sample_rules import seeded_rng

from .captions import caption_for
from .spec import (BACKGROUNDS, DIRECTIONS, NOUNS, PALETTE, SCENES, SHAPES, SIZE_RANGE, STYLES, TEXTURES, Combo,
                   Motion, SampleSpec, Subject, is_heldout)


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


def heldout_specs_for(cfg, n: int) -> list[SampleSpec]:
    """The held-out evaluation specs of a run config (`RunConfig`), drawn with the same caption and size
    conventions as its training data."""
    s = cfg.synthesize
    return heldout_specs(cfg.evaluate.seed, n, s.caption_colour, s.subject_size, s.motions, s.caption_position)
