"""VideoMaker as a vidcustom method (METHOD_NOTES §2) on tiny random modules: the config (`method`, the
`videomaker` section, the animatediff-sd15 preset), `VideoMakerPipeline` (shapes, seeds, the zero-reference
unconditional branch with F+1 frames, CFG against a hand-written loop, save/load) and `VideoMakerMethod` (GIRL
batch and loss, what trains, resume exactness).

Tiny shapes: 32x32 frames, 8 of them; the tiny VAE (3 blocks) gives 8x8 latents with 4 channels; the tiny UNet
downsamples once (8 -> 4) and sees 9 frames (8 + the reference); CLIP text states (N, 32, 32)."""

import copy

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

import model.videomaker.pipeline as vm_pipeline
from model.config import ModelConfig, model_config
from model.methods import VideoMakerMethod, get_method
from model.pipeline import SugarPipelineOutput
from model.videomaker.attention import PISAttnProcessor2_0
from model.videomaker.girl import girl_loss, noisy_reference
from model.videomaker.pipeline import VideoMakerPipeline
from model.videomaker.unet import predict_with_reference

STEPS = 2
PROMPT = "a red cat walks left"


def _image(seed=0, size=32):
    return (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def cfg():
    return model_config("tiny", method="videomaker")


@pytest.fixture(scope="module")
def pipe(cfg):
    return VideoMakerPipeline.from_config(cfg, seed=0)


# ---- config ---------------------------------------------------------------------------------------


def test_method_defaults_to_sugar_and_videomaker_is_valid_on_tiny(cfg):
    assert model_config("tiny").method == "sugar"
    assert cfg.method == "videomaker" and cfg.videomaker.girl_alpha == 0.01 and cfg.videomaker.girl_beta == 0.1
    # the latent shape follows the method: (F, 4, 32/4, 32/4), white noise
    assert (cfg.latent_frames, cfg.latent_channels, cfg.latent_size) == (8, 4, (8, 8))
    assert cfg.noise_args["low_frequency"] == 0.0
    s = cfg.videomaker.scheduler
    assert (s.beta_schedule, s.timestep_spacing, s.steps_offset, s.clip_sample, s.prediction_type) == (
        "linear", "linspace", 1, False, "epsilon")


@pytest.mark.parametrize("override, message", [
    ("model.method=nosuch", r"model\.method: Input should be 'sugar' or 'videomaker'"),
    ("model.videomaker.girl_alpha=2", r"model\.videomaker\.girl_alpha"),
    ("model.videomaker.reference_drop=-0.1", r"model\.videomaker\.reference_drop"),
    ("model.videomaker.nosuch=1", r"model\.videomaker\.nosuch: Extra inputs"),
    ("model.videomaker.scheduler.prediction_type=sample", r"model\.videomaker\.scheduler\.prediction_type"),
    ("model.videomaker.text_num_heads=5", r"text_hidden_size=32 must be a multiple of text_num_heads=5"),
    ("model.height=36", r"height=36 and width=32 must be multiples of 8 with method=videomaker"),
    ("model.num_frames=32", r"num_frames=32 is too many for method=videomaker"),
])
def test_bad_values_are_refused_naming_the_field(override, message):
    from components.config import load_config

    assert load_config(overrides=["model.method=videomaker"]).model.method == "videomaker"
    with pytest.raises(ValueError, match=message):
        load_config(overrides=["model.method=videomaker", override])


def test_animatediff_preset_points_at_local_folders():
    c = model_config("animatediff-sd15")
    vm = c.videomaker
    assert (c.method, c.height, c.width, c.num_frames, vm.max_length) == ("videomaker", 512, 512, 16, 77)
    paths = [vm.unet_path, vm.motion_adapter_path, vm.vae_path, vm.text_encoder_path, vm.tokenizer_path]
    assert all(p and not p.startswith(("http", "hf://", "s3://")) for p in paths)
    assert c.latent_size == (64, 64)  # SD's 8x VAE (§2.1: latents (B, 4, 16, 64, 64))


def test_a_missing_pretrained_folder_is_named(tmp_path, cfg):
    bad = cfg.model_copy(update={"videomaker": cfg.videomaker.model_copy(update={"vae_path": str(tmp_path / "no")})})
    with pytest.raises(FileNotFoundError, match="model.videomaker.vae_path=.*is not a folder"):
        VideoMakerPipeline.from_config(bad)
    uri = cfg.model_copy(update={"videomaker": cfg.videomaker.model_copy(update={"vae_path": "s3://b/vae"})})
    with pytest.raises(ValueError, match="model.videomaker.vae_path=s3://b/vae is a URI"):
        VideoMakerPipeline.from_config(uri)


# ---- pipeline -------------------------------------------------------------------------------------


def test_call_gives_uint8_videos_of_the_model_size(pipe):
    c = pipe.config
    out = pipe(_image(), PROMPT, num_inference_steps=STEPS)
    assert isinstance(out, SugarPipelineOutput)
    assert out.frames.shape == (1, c.num_frames, c.height, c.width, 3) and out.frames.dtype == np.uint8
    two = pipe(_image(), [PROMPT, "a blue dog runs"], num_inference_steps=STEPS, output_type="pt").frames
    assert two.shape == (2, c.num_frames, 3, c.height, c.width) and 0 <= two.min() and two.max() <= 1
    latent = pipe(_image(), PROMPT, num_inference_steps=STEPS, output_type="latent", return_dict=False)[0]
    assert latent.shape == (1, c.latent_frames, c.latent_channels, *c.latent_size)  # SugarPipeline's layout


def test_config_view_serves_code_written_for_sugar(pipe):
    c = pipe.config
    assert (c.height, c.width, c.num_frames, c.fps) == (32, 32, 8, 8)
    assert (c.sampler.num_inference_steps, c.sampler.text_scale, c.sampler.negative_prompt) == (
        30, 8.0, c.videomaker.negative_prompt)
    assert c["unet"] == ("diffusers", "UNetMotionModel")  # the model index, for DiffusionPipeline's own methods


def test_a_seed_fixes_the_video_and_other_seeds_differ(pipe):
    a = pipe(_image(), PROMPT, num_inference_steps=STEPS, seed=3).frames
    assert np.array_equal(a, pipe(_image(), PROMPT, num_inference_steps=STEPS, seed=3).frames)
    assert not np.array_equal(a, pipe(_image(), PROMPT, num_inference_steps=STEPS, seed=4).frames)
    g = pipe(_image(), PROMPT, num_inference_steps=STEPS, generator=torch.Generator().manual_seed(3)).frames
    assert np.array_equal(g, pipe(_image(), PROMPT, num_inference_steps=STEPS,
                                  generator=torch.Generator().manual_seed(3)).frames)


def test_the_image_changes_the_video(pipe):
    kw = dict(num_inference_steps=STEPS, output_type="latent")
    with_image = pipe(_image(0), PROMPT, **kw).frames
    assert not torch.allclose(with_image, pipe(_image(0), PROMPT, use_image=False, **kw).frames)
    assert not torch.allclose(with_image, pipe(_image(1), PROMPT, **kw).frames)


def test_an_identity_image_of_another_size_is_refused(pipe):
    with pytest.raises(ValueError, match="identity image is 40x40; this model takes 32x32"):
        pipe(_image(size=40), PROMPT, num_inference_steps=1)
    with pytest.raises(ValueError, match="uint8"):
        pipe(_image().astype(np.float32), PROMPT, num_inference_steps=1)


def _by_hand(pipe, image, scale, use_image=True, steps=STEPS, seed=0):
    """The sampler written out (§2.7): each branch in its own UNet call, F+1 frames each, the unconditional one
    with the negative prompt and the zero reference; DDIM over the first F frames."""
    reference = pipe.encode_reference(image)
    if not use_image:
        reference = torch.zeros_like(reference)
    text = pipe.encode_prompt([PROMPT])
    negative = pipe.encode_prompt([pipe.config.videomaker.negative_prompt])
    x = pipe.prepare_latents(1, seed).permute(0, 2, 1, 3, 4)
    frames = x.shape[2]
    sched = DDIMScheduler.from_config(pipe.scheduler.config)
    sched.set_timesteps(steps)
    with torch.no_grad():
        for t in sched.timesteps:
            eps = predict_with_reference(pipe.unet, x, reference, t, text)[:, :, :frames]
            if scale != 1:
                uncond = predict_with_reference(pipe.unet, x, torch.zeros_like(reference), t, negative)[:, :, :frames]
                eps = uncond + scale * (eps - uncond)
            x = sched.step(eps, t, x).prev_sample
    return x.permute(0, 2, 1, 3, 4)


@pytest.mark.parametrize("scale, use_image", [(1.0, True), (8.0, True), (3.0, False)])
def test_guidance_is_the_single_scale_formula_with_a_zero_reference(pipe, scale, use_image):
    got = pipe(_image(), PROMPT, num_inference_steps=STEPS, guidance_scale=scale, use_image=use_image,
               output_type="latent").frames
    # Batched and separate UNet calls differ by float rounding (~1e-6), which the scale amplifies; swapping or
    # dropping a branch would move the latents by ~scale * 0.05.
    torch.testing.assert_close(got, _by_hand(pipe, _image(), scale, use_image), rtol=0, atol=1e-4 * scale)


def test_text_scale_stands_in_for_guidance_scale(pipe):
    kw = dict(num_inference_steps=STEPS, output_type="latent")
    torch.testing.assert_close(pipe(_image(), PROMPT, text_scale=3.0, image_scale=0.0, **kw).frames,
                               pipe(_image(), PROMPT, guidance_scale=3.0, **kw).frames, rtol=0, atol=0)


def test_the_unconditional_branch_keeps_f_plus_1_frames_with_a_zero_reference(pipe, monkeypatch):
    calls = []

    def spy(unet, latents, reference, timestep, text, **kw):
        out = predict_with_reference(unet, latents, reference, timestep, text, **kw)
        calls.append((latents.shape, reference.clone(), text.clone(), out.shape))
        return out

    monkeypatch.setattr(vm_pipeline, "predict_with_reference", spy)
    c = pipe.config
    pipe(_image(), PROMPT, num_inference_steps=STEPS, guidance_scale=8.0)
    assert len(calls) == STEPS
    latents_shape, reference, text, out_shape = calls[0]
    h, w = c.latent_size
    assert latents_shape == (2, 4, c.num_frames, h, w) and out_shape == (2, 4, c.num_frames + 1, h, w)
    assert reference.shape == (2, 4, 1, h, w)
    assert torch.all(reference[0] == 0) and torch.equal(reference[1], pipe.encode_reference(_image())[0])
    torch.testing.assert_close(text[0], pipe.encode_prompt([c.videomaker.negative_prompt])[0])
    torch.testing.assert_close(text[1], pipe.encode_prompt([PROMPT])[0])

    calls.clear()  # at scale 1 the formula is the conditional branch: one branch runs
    pipe(_image(), PROMPT, num_inference_steps=STEPS, guidance_scale=1.0)
    assert [call[0][0] for call in calls] == [1] * STEPS


def test_save_and_load_give_the_same_videos(pipe, tmp_path):
    kw = dict(num_inference_steps=STEPS, seed=7)
    pipe.save_pretrained(tmp_path / "ckpt", metadata={"training_stage": "stage1"})
    assert (tmp_path / "ckpt" / "model_index.json").is_file() and (tmp_path / "ckpt" / "unet").is_dir()
    loaded = VideoMakerPipeline.from_pretrained(tmp_path / "ckpt")
    assert loaded.config.model_dump() == pipe.config.model_dump() and loaded.metadata["training_stage"] == "stage1"
    assert any(isinstance(p, PISAttnProcessor2_0) for p in loaded.unet.attn_processors.values())
    assert np.array_equal(loaded(_image(), PROMPT, **kw).frames, pipe(_image(), PROMPT, **kw).frames)


def test_a_sugar_config_or_checkpoint_is_refused():
    with pytest.raises(ValueError, match="method='sugar'"):
        VideoMakerPipeline.from_config(model_config("tiny"))


# ---- training method ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(cfg):
    """A fresh method and pipeline (training mutates the UNet; the pipeline tests' one stays untouched)."""
    method = get_method(cfg)
    return method, method.build(seed=0)


def _features(method, pipe, n=2):
    c = pipe.config
    g = torch.Generator().manual_seed(5)
    videos = torch.rand(n, c.num_frames, 3, c.height, c.width, generator=g) * 2 - 1
    images = (torch.rand(n, c.height, c.width, 3, generator=g) * 255).to(torch.uint8).numpy()
    torch.manual_seed(0)  # the VAE samples from the global stream, as the worker seeds it
    with torch.no_grad():
        return method.encode(pipe, videos, images, [PROMPT] * n)


def test_encode_gives_latents_reference_and_text(trained):
    method, pipe = trained
    assert isinstance(method, VideoMakerMethod)
    f = _features(method, pipe)
    c = pipe.config
    h, w = c.latent_size
    assert f["latents"].shape == (2, 4, c.num_frames, h, w) and f["reference"].shape == (2, 4, 1, h, w)
    assert f["text"].shape == (2, c.videomaker.max_length, c.videomaker.text_hidden_size)
    assert all(torch.equal(f[k], _features(method, pipe)[k]) for k in f)  # same global seed, same samples


def test_batch_and_loss_are_girl_with_the_documented_draws(trained):
    method, pipe = trained
    f = _features(method, pipe)
    gen, rng = torch.Generator().manual_seed(1), np.random.default_rng(2)
    global_state = torch.get_rng_state()
    batch = method.prepare_batch(pipe, f, gen, rng)
    assert torch.equal(torch.get_rng_state(), global_state)  # only the worker's generators are drawn from

    # By hand: video then reference noise from NumPy (SugarPipeline's (N, F, C, h, w) order), then t and drops.
    vm, sched, x0, ref = pipe.config.videomaker, pipe.scheduler, f["latents"], f["reference"]
    rng = np.random.default_rng(2)
    noise = torch.from_numpy(rng.standard_normal((2, 8, 4, 8, 8), dtype=np.float32)).permute(0, 2, 1, 3, 4)
    ref_noise = torch.from_numpy(rng.standard_normal((2, 1, 4, 8, 8), dtype=np.float32)).permute(0, 2, 1, 3, 4)
    gen = torch.Generator().manual_seed(1)
    t = torch.randint(0, 1000, (2,), generator=gen)
    keep = (torch.rand(2, generator=gen) >= vm.reference_drop).float().view(2, 1, 1, 1, 1)
    assert torch.equal(batch.inputs["timestep"], t) and torch.equal(batch.target, noise)
    assert torch.equal(batch.inputs["latents"], sched.add_noise(x0, noise, t))
    assert torch.equal(batch.extra["reference_noise"], ref_noise * keep)
    assert torch.equal(batch.inputs["reference"], noisy_reference(sched, ref * keep, ref_noise * keep, t, 0.01))

    loss = method.compute_loss(pipe.unet, batch)
    with torch.no_grad():
        prediction = predict_with_reference(pipe.unet, batch.inputs["latents"], batch.inputs["reference"], t, f["text"])
    assert prediction.shape[2] == 9  # F + the reference
    torch.testing.assert_close(loss.detach(), girl_loss(prediction, noise, ref_noise * keep, 0.1), rtol=0, atol=0)


def test_a_dropped_reference_is_the_zero_latent_with_zero_noise(cfg):
    data = cfg.model_dump()
    data["videomaker"]["reference_drop"] = 1.0
    method = get_method(ModelConfig.model_validate(data))
    pipe = method.build(seed=0)
    batch = method.prepare_batch(pipe, _features(method, pipe), torch.Generator().manual_seed(1),
                                 np.random.default_rng(2))
    assert torch.all(batch.inputs["reference"] == 0) and torch.all(batch.extra["reference_noise"] == 0)


def _is_pisa_or_motion(name: str) -> bool:
    parts = name.split(".")
    return "motion_modules" in parts or ("attn1" in parts and parts[parts.index("attn1") + 1] in (
        "to_q", "to_k", "to_v", "to_out"))


@pytest.mark.parametrize("update_motion", [True, False])
def test_only_spatial_self_attention_and_motion_modules_train(cfg, update_motion):
    data = cfg.model_dump()
    data["videomaker"]["update_motion"] = update_motion
    method = get_method(ModelConfig.model_validate(data))
    pipe = method.build(seed=0)
    params = method.set_trainable(pipe, 0)
    names = [n for n, p in pipe.unet.named_parameters() if p.requires_grad]
    assert len(params) == len(names) > 0 and all(_is_pisa_or_motion(n) for n in names)
    assert any("attn1" in n and "motion_modules" not in n for n in names)
    assert any("motion_modules" in n for n in names) == update_motion
    assert not any(".attn2." in n or ".resnets." in n for n in names if "motion_modules" not in n)

    blocks = method.blocks(pipe)
    assert blocks[0] is pipe.unet.down_blocks[0] and blocks[-1] is pipe.unet.up_blocks[-1]
    method.set_trainable(pipe, 2)  # a stage plan's frozen blocks, intersected with the above
    assert not any(p.requires_grad for b in blocks[:2] for p in b.parameters())
    assert any(p.requires_grad for b in blocks[2:] for p in b.parameters())


def test_loss_falls_on_a_fixed_batch(trained):
    method, pipe = trained
    batch = method.prepare_batch(pipe, _features(method, pipe), torch.Generator().manual_seed(1),
                                 np.random.default_rng(2))
    params = method.set_trainable(pipe, 0)
    opt = torch.optim.Adam(params, lr=1e-3)
    losses = []
    for _ in range(20):
        loss = method.compute_loss(method.trainable(pipe), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_equal_generator_states_give_equal_batches(trained):
    """Resume exactness: the worker restores its two generators; the batch must follow from them alone."""
    method, pipe = trained
    f = _features(method, pipe)
    gen, rng = torch.Generator().manual_seed(11), np.random.default_rng(12)
    method.prepare_batch(pipe, f, gen, rng)  # advance both, as a run does before its checkpoint
    saved_gen, saved_rng = gen.get_state(), copy.deepcopy(rng.bit_generator.state)
    first = method.prepare_batch(pipe, f, gen, rng)
    gen2, rng2 = torch.Generator(), np.random.default_rng()
    gen2.set_state(saved_gen)
    rng2.bit_generator.state = saved_rng
    torch.manual_seed(123)  # a different global stream changes nothing
    second = method.prepare_batch(pipe, f, gen2, rng2)
    for a, b in [*zip(first.inputs.values(), second.inputs.values()), (first.target, second.target),
                 (first.extra["reference_noise"], second.extra["reference_noise"])]:
        assert torch.equal(a, b)
