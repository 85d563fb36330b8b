"""The SUGAR denoiser (`SugarTransformer3DModel`) and `SugarPipeline` on tiny configs: shapes, design (a)
invariance, design (e) = plain CogVideoX attention, both positional schemes; as diffusers tests its models:
save/load and config round trips, seeded determinism, return_dict, gradient checkpointing; the pipeline's
output types, generators and save/load."""

import json

import numpy as np
import pytest
import torch
from diffusers import CogVideoXTransformer3DModel
from diffusers.models.modeling_outputs import Transformer2DModelOutput

from model.conditioning import SugarConditioner, condition_dropout
from model.config import ModelConfig, model_config
from model.pipeline import SugarPipeline, SugarPipelineOutput
from model.transformer import AnyLengthConditionPatchEmbed, SugarTransformer3DModel, tiny_transformer_kwargs

# SUGAR's kwargs for the tiny encoders: 32x32 DINO input, patch 8 -> 16 patches + CLS = 17 tokens; CLIP
# projection 64; T5 length 24 (text_encoder.max_length).
SUGAR = dict(dino_dim=64, clip_dim=64, num_dino_tokens=17, num_text_tokens=24)


def _denoiser(design="b", rope=False, seed=0, **sugar):
    cfg = model_config("tiny", attention_design=design, transformer={"use_rotary_positional_embeddings": rope})
    torch.manual_seed(seed)
    # tiny: 8x8 latents, patch 2 -> 16 tokens per frame, 8 frames; 17 DINO tokens, 1 CLIP, 24 text
    model = SugarTransformer3DModel(**tiny_transformer_kwargs(cfg), attention_design=design, **{**SUGAR, **sugar})
    return model.eval(), cfg


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
        d.set_attn_processor(CogVideoXAttnProcessor2_0())
        assert torch.allclose(d(*x), ours, atol=1e-5)


def test_sincos_video_positions_do_not_shift_with_the_conditioning_length():
    """Stock CogVideoX puts max_text_seq_length zero rows before the video positions; our patch embed must
    give the video the same positions whatever the number of conditioning tokens."""
    d, _ = _denoiser("e")
    pe = d.patch_embed
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
    video = pipe(img, ["a red cat walks left", "a box"], num_inference_steps=2).frames
    assert video.shape == (2, 4, 32, 32, 3) and video.dtype == np.uint8
    pipe.save_pretrained(tmp_path / "ck", metadata={"data_version": "abc.dir"})
    for sub in ("transformer", "vae", "text_encoder", "tokenizer", "image_encoder_dino", "image_encoder_clip",
                "scheduler"):
        assert (tmp_path / "ck" / sub).is_dir(), sub
    assert not (tmp_path / "ck" / "conditioner").exists()  # SUGAR's projections live in transformer/
    assert not list((tmp_path / "ck").rglob("*.bin")) and not list((tmp_path / "ck").rglob("*.pt"))
    index = json.loads((tmp_path / "ck" / "model_index.json").read_text())
    assert index["_class_name"] == "SugarPipeline"
    assert index["transformer"] == ["model.transformer", "SugarTransformer3DModel"]
    assert index["vae"] == ["model.codec", "PixelUnshuffleCodec"]
    assert index["image_encoder_dino"] == ["transformers", "Dinov2Model"]
    assert index["scheduler"] == ["diffusers", "CogVideoXDDIMScheduler"]
    meta = json.loads((tmp_path / "ck" / "vidcustom.json").read_text())
    assert meta["model_config"]["attention_design"] == "b" and meta["data_version"] == "abc.dir"
    assert "attention_design" not in meta  # one record of what was trained: the model config
    again = SugarPipeline.from_pretrained(tmp_path / "ck")
    assert again.metadata["data_version"] == "abc.dir"
    assert isinstance(again.config, ModelConfig) and again.config.model_dump() == cfg.model_dump()
    assert not again.transformer.training and not again.text_encoder.training
    assert np.array_equal(again(img, ["a red cat walks left", "a box"], num_inference_steps=2).frames, video)
    for a, b in zip(pipe.denoiser.state_dict().items(), again.denoiser.state_dict().items()):
        assert a[0] == b[0] and torch.equal(a[1], b[1]), a[0]


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


# ---- SugarTransformer3DModel as diffusers tests a model --------------------------------------------------------


