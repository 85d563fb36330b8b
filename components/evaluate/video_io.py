"""Reading videos as the metric references do (METHOD_NOTES §3).

- `read_mp4`: every frame of an .mp4 through OpenCV, with OpenCV's CAP_PROP_FPS (VBench dynamic degree).
- `read_frame_folder`: a folder of image frames, sorted by name (VBench dynamic degree's other input).
- `load_video`: VBench `load_video` for the consistency and text-video dimensions (.mp4, .gif, .png).

These follow the references' decoders on purpose; `components.media` (PyAV) is the pipeline's own video IO.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

IMAGE_EXTS = {"jpg", "png", "jpeg", "bmp", "tif", "tiff"}


def read_mp4(path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """All frames of an .mp4 as uint8 (T, H, W, 3) RGB, and its frame rate (OpenCV's CAP_PROP_FPS)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while cap.isOpened():
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    if not frames:
        raise ValueError(f"{path}: no frames could be decoded")
    return np.stack(frames), float(fps)


def read_frame_folder(path: str | os.PathLike) -> list[np.ndarray]:
    """The image frames (IMAGE_EXTS) of a folder, sorted by file name, each uint8 (H, W, 3) RGB via OpenCV."""
    import cv2

    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.suffix[1:].lower() in IMAGE_EXTS)
    if not files:
        raise ValueError(f"{path}: no image frames in folder")
    return [cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for p in files]


def load_video(path: str | os.PathLike) -> np.ndarray:
    """VBench `load_video` for the consistency and text-video dimensions: every frame, uint8 (T, H, W, 3).

    .gif (PIL, each frame converted to RGB), .png (one frame) or .mp4 (VBench decodes with decord, here
    OpenCV); anything else raises NotImplementedError. Dynamic degree reads files differently
    (`metrics.dynamic_degree_path`: mp4 or a frame folder, and no GIFs).
    """
    text = str(path)
    if text.endswith(".gif") or text.endswith(".png"):
        from PIL import Image, ImageSequence

        with Image.open(text) as img:
            frames = [np.asarray(f.convert("RGB"), dtype=np.uint8) for f in ImageSequence.Iterator(img)]
        return np.stack(frames[:1] if text.endswith(".png") else frames)
    if text.endswith(".mp4"):
        return read_mp4(text)[0]
    raise NotImplementedError(f"{path}: VBench reads .mp4, .gif or .png videos only")
