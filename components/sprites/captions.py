"""Captions of sprite samples: noun, colour, motion with direction and speed, background and the change;
never the shape, nor the texture unless it changes."""

from __future__ import annotations

from components.sample_rules import article

from .render import pose
from .spec import DIRECTION_WORDS, GAIT_VERBS, MOTION_VERBS, SCENES, TEXTURE_WORDS, Motion, SampleSpec, Subject

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
