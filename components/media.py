"""Video and image files: H.264 MP4 through PyAV, PNG through Pillow.

Frames are uint8 arrays (T, H, W, 3), RGB. Errors name the file and what to do.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


class MediaError(ValueError):
    """A media file is missing, corrupt, truncated or of the wrong shape."""


# BT.601 limited range, the matrix decoders assume for untagged SD video (and swscale's default).
_RGB2YUV = np.array([[0.256788, 0.504129, 0.097906], [-0.148223, -0.290993, 0.439216],
                     [0.439216, -0.367788, -0.071427]])
_YUV_OFFSET = np.array([16.0, 128.0, 128.0])


def _yuv_frame(frame: np.ndarray, pix_fmt: str):
    """RGB (H, W, 3) -> an av.VideoFrame in `pix_fmt`, converted in NumPy.

    Converting here and filling whole planes makes the encoded file a function of the frames alone (the
    same frames once gave different bytes from one process to the next, breaking "same content, same
    DVC version").
    """
    import av

    yuv = np.clip(np.rint(frame.astype(np.float64) @ _RGB2YUV.T + _YUV_OFFSET), 0, 255).astype(np.uint8)
    if pix_fmt == "yuv444p":
        planes = [yuv[..., 0], yuv[..., 1], yuv[..., 2]]
    elif pix_fmt == "yuv420p":
        h, w = yuv.shape[:2]
        chroma = yuv[..., 1:].astype(np.float64).reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
        chroma = np.clip(np.rint(chroma), 0, 255).astype(np.uint8)
        planes = [yuv[..., 0], chroma[..., 0], chroma[..., 1]]
    else:
        raise ValueError(f"unsupported pix_fmt {pix_fmt!r}; use yuv444p or yuv420p")
    out = av.VideoFrame(frame.shape[1], frame.shape[0], pix_fmt)
    for plane, data in zip(out.planes, planes):
        # Fill whole lines, alignment padding included: x264 reads it, and uninitialised padding made the
        # encoded bytes depend on heap contents.
        buf = np.zeros((plane.height, plane.line_size), np.uint8)
        buf[:, : data.shape[1]] = data
        plane.update(buf)
    return out


def write_video(path: str | Path, frames: np.ndarray, fps: int, pix_fmt: str = "yuv444p", crf: int = 12) -> None:
    """Encode (T, H, W, 3) uint8 RGB frames as H.264 MP4.

    yuv444p keeps the colour of small sprites exact enough to train on; pass pix_fmt="yuv420p"
    for videos a browser must play (Chrome does not decode High 4:4:4).
    """
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise MediaError(f"{path}: expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if pix_fmt == "yuv420p" and (frames.shape[1] % 4 or frames.shape[2] % 2):
        raise MediaError(f"{path}: yuv420p needs a height divisible by 4 and an even width, got {frames.shape[1:3]}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=int(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        # One encoder thread, no lookahead threads: the same frames give the same bytes under any CPU load.
        stream.thread_count = 1
        # No lookahead, B-frames or weighted prediction: those x264 analyses read uninitialised memory, so
        # identical frames encoded to different bytes depending on the heap (measured: 3 distinct files from
        # 5 encodes). Deterministic bytes are what make "same content -> same DVC version" hold; on clips of
        # a few frames the lost compression is negligible.
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1", "lookahead_threads": "1",
                          "x264-params": "bframes=0:rc-lookahead=0:mbtree=0:weightp=0"}
        for i, frame in enumerate(frames):
            vf = _yuv_frame(frame, pix_fmt)
            vf.pts, vf.time_base = i, Fraction(1, int(fps))  # explicit timing: rate control must not guess it
            container.mux(stream.encode(vf))
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


# ------------------------------------------------------------------------ partial reads of long videos
def _open_video(path: Path):
    """(container, first video stream) of an existing, non-empty, openable file; MediaError otherwise."""
    import av

    if not path.is_file():
        raise MediaError(f"{path}: video file is missing")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: video file is empty (0 bytes); re-run synthesis for this sample")
    try:
        container = av.open(str(path))
    except Exception as err:  # av raises many error types for broken files
        raise _decode_error(path, err) from None
    if not container.streams.video:
        container.close()
        raise MediaError(f"{path}: no video stream")
    return container, container.streams.video[0]


def _decode_error(path: Path, err: Exception) -> MediaError:
    return MediaError(f"{path}: cannot decode video ({type(err).__name__}: {err}); the file is corrupt or "
                      "truncated, regenerate or remove this sample")


def probe_video(path: str | Path) -> tuple[int, float, float, int, int]:
    """(n_frames, fps, duration_s, height, width) of a video from its headers; no frame is decoded.

    n_frames is the container's frame count; formats without one (Matroska, WebM) count the stream's
    packets (read, not decoded). fps is `read_video`'s. A file whose frames do not decode is found by
    `read_video_frames`, which raises for it.
    """
    import av

    path = Path(path)
    container, stream = _open_video(path)
    try:
        with container:
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            height, width = int(stream.codec_context.height), int(stream.codec_context.width)
            n = int(stream.frames or 0)
            if n <= 0:
                n = sum(1 for packet in container.demux(stream) if packet.size)
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            else:
                duration = n / fps if fps > 0 else 0.0
    except Exception as err:
        raise _decode_error(path, err) from None
    if n <= 0:
        raise MediaError(f"{path}: video decodes to zero frames")
    if height <= 0 or width <= 0:
        raise MediaError(f"{path}: video stream has no frame size; the file is corrupt, regenerate or remove it")
    return n, fps, duration, height, width


def read_video_frames(path: str | Path, indices, transform=None) -> np.ndarray:
    """Frames `indices` of a video (numbers as in `read_video`'s array): (len(indices), H, W, 3) uint8 RGB.

    Seeks to the keyframe before the first wanted frame and decodes only up to the last one, keeping
    just the wanted frames: a clip of a long video costs about a clip (plus a keyframe interval) of
    decoding and only the clip's frames of memory. The frame a seek lands on is numbered from its
    timestamp (exact for constant frame rate; a seek that lands past the wanted frame falls back to
    decoding from the start). `transform(frame) -> array`, when given, is applied to each kept frame
    as it is decoded (e.g. a crop and resize) and the result stacks its outputs; a repeated index is
    decoded and transformed once. MediaError, as `read_video`, for missing, empty, corrupt, truncated
    or frameless files, and for a file that ends before the last wanted frame.
    """
    path = Path(path)
    wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
    if wanted.size == 0:
        raise ValueError("read_video_frames: no frame indices given")
    if wanted.min() < 0:
        raise ValueError(f"read_video_frames: negative frame index {int(wanted.min())}")
    need = sorted(set(wanted.tolist()))
    result = _decode_frames(path, need, transform, seek=need[0] > 0)
    if result is None:  # the seek overshot (or the stream has no timestamps): decode from the start
        result = _decode_frames(path, need, transform, seek=False)
    kept, decoded = result
    if decoded == 0:
        raise MediaError(f"{path}: video decodes to zero frames")
    missing = [k for k in need if k not in kept]
    if missing:
        raise MediaError(f"{path}: video ends after frame {decoded - 1}, frame {missing[0]} was asked for; the file "
                         "is truncated or its header overstates its length, regenerate or remove this sample")
    return np.stack([kept[k] for k in wanted.tolist()])


def _decode_frames(path: Path, need: list[int], transform, seek: bool) -> tuple[dict, int] | None:
    """({frame number: frame} of `need` (sorted), frames numbered so far) or None when a seek overshot."""
    container, stream = _open_video(path)
    wanted, last = set(need), need[-1]
    kept: dict[int, np.ndarray] = {}
    k = -1
    try:
        with container:
            rate = stream.average_rate or stream.guessed_rate
            base = stream.time_base
            start = stream.start_time or 0
            if seek:
                if not rate or base is None:
                    return None
                # Half a frame early, so rounding never puts the target after the wanted frame.
                target = start + int((Fraction(need[0]) - Fraction(1, 2)) / Fraction(rate) / base)
                container.seek(max(target, start), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if k < 0 and seek:
                    if frame.pts is None:
                        return None
                    k = round((frame.pts - start) * base * Fraction(rate))
                    if k > need[0]:
                        return None
                else:
                    k += 1
                if k in wanted:
                    image = frame.to_ndarray(format="rgb24")
                    kept[k] = transform(image) if transform is not None else image
                if k >= last:
                    break
    except Exception as err:  # av raises many error types for broken files
        raise _decode_error(path, err) from None
    if seek and k < 0:
        return None  # nothing after the seek point: let the plain decode say what is wrong
    return kept, k + 1