def test_transformer_save_load_round_trip_is_bit_exact_and_keeps_the_config(tmp_path):
    d, _ = _denoiser("c", rope=True, text_sees_image=True, null_condition="learned", image_input_norm=True)
    x = _inputs()
    d.save_pretrained(tmp_path / "transformer")
    assert sorted(p.name for p in (tmp_path / "transformer").iterdir()) == ["config.json",
                                                                           "diffusion_pytorch_model.safetensors"]
    config = json.loads((tmp_path / "transformer" / "config.json").read_text())
    assert config["_class_name"] == "SugarTransformer3DModel"
    # SUGAR's design, token counts and projection widths are configuration, beside CogVideoX's own.
    assert {k: config[k] for k in ("attention_design", "text_sees_image", "dino_dim", "clip_dim", "num_dino_tokens",
                                   "num_text_tokens", "null_condition", "image_residual", "image_input_norm")} == {
        "attention_design": "c", "text_sees_image": True, "dino_dim": 64, "clip_dim": 64, "num_dino_tokens": 17,
        "num_text_tokens": 24, "null_condition": "learned", "image_residual": False, "image_input_norm": True}
    assert config["num_layers"] == 4 and config["use_rotary_positional_embeddings"] is True
    again = SugarTransformer3DModel.from_pretrained(tmp_path / "transformer", use_safetensors=True)
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    assert public(again.config) == public(d.config)
    with torch.no_grad():
        assert torch.equal(again(*x), d(*x))
    assert type(again.patch_embed) is AnyLengthConditionPatchEmbed


def test_same_seed_same_weights_whether_built_whole_or_on_a_stock_model():
    """The stock weights are drawn first, then the conditioner's, as SugarPipeline.from_config has always drawn
    them: a seeded SugarTransformer3DModel, from_cogvideox on a seeded stock model, and the stock model itself
    agree weight for weight."""
    kwargs = tiny_transformer_kwargs(model_config("tiny"))
    torch.manual_seed(3)
    whole = SugarTransformer3DModel(**kwargs, **SUGAR)
    torch.manual_seed(3)
    stock = CogVideoXTransformer3DModel(**kwargs)
    reference = {k: v.clone() for k, v in stock.state_dict().items()}
    on_stock = SugarTransformer3DModel.from_cogvideox(stock, **SUGAR)
    a, b = whole.state_dict(), on_stock.state_dict()
    assert list(a) == list(b) == list(reference) + [k for k in a if k.startswith("conditioner.")]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(a[k], reference[k]) for k in reference)


def test_stock_model_under_sugar_is_published_unchanged():
    d, _ = _denoiser()
    base = d.to_cogvideox()
    assert type(base) is CogVideoXTransformer3DModel and type(base.patch_embed).__name__ == "CogVideoXPatchEmbed"
    sugar = d.state_dict()
    assert base.state_dict().keys() == {k for k in sugar if not k.startswith("conditioner.")}
    assert all(torch.equal(v, sugar[k]) for k, v in base.state_dict().items())
    assert {k for k, v in base.config.items() if not k.startswith("_")} <= set(d.config)


def test_return_dict_wraps_the_same_prediction():
    d, _ = _denoiser()
    x = _inputs()
    with torch.no_grad():
        out = d(*x, return_dict=True)
        assert isinstance(out, Transformer2DModelOutput) and torch.equal(out.sample, d(*x))


def test_attention_design_is_configuration_validated_and_switchable():
    with pytest.raises(ValueError, match="attention design"):
        SugarTransformer3DModel(**tiny_transformer_kwargs(model_config("tiny")), attention_design="z", **SUGAR)
    d, _ = _denoiser("a")
    x = list(_inputs())
    with torch.no_grad():
        base = d(*x)
        x[2] = torch.randn_like(x[2]) * 5
        assert torch.allclose(d(*x), base, atol=1e-5)  # (a): the image cannot reach the video
        d.set_attention_design("b")
        assert d.config.attention_design == "b" and (d(*x) - base).abs().max() > 1e-3
    with pytest.raises(ValueError, match="attention design"):
        d.set_attention_design("z")


def test_state_dicts_of_the_sugar_denoiser_before_this_class_still_load():
    """The denoiser used to wrap the stock model as `transformer.`; training-resume weights it wrote load."""
    d, _ = _denoiser()
    old = {("transformer." + k if not k.startswith("conditioner.") else k): v + 1 for k, v in d.state_dict().items()}
    fresh, _ = _denoiser(seed=1)
    fresh.load_state_dict(old)
    assert all(torch.equal(v, d.state_dict()[k] + 1) for k, v in fresh.state_dict().items())


def test_gradient_checkpointing_gives_the_same_output_and_gradients():
    d, _ = _denoiser(rope=True)
    d.train()
    x = _inputs()
    d(*x).pow(2).mean().backward()
    grads = {n: p.grad.clone() for n, p in d.named_parameters() if p.grad is not None}
    d.zero_grad(set_to_none=True)
    d.enable_gradient_checkpointing()
    d(*x).pow(2).mean().backward()
    assert grads.keys() == {n for n, p in d.named_parameters() if p.grad is not None}
    for n, p in d.named_parameters():
        if n in grads:
            torch.testing.assert_close(p.grad, grads[n], atol=1e-5, rtol=1e-4)


# ---- SugarPipeline's diffusers call conventions ------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_pipe():
    return SugarPipeline.from_config(model_config("tiny", num_frames=2), seed=0).eval()


