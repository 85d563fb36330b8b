"""Rendering a sprite spec at any (height, width, num_frames): frames, masks and the identity image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.sample_rules import subject_on_white

from .spec import (BACKGROUNDS, DIRECTIONS, PALETTE, SCENES, SHADE, SHAPES, SUPERSAMPLE, TEXTURES, SampleSpec,
                   Subject)


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
