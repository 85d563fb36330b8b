"""The one identity-image contract: every identity image on its way into a model goes through `identity_image`
(training data, evaluation, the PyTorch pyfunc, the ONNX sampler's pyfunc, the parity gate), so what is
served is what was evaluated.

1. decode, with the byte size and the pixel count checked *before* the pixels are allocated (PIL reads the
   header first), a truncated or corrupt file reported as such;
2. EXIF orientation applied (a portrait phone photo arrives upright);
3. to RGB, transparency composited on white (identity images are subjects on white);
4. fitted inside the model's (height, width) with the aspect ratio kept, centred on white, bicubic with
   antialiasing (PIL). An image already at (height, width) is passed through untouched, so the sprites
   data (rendered at the model's size) keeps its bytes.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # an encoded identity image (a phone JPEG is 2-8 MB)
MAX_IMAGE_PIXELS = 40_000_000  # decoded: 120 MB of RGB at most (a 48 MP phone photo is 8000 x 6000)
BACKGROUND = (255, 255, 255)


class ImageError(ValueError):
    """An identity image that cannot be used; the message names the problem and the limit."""


def _open(source):
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, (bytes, bytearray)):
        if len(source) > MAX_IMAGE_BYTES:
            raise ImageError(f"identity image is {len(source):,} bytes; the limit is {MAX_IMAGE_BYTES:,} "
                             "(send a JPEG or PNG under it)")
        handle = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{path}: identity image file is missing")
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise ImageError(f"{path}: identity image is {path.stat().st_size:,} bytes; the limit is "
                             f"{MAX_IMAGE_BYTES:,}")
        handle = path
    try:
        img = Image.open(handle)  # reads the header only
    except Image.DecompressionBombError as err:  # PIL refuses from the header, before our own check
        found = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(found[1]):,} pixels" if found else "too many pixels"
        raise ImageError(f"identity image has {size}; the limit is {MAX_IMAGE_PIXELS:,} (downscale it first)"
                         ) from None
    except (UnidentifiedImageError, OSError) as err:
        raise ImageError(f"identity image is not a readable PNG/JPEG/WebP image ({err})") from None
    w, h = img.size
    if w * h > MAX_IMAGE_PIXELS:
        img.close()
        raise ImageError(f"identity image is {w} x {h} = {w * h:,} pixels; the limit is {MAX_IMAGE_PIXELS:,} "
                         "(downscale it first)")
    return img


def decode_image(source) -> np.ndarray:
    """bytes or a path -> uint8 (H, W, 3): checked, EXIF-oriented, RGB on white. ImageError otherwise."""
    from PIL import Image, ImageOps

    with _open(source) as img:
        try:
            img.load()
            img = ImageOps.exif_transpose(img)
        except (OSError, SyntaxError) as err:  # truncated data, broken chunks
            raise ImageError(f"identity image is truncated or corrupt ({err}); send the whole file") from None
        if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            canvas = Image.new("RGB", rgba.size, BACKGROUND)
            canvas.paste(rgba, mask=rgba.getchannel("A"))
            img = canvas
        return np.asarray(img.convert("RGB"))


def fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (h, w, 3) -> (height, width, 3): resized to fit with the aspect kept, centred on white; an image
    already at (height, width) is returned as it is."""
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ImageError(f"identity image must be uint8 RGB (H, W, 3), got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    s = min(height / h, width / w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    small = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BICUBIC, reducing_gap=None))
    out = np.full((height, width, 3), BACKGROUND, np.uint8)
    y, x = (height - nh) // 2, (width - nw) // 2
    out[y:y + nh, x:x + nw] = small
    return out


def identity_image(source, height: int, width: int) -> np.ndarray:
    """The model's identity input, uint8 (height, width, 3), from encoded bytes, a file path or a decoded
    uint8 (h, w, 3) array (already oriented and RGB)."""
    image = source if isinstance(source, np.ndarray) else decode_image(source)
    return fit(image, height, width)
