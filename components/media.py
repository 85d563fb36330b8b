"""Video and image files: H.264 MP4 through PyAV, PNG through Pillow.

Frames are uint8 arrays (T, H, W, 3), RGB. Errors name the file and what to do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class MediaError(ValueError):
    """A media file is missing, corrupt, truncated or of the wrong shape."""


def write_video(path: str | Path, frames: np.ndarray, fps: int, pix_fmt: str = "yuv444p", crf: int = 12) -> None:
    """Encode (T, H, W, 3) uint8 RGB frames as H.264 MP4.

    yuv444p keeps the colour of small sprites exact enough to train on; pass pix_fmt="yuv420p"
    for videos a browser must play (Chrome does not decode High 4:4:4).
    """
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise MediaError(f"{path}: expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=int(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        # One encoder thread, no lookahead threads: the same frames give the same bytes under any CPU load.
        stream.thread_count = 1
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1", "lookahead_threads": "1"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    tmp.replace(path)  # atomic: a killed writer never leaves a half file under the final name


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """Decode a video to (T, H, W, 3) uint8 RGB and its frame rate."""
    import av

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: video file is missing")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: video file is empty (0 bytes); re-run synthesis for this sample")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path}: no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    except MediaError:
        raise
    except Exception as err:  # av raises many error types for broken files
        raise MediaError(f"{path}: cannot decode video ({type(err).__name__}: {err}); the file is corrupt or "
                         "truncated, regenerate or remove this sample") from None
    if not frames:
        raise MediaError(f"{path}: video decodes to zero frames")
    return np.stack(frames), fps


def write_image(path: str | Path, image: np.ndarray) -> None:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path)


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: image file is missing")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise MediaError(f"{path}: cannot read image ({err})") from None