IMG = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def test_output_types_and_return_dict(short_pipe):
    run = lambda **kw: short_pipe(IMG, ["a red cat", "a box"], num_inference_steps=2, seed=5, **kw)  # noqa: E731
    out = run()
    assert isinstance(out, SugarPipelineOutput) and out.frames.shape == (2, 2, 32, 32, 3)
    assert out.frames.dtype == np.uint8
    (frames,) = run(return_dict=False)
    assert np.array_equal(frames, out.frames)
    latents = run(output_type="latent").frames
    assert latents.shape == (2, 2, 48, 8, 8)  # 2 frames, 3 * 4**2 channels, 32 / 4 = 8
    assert np.array_equal(short_pipe.decode(latents), out.frames)
    pt = run(output_type="pt").frames
    assert isinstance(pt, torch.Tensor) and pt.shape == (2, 2, 3, 32, 32) and 0 <= pt.min() and pt.max() <= 1
    assert np.abs(pt.permute(0, 1, 3, 4, 2).numpy() * 255 - out.frames).max() <= 0.5 + 1e-3
    with pytest.raises(ValueError, match="output_type"):
        run(output_type="pil")


def test_generator_seed_and_latents_choose_the_initial_noise(short_pipe):
    run = lambda **kw: short_pipe(IMG, ["a red cat", "a box"], num_inference_steps=1, **kw).frames  # noqa: E731
    by_seed = run(seed=7)
    assert np.array_equal(run(generator=7), by_seed)  # an int generator is a seed
    assert np.array_equal(run(generator=np.random.default_rng(7)), by_seed)  # as the ONNX sampler draws it
    assert np.array_equal(run(latents=short_pipe.initial_noise(2, 7)), by_seed)
    g = torch.Generator().manual_seed(1)
    first = run(generator=g)
    assert not np.array_equal(run(generator=g), first)  # the generator advances
    assert np.array_equal(run(generator=torch.Generator().manual_seed(1)), first)  # same state, same video
    # one generator per sample: each sample is what it would be alone
    both = run(generator=[3, 4])
    for i, s in enumerate((3, 4)):
        alone = short_pipe(IMG, ["a red cat", "a box"][i], num_inference_steps=1, seed=s).frames
        assert np.array_equal(both[i], alone[0])
    with pytest.raises(ValueError, match="generators"):
        run(generator=[1])


def test_pipeline_components_follow_diffusers(short_pipe):
    assert sorted(short_pipe.components) == ["image_encoder_clip", "image_encoder_dino", "scheduler", "text_encoder",
                                             "tokenizer", "transformer", "vae"]
    assert short_pipe.denoiser is short_pipe.transformer
    assert len(short_pipe.denoiser.transformer_blocks) == 4
    assert short_pipe.to("cpu") is short_pipe and short_pipe.device == torch.device("cpu")
    # the frozen encoders are frozen, the denoiser trains
    assert not any(p.requires_grad for p in short_pipe.text_encoder.parameters())
    assert not any(p.requires_grad for p in short_pipe.image_encoder_clip.parameters())
    assert all(p.requires_grad for p in short_pipe.denoiser.parameters() if p.dtype.is_floating_point)


def _bundled_base_settings() -> dict:
    from model.transformer import BUNDLED

    record = json.loads((BUNDLED / "tiny-t2v" / "provenance.json").read_text())
    return {**record["model_settings"], "transformer_path": "bundled:tiny-t2v"}


@pytest.mark.parametrize("base, first, last", [
    (False, [-0.90606, 0.47806, -0.88742, 0.22834, -1.06469, 0.3661],
     [-0.07749, -0.32813, 0.51027, 0.02167, 0.06527, -0.12291]),
    (True, [-1.00038, -0.5848, -0.56082, -0.564, 0.42743, -0.16717],
     [0.93001, 1.03478, 0.90125, 1.01121, 0.91719, 0.94113]),
])
def test_seeded_denoiser_output_is_pinned(base, first, last):
    """Expected slices (diffusers' convention), recorded with the denoiser before it became a diffusers model:
    same seed, same weights, same prediction; with random and with bundled stock weights."""
    cfg = model_config("tiny", **(_bundled_base_settings() if base else {}))
    den = SugarPipeline.from_config(cfg, seed=0).denoiser.eval()
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(2, 8, 48, 8, 8, generator=g), torch.tensor([10, 700]), torch.randn(2, 17, 64, generator=g),
         torch.randn(2, 1, 64, generator=g) * 5, torch.randn(2, cfg.text_encoder.max_length, 64, generator=g),
         torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0]))
    with torch.no_grad():
        out = den(*x)
    torch.testing.assert_close(out[0, 0, 0, 0, :6], torch.tensor(first), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[1, -1, -1, -1, -6:], torch.tensor(last), atol=1e-4, rtol=0)
