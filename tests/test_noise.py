"""The diffusion noise (model/noise.py): statistics, the codec's folding, and one source for both samplers."""
import numpy as np
import pytest
import torch

from model.config import model_config
from model.noise import diffusion_noise

SHAPE = (64, 4, 48, 8, 8)  # (N, F, C, h, w) of tiny: 32x32 pixels unshuffled by 4


def _pixels(latents: np.ndarray) -> np.ndarray:
    """Latents of the pixel-unshuffle codec -> (N, F, 3, 32, 32) pixels."""
    x = torch.from_numpy(latents)
    return torch.nn.functional.pixel_shuffle(x.flatten(0, 1), 4).unflatten(0, x.shape[:2]).numpy()


def test_white_noise_is_standard_normal_and_seeded():
    a = diffusion_noise(np.random.default_rng(3), SHAPE)
    assert a.dtype == np.float32 and a.shape == SHAPE
    assert abs(a.mean()) < 0.01 and abs(a.std() - 1) < 0.01
    np.testing.assert_array_equal(a, diffusion_noise(np.random.default_rng(3), SHAPE))
    assert np.abs(np.corrcoef(a[:, 0].ravel(), a[:, 1].ravel())[0, 1]) < 0.01  # frames independent


@pytest.mark.parametrize("lf", [0.5, 1.5, 3.0])
def test_smooth_part_has_the_requested_share_and_is_shared_by_frames(lf):
    x = diffusion_noise(np.random.default_rng(0), SHAPE, low_frequency=lf, grid=4, unshuffle=4)
    share = lf ** 2 / (1 + lf ** 2)  # variance of the smooth part
    assert abs(x.std() - 1) < 0.03  # unit variance per element, as DDIM's initial noise must be
    # two frames share exactly the smooth part: their correlation is its share of the variance
    assert abs(np.corrcoef(x[:, 0].ravel(), x[:, 1].ravel())[0, 1] - share) < 0.03
    # in pixel space neighbours share it too (folded as the codec folds pixels, not per latent channel)
    p = _pixels(x)
    assert abs(np.corrcoef(p[..., :-1].ravel(), p[..., 1:].ravel())[0, 1] - share) < 0.05
    # and pixels far apart (opposite corners of a 4x4 lattice) do not: 1,200 independent pairs, ~3 sigma
    far = _pixels(diffusion_noise(np.random.default_rng(1), (400, 1, 48, 8, 8), low_frequency=lf, grid=4,
                                  unshuffle=4))
    assert abs(np.corrcoef(far[..., 0, 0].ravel(), far[..., 31, 31].ravel())[0, 1]) < 0.09


def test_smooth_part_survives_averaging_over_a_region():
    """The point of it: a subject-sized region's mean colour stays noisy (white noise averages away)."""
    white = _pixels(diffusion_noise(np.random.default_rng(0), SHAPE))
    smooth = _pixels(diffusion_noise(np.random.default_rng(0), SHAPE, low_frequency=1.5, grid=4, unshuffle=4))
    region = (slice(None), slice(None), slice(None), slice(8, 20), slice(8, 20))
    white_mean = white[region].mean(axis=(1, 3, 4))  # per sample and RGB channel, over frames and pixels
    smooth_mean = smooth[region].mean(axis=(1, 3, 4))
    assert smooth_mean.std() > 10 * white_mean.std()


def test_upsampling_matches_torch_bilinear():
    from model.noise import _upsample_matrix

    lattice = np.random.default_rng(1).standard_normal((2, 3, 4, 4))
    ref = torch.nn.functional.interpolate(torch.from_numpy(lattice), size=(32, 24), mode="bilinear",
                                          align_corners=False).numpy()
    ours = np.einsum("hg,ncgk,wk->nchw", _upsample_matrix(32, 4), lattice, _upsample_matrix(24, 4))
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unshuffle"):
        diffusion_noise(np.random.default_rng(0), (1, 1, 10, 4, 4), low_frequency=1.0, unshuffle=4)
    with pytest.raises(ValueError, match="noise.grid"):
        model_config("tiny", noise={"low_frequency": 1.0, "grid": 64})


def test_pipeline_and_onnx_sampler_draw_the_same_noise():
    """One noise source: the PyTorch pipeline's initial noise is the ONNX sampler's for the same seed."""
    from components.export.sampler import OnnxSugarSampler
    from model.pipeline import SugarPipeline

    cfg = model_config("tiny")
    assert cfg.noise.low_frequency > 0  # tiny draws smooth noise
    pipe = SugarPipeline.from_config(cfg, seed=0)
    onnx = OnnxSugarSampler.__new__(OnnxSugarSampler)  # only its noise: no exported graphs needed
    onnx.config = {"latent_shape": [cfg.latent_frames, cfg.latent_channels, *cfg.latent_size],
                   "noise": cfg.noise_args}
    for seed in (0, 7, 2**40):
        np.testing.assert_array_equal(pipe.initial_noise(2, seed).numpy(), onnx.initial_noise(2, seed))
    assert not np.array_equal(pipe.initial_noise(1, 0).numpy(), pipe.initial_noise(1, 1).numpy())
