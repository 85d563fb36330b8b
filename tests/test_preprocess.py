"""The identity-image contract (components/preprocess.py) and request validation (components/serving.py):
caps checked before the pixels exist, EXIF orientation, transparency on white, the fit policy, every bad
request field named by row, and both served models giving the same video for the same request and seed on
photo-like, non-square images of several sizes."""

import base64
import io
import struct
import zlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from components.export.parity import photo as _photo
from components.preprocess import MAX_IMAGE_PIXELS, ImageError, decode_image, fit, identity_image
from components.serving import MAX_SEED, MAX_STEPS, encode_png, parse_request


def _bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _huge_png_header(w: int, h: int) -> bytes:
    """A PNG that claims w x h pixels but holds one byte of data: decoding it would fail differently."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def test_pixel_and_byte_caps_are_checked_before_decoding():
    with pytest.raises(ImageError, match=r"12000 x 12000 = 144,000,000 pixels; the limit is 40,000,000"):
        decode_image(_huge_png_header(12000, 12000))
    with pytest.raises(ImageError, match="too large to decode|pixels; the limit"):
        decode_image(_huge_png_header(15000, 15000))
    with pytest.raises(ImageError, match="bytes; the limit is"):
        decode_image(b"\0" * (20 * 1024 * 1024 + 1))
    assert MAX_IMAGE_PIXELS == 40_000_000


def test_truncated_corrupt_and_non_images_are_named():
    jpeg = _bytes(Image.fromarray(_photo(64, 48, 0)), "JPEG", quality=90)
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode_image(jpeg[: len(jpeg) // 2])
    with pytest.raises(ImageError, match="not a readable PNG/JPEG/WebP image"):
        decode_image(b"not an image at all")


def test_exif_orientation_and_transparency():
    img = Image.fromarray(_photo(60, 40, 1))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": a portrait phone photo stored sideways
    upright = decode_image(_bytes(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert upright.shape == (60, 40, 3)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[2:6, 2:6] = (200, 10, 10, 255)  # opaque red square on a fully transparent field
    out = decode_image(_bytes(Image.fromarray(rgba, "RGBA")))
    assert (out[0, 0] == 255).all() and tuple(out[3, 3]) == (200, 10, 10)


def test_fit_keeps_the_aspect_on_white_and_passes_the_model_size_through():
    wide = _photo(64, 16, 2)
    out = fit(wide, 32, 32)
    assert out.shape == (32, 32, 3)
    assert (out[:12] == 255).all() and (out[20:] == 255).all() and not (out[12:20] == 255).all()
    same = _photo(32, 32, 3)
    assert fit(same, 32, 32) is same  # sprites data at the model's size keeps its bytes
    assert identity_image(_bytes(Image.fromarray(same)), 32, 32).tobytes() == same.tobytes()


def _row(img: np.ndarray, **kw) -> dict:
    return {"identity_image": encode_png(img), "prompt": "a red cat walks", **kw}


def test_every_bad_field_is_named_by_row():
    ok = _photo(40, 30, 4)
    df = pd.DataFrame([_row(ok, seed=-1), _row(ok, num_inference_steps=0), _row(ok, num_inference_steps=MAX_STEPS + 1),
                       _row(ok, seed=2.5), {"identity_image": "%%%", "prompt": "x"}, _row(ok, prompt=""),
                       {"identity_image": base64.b64encode(_huge_png_header(12000, 12000)).decode(), "prompt": "x"},
                       _row(ok)])
    with pytest.raises(ValueError) as err:
        parse_request(df, 32, 32)
    msg = str(err.value)
    for expected in (f"row 0: seed=-1 is out of range; allowed: 0 to {MAX_SEED}",
                     f"row 1: num_inference_steps=0 is out of range; allowed: 1 to {MAX_STEPS}",
                     f"row 2: num_inference_steps={MAX_STEPS + 1} is out of range",
                     "row 3: seed=2.5 must be an integer", "row 4: identity_image is not valid base64",
                     "row 5: prompt must be a non-empty string", "row 6: identity image is 12000 x 12000"):
        assert expected in msg, msg
    assert "row 7" not in msg


def test_params_fill_rows_and_rows_win():
    img = _photo(32, 32, 5)
    rows = parse_request(pd.DataFrame([_row(img), _row(img, seed=9)]), 32, 32,
                         params={"seed": 7, "num_inference_steps": 3}, default_steps=20)
    assert [(r["seed"], r["num_inference_steps"]) for r in rows] == [(7, 3), (9, 3)]
    assert parse_request(pd.DataFrame([_row(img)]), 32, 32, default_steps=20)[0]["num_inference_steps"] == 20


@pytest.fixture(scope="module")
def both_models(tmp_path_factory):
    from components.export.onnx_export import export_pipeline
    from components.export.pyfunc import OnnxSugarPyfunc
    from components.register.pyfunc import SugarPyfunc
    from model.config import model_config
    from model.pipeline import SugarPipeline

    root = tmp_path_factory.mktemp("served")
    pipe = SugarPipeline.from_config(model_config("tiny", num_frames=4), seed=0)
    pipe.save_pretrained(root / "ckpt")
    export_pipeline(pipe, root / "onnx")
    ctx = type("Ctx", (), {"artifacts": {"checkpoint": str(root / "ckpt"), "onnx": str(root / "onnx")}})()
    torch_model, onnx_model = SugarPyfunc(), OnnxSugarPyfunc()
    torch_model.load_context(ctx)
    onnx_model.load_context(ctx)
    return torch_model, onnx_model


@pytest.mark.parametrize("size", [(640, 480), (480, 853), (1200, 300), (32, 32)])
def test_both_served_models_give_the_same_video_for_the_same_request(both_models, size):
    """Each model parses the request itself (the contract), then samples with its own noise draw."""
    from components.serving import decode_mp4

    torch_model, onnx_model = both_models
    w, h = size
    photo = Image.fromarray(_photo(w, h, w + h))
    df = pd.DataFrame([{"identity_image": base64.b64encode(_bytes(photo, "JPEG", quality=92)).decode(),
                        "prompt": "a red cat walks to the left", "seed": s, "num_inference_steps": 3}
                       for s in (0, 1, 123456)])
    c, sc = torch_model.pipe.config, onnx_model.sampler.config
    rows_torch = parse_request(df, c.height, c.width, None, c.sampler.num_inference_steps)
    rows_onnx = parse_request(df, sc["height"], sc["width"], None, sc["num_inference_steps"])
    for a, b in zip(rows_torch, rows_onnx):
        assert a["image"].tobytes() == b["image"].tobytes() and a["seed"] == b["seed"]
        va = torch_model.pipe(a["image"], a["prompt"], seed=a["seed"], num_inference_steps=3).frames[0]
        vb = onnx_model.sampler(b["image"], b["prompt"], seed=b["seed"], num_inference_steps=3)
        assert va.shape == vb.shape and np.abs(va.astype(int) - vb.astype(int)).max() <= 1
    served = onnx_model.predict(None, df.head(1))  # and the response is the MP4 of such a video
    assert decode_mp4(served["video"][0]).shape == (c.num_frames, c.height, c.width, 3)
