"""Both served models, the same request: max |Δ| per photo between the PyTorch pyfunc (`vidcustom`) and the
ONNX pyfunc (`vidcustom-onnx`) of one checkpoint, on photo-like identity images of many sizes and aspects,
as JPEG (some with an EXIF rotation), PNG and RGBA PNG (issue 11's "30-photo check"; the images are
synthetic: no photo set can be downloaded here).

    python benchmarks/served_parity.py CHECKPOINT_DIR [--photos 30] [--seed 0] [--steps N]

Prints one line per photo (size, format, max |Δ| in levels of 255 of the videos, and of the MP4s each server
returns after decoding: H.264 is lossy, so a one-level difference in a frame can move the decoded video more)
and the worst.
"""

from __future__ import annotations

import argparse
import base64
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def encoded(img: np.ndarray, kind: str, rng: np.random.Generator) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    if kind == "jpeg-exif":
        exif = Image.Exif()
        exif[0x0112] = int(rng.choice([3, 6, 8]))  # rotated 180 / 90 CW / 90 CCW, as phones store them
        Image.fromarray(img).save(buf, "JPEG", quality=90, exif=exif.tobytes())
    elif kind == "jpeg":
        Image.fromarray(img).save(buf, "JPEG", quality=int(rng.integers(70, 96)))
    elif kind == "rgba":
        alpha = np.full(img.shape[:2], 255, np.uint8)
        alpha[: img.shape[0] // 5] = 0  # a transparent band, composited on white by the contract
        Image.fromarray(np.dstack([img, alpha]), "RGBA").save(buf, "PNG")
    else:
        Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


def frames(kind: str, model, df) -> np.ndarray:
    """The video a pyfunc encodes for the request's one row: its own request parsing, then its sampler."""
    from components.serving import parse_request

    if kind == "torch":
        c = model.pipe.config
        r = parse_request(df, c.height, c.width, None, c.sampler.num_inference_steps)[0]
        return model.pipe(r["image"], r["prompt"], seed=r["seed"], num_inference_steps=r["num_inference_steps"]).frames[0]
    c = model.sampler.config
    r = parse_request(df, c["height"], c["width"], None, c["num_inference_steps"])[0]
    return model.sampler(r["image"], r["prompt"], seed=r["seed"], num_inference_steps=r["num_inference_steps"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--photos", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")
    a = ap.parse_args()

    import pandas as pd

    from components.export.onnx_export import export_pipeline
    from components.export.parity import photo
    from components.export.pyfunc import OnnxSugarPyfunc
    from components.register.pyfunc import SugarPyfunc
    from components.serving import decode_mp4
    from model.pipeline import SugarPipeline

    with tempfile.TemporaryDirectory() as d:
        pipe = SugarPipeline.from_pretrained(a.checkpoint)
        export_pipeline(pipe, Path(d) / "onnx")
        ctx = type("Ctx", (), {"artifacts": {"checkpoint": a.checkpoint, "onnx": str(Path(d) / "onnx")}})()
        models = {"torch": SugarPyfunc(), "onnx": OnnxSugarPyfunc()}
        for m in models.values():
            m.load_context(ctx)
        rng = np.random.default_rng(a.seed)
        kinds = ("jpeg", "jpeg-exif", "png", "rgba")
        worst = worst_mp4 = refused = disagree = 0
        print(f"{'photo':>5} {'size':>11} {'format':>9} {'max |Δ| /255':>12} {'as MP4':>9}")
        for i in range(a.photos):
            side = int(rng.integers(200, 4001))
            aspect = float(np.exp(rng.uniform(np.log(0.3), np.log(3.0))))
            w, h = max(16, int(side * min(1, aspect))), max(16, int(side * min(1, 1 / aspect)))
            kind = kinds[i % len(kinds)]
            data = encoded(photo(w, h, a.seed * 1000 + i), kind, rng)
            row = {"identity_image": base64.b64encode(data).decode(), "prompt": "a red cat walks to the left",
                   "seed": int(rng.integers(0, 2**32))}
            if a.steps:
                row["num_inference_steps"] = a.steps
            df = pd.DataFrame([row])
            videos, mp4s, refusals = {}, {}, {}
            for k, m in models.items():
                try:
                    mp4s[k] = decode_mp4(m.predict(None, df)["video"][0]).astype(int)
                    videos[k] = frames(k, m, df).astype(int)
                except ValueError as err:  # over a limit: both must refuse, with the same message
                    refusals[k] = str(err)
            size = f"{w}x{h}"
            if refusals:
                same = len(refusals) == 2 and refusals["torch"] == refusals["onnx"]
                refused += 1
                disagree += not same
                print(f"{i:>5} {size:>11} {kind:>9} {'refused by ' + ('both' if same else 'ONE'):>12}: "
                      f"{next(iter(refusals.values()))[:90]}")
                continue
            diff = int(np.abs(videos["torch"] - videos["onnx"]).max())
            diff_mp4 = int(np.abs(mp4s["torch"] - mp4s["onnx"]).max())
            worst, worst_mp4 = max(worst, diff), max(worst_mp4, diff_mp4)
            print(f"{i:>5} {size:>11} {kind:>9} {diff:>12} {diff_mp4:>9}")
        print(f"worst over {a.photos - refused} served photos: {worst}/255 in the videos (requirement: <= 1), "
              f"{worst_mp4}/255 after each is H.264-encoded and decoded; {refused} refused over a limit, {disagree} "
              "refused by one model only")


if __name__ == "__main__":
    main()
