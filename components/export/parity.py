"""Parity of the ONNX sampler with the PyTorch pipeline, as they are served: the same identity contract
(components/preprocess.py) on photo-like, non-square images of several sizes, several seeds, each model
drawing its own noise from the seed (so a divergent noise source or preprocessing shows up).

Two figures per case, from one run of each model: the decoded videos in [-1, 1] (the graphs), and the uint8
videos each would return (what a user sees).
"""

from __future__ import annotations

import numpy as np

UINT8_TOLERANCE = 1  # levels of 255: a rounding flip at most


def photo(width: int, height: int, seed: int) -> np.ndarray:
    """A deterministic photo-like test image: a gradient, a few hard-edged discs, sensor noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    y, x = yy / max(height, width), xx / max(height, width)
    img = np.stack([200 * x + 30, 180 * y + 40, 120 + 60 * x * y], -1)
    for _ in range(4):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(0.1, 0.3) * min(height, width)
        img = np.where((((yy - cy) ** 2 + (xx - cx) ** 2) < r * r)[..., None], rng.uniform(0, 255, 3), img)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def parity_report(pipe, sampler, cases: list[tuple[np.ndarray, str]], seeds: list[int], steps: int,
                  atol: float, uint8_tolerance: int = UINT8_TOLERANCE) -> dict:
    """Per case (an identity image of any size, a prompt) and seed: max |torch - onnx| of the decoded videos
    and of the uint8 videos, each model drawing its own noise. Passed when both stay within tolerance."""
    import torch

    from components.export.sampler import to_uint8
    from components.preprocess import identity_image
    from model.pipeline import video_to_uint8

    c = pipe.config
    rows = []
    for i, (image, prompt) in enumerate(cases):
        ident = identity_image(image, c.height, c.width)
        for seed in seeds:
            with torch.no_grad():
                lat = pipe(ident, prompt, seed=seed, num_inference_steps=steps, output_type="latent").frames
                video = pipe.codec.decode(lat).clamp(-1, 1)
            ref, served_torch = video[0].permute(0, 2, 3, 1).numpy(), video_to_uint8(video)[0]
            got = sampler(ident, prompt, seed=seed, num_inference_steps=steps, output_type="float")
            rows.append({"case": i, "image": f"{image.shape[1]}x{image.shape[0]}", "seed": seed, "prompt": prompt,
                         "max_abs_diff": float(np.abs(got - ref).max()),
                         "max_uint8_diff": int(np.abs(served_torch.astype(int) - to_uint8(got).astype(int)).max())})
    worst = max(r["max_abs_diff"] for r in rows)
    worst_uint8 = max(r["max_uint8_diff"] for r in rows)
    return {"passed": worst <= atol and worst_uint8 <= uint8_tolerance, "max_abs_diff": worst,
            "tolerance": atol, "max_uint8_diff": worst_uint8, "uint8_tolerance": uint8_tolerance, "steps": steps,
            "seeds": list(seeds), "cases": rows}
