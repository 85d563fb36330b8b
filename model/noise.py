"""The diffusion noise: one function, in NumPy, for training, the PyTorch pipeline and the ONNX sampler.

White Gaussian noise, plus optionally [RECON] a smooth field shared by all frames (`model.noise`). In pixel
space a subject's colour is a large, flat, low-frequency signal: under white noise it is readable from x_t
almost as soon as the subject's position is, so the denoiser copies it from x_t and the identity image only
pays at the very top of the schedule (docs/sugar_mechanism.md). Smooth noise shared across frames does not
average away over the subject's pixels or over the frames, so colour stays uncertain deep into the schedule
while edges (position, shape) become readable; there the image is what tells the colour, and the denoiser
learns to use it. Offset noise and pyramid noise are the same idea at other scales.

The field is drawn per sample and per sample-space channel on a (grid x grid) lattice, bilinearly upsampled
to the sample size and, for the pixel-unshuffle codec, folded into latent channels exactly as the codec folds
pixels (so it is the same noise the codec would give for a smooth pixel field). Every element keeps unit
variance: DDIM with eta = 0 only needs the initial noise to come from the training distribution.
"""

from __future__ import annotations

import numpy as np


def _upsample_matrix(size: int, grid: int) -> np.ndarray:
    """(size, grid) bilinear interpolation weights, half-pixel centres, edges clamped."""
    pos = np.clip((np.arange(size) + 0.5) * grid / size - 0.5, 0, grid - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, grid - 1)
    frac = pos - lo
    m = np.zeros((size, grid))
    m[np.arange(size), lo] += 1 - frac
    m[np.arange(size), hi] += frac
    return m


def _field_std(size_h: int, size_w: int, grid: int) -> float:
    """Mean per-element std of the upsampled field (unit-variance lattice), to renormalise it to 1."""
    mh, mw = _upsample_matrix(size_h, grid), _upsample_matrix(size_w, grid)
    var = np.outer((mh ** 2).sum(1), (mw ** 2).sum(1))
    return float(np.sqrt(var.mean()))


def diffusion_noise(rng: np.random.Generator, shape: tuple[int, ...], low_frequency: float = 0.0,
                    grid: int = 4, unshuffle: int = 1) -> np.ndarray:
    """float32 noise of latent `shape` (N, F, C, h, w).

    low_frequency: std of the smooth part relative to the white part (0: white noise only).
    grid: lattice cells per side of the smooth field. unshuffle: the codec's pixel-unshuffle factor (1 for
    a VAE, whose latent channels get a field each).
    """
    n, f, c, h, w = shape
    white = rng.standard_normal(shape, dtype=np.float32)
    if not low_frequency:
        return white
    if c % (unshuffle * unshuffle):
        raise ValueError(f"{c} latent channels are not a multiple of unshuffle^2 = {unshuffle ** 2}")
    sc, sh, sw = c // unshuffle ** 2, h * unshuffle, w * unshuffle
    lattice = rng.standard_normal((n, sc, grid, grid))
    mh, mw = _upsample_matrix(sh, grid), _upsample_matrix(sw, grid)
    field = np.einsum("hg,ncgk,wk->nchw", mh, lattice, mw) / _field_std(sh, sw, grid)
    # fold (N, sc, sh, sw) into latent channels as torch.nn.functional.pixel_unshuffle does
    r = unshuffle
    field = field.reshape(n, sc, h, r, w, r).transpose(0, 1, 3, 5, 2, 4).reshape(n, c, h, w)
    noise = (white + low_frequency * field[:, None].astype(np.float32)) / np.float32(np.sqrt(1 + low_frequency ** 2))
    return noise.astype(np.float32)
