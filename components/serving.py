"""The serving contract shared by the PyTorch and ONNX pyfunc models (no torch import here).

Request: a DataFrame with `identity_image` (base64 PNG), `prompt` (str) and optional `seed` (int),
`num_inference_steps` (int). Response: a DataFrame with `video` (base64 H.264 MP4), `num_frames`,
`height`, `width`.
"""

from __future__ import annotations

import base64
import io
import tempfile
from pathlib import Path

import numpy as np

MAX_PROMPT_CHARS = 2000


def encode_png(image: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def decode_png(data: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as img:
            return np.asarray(img.convert("RGB"))
    except (ValueError, UnidentifiedImageError) as err:
        raise ValueError(f"identity_image is not a base64-encoded PNG/JPEG image ({err})") from None


def encode_mp4(frames: np.ndarray, fps: int) -> str:
    from components.media import write_video

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "v.mp4"
        write_video(path, frames, fps, pix_fmt="yuv420p", crf=18)
        return base64.b64encode(path.read_bytes()).decode()


def decode_mp4(data: str) -> np.ndarray:
    from components.media import read_video

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "v.mp4"
        path.write_bytes(base64.b64decode(data))
        return read_video(path)[0]


def parse_request(df) -> list[dict]:
    """Validate a request frame; errors name the row and the field."""
    missing = {"identity_image", "prompt"} - set(df.columns)
    if missing:
        raise ValueError(f"request is missing columns {sorted(missing)}; send identity_image (base64 PNG) and prompt")
    rows = []
    for i, r in enumerate(df.to_dict("records")):
        prompt = r["prompt"]
        if not isinstance(prompt, str):
            raise ValueError(f"row {i}: prompt must be a string")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ValueError(f"row {i}: prompt has {len(prompt)} characters, the limit is {MAX_PROMPT_CHARS}")
        seed = r.get("seed")
        steps = r.get("num_inference_steps")
        rows.append({"image": decode_png(r["identity_image"]), "prompt": prompt,
                     "seed": 0 if seed is None or seed != seed else int(seed),
                     "num_inference_steps": None if steps is None or steps != steps else int(steps)})
    return rows


def response(videos: list[np.ndarray], fps: int):
    import pandas as pd

    return pd.DataFrame([{"video": encode_mp4(v, fps), "num_frames": v.shape[0], "height": v.shape[1],
                          "width": v.shape[2]} for v in videos])


def signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema([ColSpec("string", "identity_image"), ColSpec("string", "prompt"),
                     ColSpec("long", "seed", required=False), ColSpec("long", "num_inference_steps", required=False)])
    outputs = Schema([ColSpec("string", "video"), ColSpec("long", "num_frames"), ColSpec("long", "height"),
                      ColSpec("long", "width")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example(height: int, width: int):
    import pandas as pd

    img = np.full((height, width, 3), 255, np.uint8)
    img[height // 4: 3 * height // 4, width // 4: 3 * width // 4] = (220, 30, 30)
    return pd.DataFrame([{"identity_image": encode_png(img), "prompt": "a red box slides left on a black background",
                          "seed": 0, "num_inference_steps": 2}])
