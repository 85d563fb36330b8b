"""Sample clips re-encoded so that browsers play them at a visible size.

Evaluate may have written High 4:4:4 H.264 (Chrome does not play it) at 32x32; the report needs yuv420p
H.264 MP4, upscaled so a 32 px sprite can be seen.
"""

from __future__ import annotations

from pathlib import Path

DISPLAY_SIDE = 128  # clips are upscaled by an integer factor towards this long side


def browser_video(src: Path, dst: Path) -> tuple[int, int, int]:
    """Re-encode a video as yuv420p H.264 MP4 that browsers play; small clips upscaled (nearest) towards
    DISPLAY_SIDE px by an integer factor, sizes padded to what yuv420p needs. (frames, height, width)."""
    import numpy as np

    from components.media import read_video, write_video

    frames, fps = read_video(src)
    # Integer nearest-neighbour keeps sprite pixels sharp; interpolation would blur them.
    k = max(1, DISPLAY_SIDE // max(frames.shape[1:3]))
    if k > 1:
        frames = frames.repeat(k, axis=1).repeat(k, axis=2)
    pad_h, pad_w = -frames.shape[1] % 4, -frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    write_video(dst, frames, max(1, round(fps or 8)), pix_fmt="yuv420p", crf=18)
    return frames.shape[0], frames.shape[1], frames.shape[2]
