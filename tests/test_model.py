"""The SUGAR denoiser on tiny configs: shapes, design (a) invariance, design (e) = plain CogVideoX attention,
both positional schemes, and pipeline save/load."""

import numpy as np
import pytest
import torch

from model.conditioning import SugarConditioner, condition_dropout
from model.config import model_config
from model.pipeline import SugarPipeline
from model.transformer import SugarDenoiser, build_transformer


def _denoiser(design="b", rope=False, seed=0):
    cfg = model_config("tiny", attention_design=design, transformer={"use_rotary_positional_embeddings": rope})
    torch.manual_seed(seed)
    # tiny: 8x8 latents, patch 2 -> 16 tokens per frame, 8 frames; 17 DINO tokens, 1 CLIP, 24 text
    return SugarDenoiser(build_transformer(cfg), SugarConditioner(64, 64, 64, 17, 24), design).eval(), cfg


def _inputs(n=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    ones = torch.ones(n)
    return (torch.randn(n, 8, 48, 8, 8, generator=g), torch.tensor([10, 700][:n]), torch.randn(n, 17, 64, generator=g),
            torch.randn(n, 1, 64, generator=g), torch.randn(n, 24, 64, generator=g), ones, ones, ones)


@pytest.mark.parametrize("rope", [False, True])
@pytest.mark.parametrize("design", list("abcde"))
def test_output_shape_matches_latents(design, rope):
    d, _ = _denoiser(design, rope)
    x = _inputs()
    with torch.no_grad():
        assert d(*x).shape == x[0].shape


@pytest.mark.parametrize("rope", [False, True])
def test_design_a_output_is_invariant_to_the_image(rope):
    d, _ = _denoiser("a", rope)
    x = list(_inputs())
    with torch.no_grad():
        base = d(*x)
        x[2], x[3] = torch.randn_like(x[2]) * 5, torch.randn_like(x[3]) * 5
        assert torch.allclose(d(*x), base, atol=1e-5)


def test_design_b_output_depends_on_the_image():
    d, _ = _denoiser("b")
    x = list(_inputs())
    with torch.no_grad():
        base = d(*x)
        x[2] = torch.randn_like(x[2]) * 5
        assert (d(*x) - base).abs().max() > 1e-3


@pytest.mark.parametrize("rope", [False, True])
def test_design_e_equals_stock_cogvideox_attention(rope):
    """With no mask, the SUGAR processor must reproduce diffusers' CogVideoXAttnProcessor2_0 exactly."""
    from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0

    d, _ = _denoiser("e", rope)
    x = _inputs()
    with torch.no_grad():
        ours = d(*x)
        d.transformer.set_attn_processor(CogVideoXAttnProcessor2_0())
        assert torch.allclose(d(*x), ours, atol=1e-5)


def test_sincos_video_positions_do_not_shift_with_the_conditioning_length():
    """Stock CogVideoX puts max_text_seq_length zero rows before the video positions; our patch embed must
    give the video the same positions whatever the number of conditioning tokens."""
    d, _ = _denoiser("e")
    pe = d.transformer.patch_embed
    video = torch.randn(1, 8, 48, 8, 8)
    m = pe.max_text_seq_length
    stock = super(type(pe), pe).forward(torch.zeros(1, m, 64), video)[:, m:]
    for n in (5, m, m + 17):
        ours = pe(torch.zeros(1, n, 64), video)
        assert ours.shape[1] == n + stock.shape[1]
        assert torch.allclose(ours[:, n:], stock, atol=1e-6)


def test_condition_dropout_is_independent_with_the_configured_rates():
    g = torch.Generator().manual_seed(0)
    kd, kc, kt = condition_dropout(20000, 0.5, 0.2, 0.2, generator=g)
    # 4.5 sigma bounds for Bernoulli(p) means over 20000 draws
    for keep, p in ((kd, 0.5), (kc, 0.2), (kt, 0.2)):
        sigma = (p * (1 - p) / 20000) ** 0.5
        assert abs((1 - keep.mean().item()) - p) < 4.5 * sigma
    joint = ((kd == 0) & (kc == 0)).float().mean().item()
    assert abs(joint - 0.5 * 0.2) < 4.5 * (0.1 * 0.9 / 20000) ** 0.5  # independent, not jointly dropped


def test_conditioner_uses_its_null_when_dropped():
    c = SugarConditioner(4, 4, 4, num_dino_tokens=2, num_text_tokens=3)
    dino, clip, text = torch.randn(1, 2, 4), torch.randn(1, 1, 4), torch.randn(1, 3, 4)
    out = c(dino, clip, text, torch.zeros(1), torch.ones(1), torch.zeros(1))
    assert torch.equal(out[0, :2], c.null_dino)
    assert torch.allclose(out[0, 2:3], c.clip_proj(clip)[0])
    assert torch.equal(out[0, 3:], c.null_text)
    z = SugarConditioner(4, 4, 4, 2, 3, null_condition="zeros")
    assert torch.count_nonzero(z(dino, clip, text, torch.zeros(1), torch.zeros(1), torch.zeros(1))) == 0


def test_pipeline_generates_video_and_round_trips_through_save_pretrained(tmp_path):
    cfg = model_config("tiny", num_frames=4)
    pipe = SugarPipeline.from_config(cfg)
    img = np.zeros((32, 32, 3), np.uint8)
    video = pipe(img, ["a red cat walks left", "a box"], num_inference_steps=2)
    assert video.shape == (2, 4, 32, 32, 3) and video.dtype == np.uint8
    pipe.save_pretrained(tmp_path / "ck", metadata={"data_version": "abc.dir"})
    for sub in ("transformer", "conditioner", "vae", "text_encoder", "tokenizer", "image_encoders/dino",
                "image_encoders/clip", "scheduler"):
        assert (tmp_path / "ck" / sub).is_dir(), sub
    assert not list((tmp_path / "ck").rglob("*.bin")) and not list((tmp_path / "ck").rglob("*.pt"))
    again = SugarPipeline.from_pretrained(tmp_path / "ck")
    assert again.metadata["data_version"] == "abc.dir"
    assert np.array_equal(again(img, ["a red cat walks left", "a box"], num_inference_steps=2), video)


def test_pipeline_refuses_bad_images():
    pipe = SugarPipeline.from_config(model_config("tiny", num_frames=2))
    with pytest.raises(ValueError, match="NaN"):
        pipe(np.full((32, 32, 3), np.nan), "x", num_inference_steps=1)
    with pytest.raises(ValueError, match="RGB"):
        pipe(np.zeros((32, 32), np.uint8), "x", num_inference_steps=1)


def test_image_residual_starts_without_image_influence_and_can_grow():
    # image tokens = null + keep * projection(features), projections zero-initialised: at the start the
    # model sees the same (null) image tokens for every image, yet the projections get a gradient.
    torch.manual_seed(0)
    pipe = SugarPipeline.from_config(model_config("tiny", attention_design="e", num_frames=2,
                                                  conditioning={"image_residual": True}))
    den = pipe.denoiser
    n = 3
    images = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    dino, clip = pipe.encode_image(images)
    text = pipe.encode_prompt(["a cat walks left"] * n)
    latents, t = torch.randn(n, 2, 48, 8, 8), torch.full((n,), 500)
    one, zero = torch.ones(n), torch.zeros(n)
    out = den(latents, t, dino, clip, text, one, one, one)
    swapped = den(latents, t, dino.roll(1, 0), clip.roll(1, 0), text, one, one, one)
    dropped = den(latents, t, dino, clip, text, zero, zero, one)
    assert torch.equal(out, swapped) and torch.equal(out, dropped)
    out.pow(2).mean().backward()
    assert den.conditioner.dino_proj.weight.grad.abs().sum() > 0 and den.conditioner.clip_proj.weight.grad.abs().sum() > 0
    with torch.no_grad():  # once the projections move, the image matters
        den.conditioner.dino_proj.weight.normal_(std=0.1)
        assert not torch.equal(den(latents, t, dino, clip, text, one, one, one),
                               den(latents, t, dino.roll(1, 0), clip.roll(1, 0), text, one, one, one))


def test_image_input_norm_makes_tokens_independent_of_the_feature_scale():
    torch.manual_seed(0)
    cond = SugarConditioner(dino_dim=16, clip_dim=8, text_dim=32, num_dino_tokens=5, num_text_tokens=4,
                            image_input_norm=True)
    dino, clip, text = torch.randn(2, 5, 16), torch.randn(2, 1, 8), torch.randn(2, 4, 32)
    one = torch.ones(2)
    a = cond(dino, clip, text, one, one, one)
    b = cond(27 * dino + 3, 27 * clip - 5, text, one, one, one)  # CLIP's raw scale, a shared offset
    assert torch.allclose(a, b, atol=1e-4)
    plain = SugarConditioner(dino_dim=16, clip_dim=8, text_dim=32, num_dino_tokens=5, num_text_tokens=4)
    plain.load_state_dict({k: v for k, v in cond.state_dict().items() if "norm" not in k})
    assert not torch.allclose(plain(dino, clip, text, one, one, one), plain(27 * dino, 27 * clip, text, one, one, one))
