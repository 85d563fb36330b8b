"""The serving contract shared by the PyTorch and ONNX pyfunc models (no torch import here).

Request: a DataFrame with `identity_image` (base64 PNG/JPEG/WebP), `prompt` (str) and optional `seed` (int,
0 to 2^32-1), `num_inference_steps` (int, 1 to 100), `image_scale` / `text_scale` (guidance, 0 to 20) and
`num_frames` (must be the model's); MLflow `params` of the same names fill rows that leave them out. Every identity image goes through components/preprocess.identity_image, as in
training and evaluation. Response: a DataFrame with `video` (base64 H.264 MP4), `num_frames`, `height`, `width`.
"""

from __future__ import annotations

import base64
import io
import tempfile
from pathlib import Path

import numpy as np

MAX_PROMPT_CHARS = 2000
MAX_SEED = 2**32 - 1  # NumPy's seeds, which both samplers draw their noise from
MAX_STEPS = 100  # denoising steps: bounds a request's time (the models default to 20-50)
MAX_ROWS = 16  # videos per request
MAX_SCALE = 20.0  # guidance scales: the papers use 1 to 7.5; beyond 20 the output is saturated noise
OPTIONAL_FIELDS = ("seed", "num_inference_steps", "image_scale", "text_scale", "num_frames")


def encode_png(image: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def decode_base64(data, field: str = "identity_image") -> bytes:
    import binascii

    from components.preprocess import MAX_IMAGE_BYTES

    if not isinstance(data, str) or not data:
        raise ValueError(f"{field} must be a base64 string of a PNG/JPEG image")
    if len(data) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise ValueError(f"{field} is {len(data):,} base64 characters; the limit is {MAX_IMAGE_BYTES:,} bytes "
                         "of image")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{field} is not valid base64 (send the image file's bytes, base64-encoded)") from None


def mp4_bytes(frames: np.ndarray, fps: int) -> bytes:
    """(T, H, W, 3) uint8 -> an H.264 MP4 any browser plays."""
    from components.media import write_video

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "v.mp4"
        write_video(path, frames, fps, pix_fmt="yuv420p", crf=18)
        return path.read_bytes()


def encode_mp4(frames: np.ndarray, fps: int) -> str:
    return base64.b64encode(mp4_bytes(frames, fps)).decode()


def decode_mp4(data: str) -> np.ndarray:
    from components.media import read_video

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "v.mp4"
        path.write_bytes(base64.b64decode(data))
        return read_video(path)[0]


def _given(row: dict, params: dict, name: str):
    """The row's value, else the request's `params` value, else None (NaN: absent in a pandas frame)."""
    value = row.get(name)
    if value is None or (isinstance(value, float) and value != value):
        value = params.get(name)
    return value


def _int_in(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or \
            not float(value).is_integer():
        raise ValueError(f"{name}={value!r} must be an integer from {lo} to {hi}")
    if not lo <= int(value) <= hi:
        raise ValueError(f"{name}={int(value)} is out of range; allowed: {lo} to {hi}")
    return int(value)


def _float_in(name: str, value, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or value != value:
        raise ValueError(f"{name}={value!r} must be a number from {lo:g} to {hi:g}")
    if not lo <= float(value) <= hi:
        raise ValueError(f"{name}={float(value):g} is out of range; allowed: {lo:g} to {hi:g}")
    return float(value)


def parse_row(r: dict, height: int, width: int, params: dict | None = None, default_steps: int | None = None,
              num_frames: int | None = None) -> dict:
    """One request row -> {image (H, W, 3) uint8 at the model's size, prompt, seed, num_inference_steps,
    image_scale, text_scale} (scales None: the model's). Raises ValueError naming the field and its range."""
    from components.preprocess import identity_image

    params = params or {}
    prompt = r.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt must be a non-empty string")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"prompt has {len(prompt)} characters, the limit is {MAX_PROMPT_CHARS}")
    seed = _given(r, params, "seed")
    seed = 0 if seed is None else _int_in("seed", seed, 0, MAX_SEED)
    steps = _given(r, params, "num_inference_steps")
    steps = default_steps if steps is None else _int_in("num_inference_steps", steps, 1, MAX_STEPS)
    scales = {}
    for name in ("image_scale", "text_scale"):
        value = _given(r, params, name)
        scales[name] = None if value is None else _float_in(name, value, 0.0, MAX_SCALE)
    frames = _given(r, params, "num_frames")
    if frames is not None and num_frames is not None and _int_in("num_frames", frames, 1, 10_000) != num_frames:
        raise ValueError(f"num_frames={frames} is not offered: this model makes {num_frames}-frame videos")
    image = identity_image(decode_base64(r.get("identity_image")), height, width)
    return {"image": image, "prompt": prompt, "seed": seed, "num_inference_steps": steps, **scales}


def parse_request(df, height: int, width: int, params: dict | None = None, default_steps: int | None = None,
                  num_frames: int | None = None) -> list[dict]:
    """Validate a request frame and bring each identity image to the model's input (components/preprocess.py).

    `params` (MLflow's per-request parameters, the OPTIONAL_FIELDS) fill what a row leaves out. Every bad row is
    reported, by row and field, in one ValueError."""
    missing = {"identity_image", "prompt"} - set(df.columns)
    if missing:
        raise ValueError(f"request is missing columns {sorted(missing)}; send identity_image (base64 PNG/JPEG) and "
                         "prompt")
    if len(df) > MAX_ROWS:
        raise ValueError(f"request has {len(df)} rows; the limit is {MAX_ROWS} videos per request")
    rows, errors = [], []
    for i, r in enumerate(df.to_dict("records")):
        try:
            rows.append(parse_row(r, height, width, params, default_steps, num_frames))
        except ValueError as err:
            errors.append(f"row {i}: {err}")
    if errors:
        raise ValueError("; ".join(errors))
    return rows


def response(videos: list[np.ndarray], fps: int):
    import pandas as pd

    return pd.DataFrame([{"video": encode_mp4(v, fps), "num_frames": v.shape[0], "height": v.shape[1],
                          "width": v.shape[2]} for v in videos])


def signature(default_steps: int):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    inputs = Schema([ColSpec("string", "identity_image"), ColSpec("string", "prompt"),
                     ColSpec("long", "seed", required=False), ColSpec("long", "num_inference_steps", required=False),
                     ColSpec("double", "image_scale", required=False), ColSpec("double", "text_scale", required=False),
                     ColSpec("long", "num_frames", required=False)])
    outputs = Schema([ColSpec("string", "video"), ColSpec("long", "num_frames"), ColSpec("long", "height"),
                      ColSpec("long", "width")])
    # Scales have no ParamSpec: MLflow fills declared params with their defaults, and "the model's own scale"
    # cannot be written as one (a row's image_scale / text_scale columns carry them).
    params = ParamSchema([ParamSpec("seed", "long", 0), ParamSpec("num_inference_steps", "long", default_steps)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def input_example(height: int, width: int):
    import pandas as pd

    img = np.full((height, width, 3), 255, np.uint8)
    img[height // 4: 3 * height // 4, width // 4: 3 * width // 4] = (220, 30, 30)
    return pd.DataFrame([{"identity_image": encode_png(img), "prompt": "a red box slides left on a black background",
                          "seed": 0, "num_inference_steps": 2}])
