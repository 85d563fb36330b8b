"""Parity of the ONNX sampler with the PyTorch pipeline: same seed, same inputs, same noise."""

from __future__ import annotations

import numpy as np


def parity_report(pipe, sampler, cases: list[tuple[np.ndarray, str]], seed: int, steps: int, atol: float) -> dict:
    """Max |torch - onnx| over the decoded videos in [-1, 1] units, per case and overall."""
    import torch

    rows = []
    for i, (image, prompt) in enumerate(cases):
        noise = pipe.initial_noise(1, seed + i)
        with torch.no_grad():
            lat = pipe(image, prompt, seed=seed + i, num_inference_steps=steps, output_type="latent").frames
            ref = pipe.codec.decode(lat).clamp(-1, 1)[0].permute(0, 2, 3, 1).numpy()
        got = sampler(image, prompt, num_inference_steps=steps, noise=noise.numpy(), output_type="float")
        err = float(np.abs(got - ref).max())
        rows.append({"case": i, "prompt": prompt, "max_abs_diff": err})
    worst = max(r["max_abs_diff"] for r in rows)
    return {"passed": worst <= atol, "max_abs_diff": worst, "tolerance": atol, "steps": steps,
            "seed": seed, "cases": rows}
