"""VideoMaker's model core (METHOD_NOTES §2): PISA, the reference as the last frame, GIRL, what is trained.

Tiny random modules throughout, as diffusers tests models: one Attention layer for PISA's visibility, the tiny
AnimateDiff UNet (`tiny_unet`) for the rest.
"""

import pytest
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNetMotionModel
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from model.videomaker import (PISAttnProcessor2_0, girl_loss, girl_terms, install_pisa, noisy_reference,
                              predict_with_reference, reference_timesteps, set_pisa_frames, tiny_unet,
                              videomaker_trainable)

# One attention layer: B=2 videos of F=3 generated frames + 1 reference, N=5 tokens, C=8 channels, 2 heads of 4.
B, FR, N, C = 2, 3, 5, 8


def _layer(seed=0):
    torch.manual_seed(seed)
    attn = Attention(query_dim=C, heads=2, dim_head=4)
    attn.set_processor(PISAttnProcessor2_0(num_frames=FR + 1))
    return attn.eval()


def _hidden(seed=1):
    return torch.randn(B * (FR + 1), N, C, generator=torch.Generator().manual_seed(seed))


def _frames(x):  # (B·(F+1), N, C) -> (B, F+1, N, C)
    return x.view(B, FR + 1, N, -1)


@torch.no_grad()
def test_pisa_visibility_by_perturbation():
    """Generated frames never see each other; the reference sees (and averages over) every frame (§2.2)."""
    attn, h = _layer(), _hidden()
    base = _frames(attn(h))
    j = 1
    moved = _frames(h).clone()
    moved[:, j] += torch.randn_like(moved[:, j])
    out = _frames(attn(moved.view_as(h)))
    others = [i for i in range(FR) if i != j]
    assert torch.equal(out[:, others], base[:, others])
    assert not torch.allclose(out[:, j], base[:, j])
    assert not torch.allclose(out[:, FR], base[:, FR])  # the reference's output averages over frame j too

    moved = _frames(h).clone()
    moved[:, FR] += torch.randn_like(moved[:, FR])
    out = _frames(attn(moved.view_as(h)))
    for i in range(FR + 1):
        assert not torch.allclose(out[:, i], base[:, i]), i


@torch.no_grad()
def test_pisa_matches_a_hand_computation_with_reference_averaging():
    attn, h = _layer(), _hidden()
    got = _frames(attn(h))
    x = _frames(h)
    for b in range(B):
        reference_outs = []
        for i in range(FR):
            tokens = torch.cat([x[b, i], x[b, FR]])  # [G_i ; r], 2N tokens
            q, k, v = (proj(tokens).view(2 * N, 2, 4).transpose(0, 1) for proj in (attn.to_q, attn.to_k, attn.to_v))
            o = attn.to_out[0](F.scaled_dot_product_attention(q, k, v).transpose(0, 1).reshape(2 * N, 8))
            torch.testing.assert_close(got[b, i], o[:N], atol=1e-5, rtol=0)
            reference_outs.append(o[N:])
        torch.testing.assert_close(got[b, FR], torch.stack(reference_outs).mean(0), atol=1e-5, rtol=0)


@torch.no_grad()
@pytest.mark.parametrize("frames", [None, 1])
def test_pisa_without_frames_is_attnprocessor2_0(frames):
    attn, h = _layer(), _hidden()
    attn.processor.num_frames = frames
    ours = attn(h)
    attn.set_processor(AttnProcessor2_0())
    assert torch.equal(ours, attn(h))


@torch.no_grad()
def test_pisa_takes_spatial_input_and_refuses_a_mask():
    attn, h = _layer(), _hidden()
    spatial = h.transpose(1, 2).reshape(B * (FR + 1), C, 1, N)  # (B·(F+1), C, h=1, w=N)
    torch.testing.assert_close(attn(spatial).reshape(B * (FR + 1), C, N).transpose(1, 2), attn(h))
    with pytest.raises(ValueError, match="frames per video"):
        attn(h[:-1])
    with pytest.raises(ValueError, match="self-attention"):
        attn(h, attention_mask=torch.ones(B * (FR + 1), 1, N))


@pytest.fixture(scope="module")
def unet():
    return tiny_unet(seed=0)


def test_install_pisa_only_on_spatial_self_attention(unet):
    stock = UNetMotionModel.from_config(unet.config)
    before = dict(stock.attn_processors)
    count = install_pisa(stock)
    # tiny layout: down_blocks.0 (1 transformer) + mid (1) + up_blocks.1 (layers_per_block + 1 = 2) = 4
    assert count == 4
    after = stock.attn_processors
    for name, processor in after.items():
        spatial_self = name.endswith("attn1.processor") and "motion_modules" not in name
        assert isinstance(processor, PISAttnProcessor2_0) == spatial_self, name
        if not spatial_self:
            assert processor is before[name], name  # attn2 and motion-module attention keep theirs
    assert sum(isinstance(p, PISAttnProcessor2_0) for p in unet.attn_processors.values()) == count


def test_tiny_unet_is_deterministic_per_seed():
    a, b, c = tiny_unet(seed=3), tiny_unet(seed=3), tiny_unet(seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def _inputs(batch=2, frames=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 4, frames, 8, 8, generator=g), torch.randn(batch, 4, 1, 8, 8, generator=g),
            torch.randn(batch, 6, 32, generator=g))


@torch.no_grad()
def test_predict_with_reference_appends_the_reference_last_with_one_timestep(unet):
    latents, reference, text = _inputs()
    frames = latents.shape[2] + 1
    seen = {}

    def record(key, value):  # a pre-hook must return None
        seen.setdefault(key, value)

    hooks = [unet.conv_in.register_forward_pre_hook(lambda m, args: record("conv_in", args[0])),
             unet.down_blocks[0].resnets[0].register_forward_pre_hook(
                 lambda m, args, kwargs: record("temb", kwargs["temb"]), with_kwargs=True)]
    try:
        out = predict_with_reference(unet, latents, reference, torch.tensor([10, 700]), text)
    finally:
        for hook in hooks:
            hook.remove()
    assert out.shape == (2, 4, frames, 8, 8)
    # conv_in sees (B·(F+1), C, h, w) frame-major: the reference is frame index F of each video (§2.1)
    x = seen["conv_in"].view(2, frames, 4, 8, 8)
    assert torch.equal(x[:, -1], reference[:, :, 0]) and torch.equal(x[:, :-1], latents.transpose(1, 2))
    # the time embedding is one per video, the same for all F+1 frames, the reference included
    temb = seen["temb"].view(2, frames, -1)
    assert torch.equal(temb, temb[:, :1].expand_as(temb)) and not torch.equal(temb[0, 0], temb[1, 0])
    assert all(p.num_frames is None for p in unet.attn_processors.values() if isinstance(p, PISAttnProcessor2_0))

    # the reference reaches every frame's prediction through PISA
    moved = predict_with_reference(unet, latents, reference + 1.0, torch.tensor([10, 700]), text)
    for i in range(frames - 1):
        assert not torch.allclose(moved[:, :, i], out[:, :, i]), i
    # text given already repeated per frame gives the same result
    again = predict_with_reference(unet, latents, reference, torch.tensor([10, 700]),
                                   text.repeat_interleave(frames, dim=0))
    torch.testing.assert_close(again, out)
    # prepending the reference (§2.9's error) is a different model input and output
    set_pisa_frames(unet, frames)
    try:
        first = unet(torch.cat([reference, latents], 2), torch.tensor([10, 700]),
                     text.repeat_interleave(frames, 0)).sample
    finally:
        set_pisa_frames(unet, None)
    assert not torch.allclose(first[:, :, 1:], out[:, :, :-1])


def test_predict_with_reference_restores_frames_and_checks_shapes(unet):
    latents, reference, text = _inputs(batch=1)
    set_pisa_frames(unet, 7)
    try:
        with torch.no_grad():
            predict_with_reference(unet, latents, reference, 5, text)
        assert {p.num_frames for p in unet.attn_processors.values() if isinstance(p, PISAttnProcessor2_0)} == {7}
    finally:
        set_pisa_frames(unet, None)
    with pytest.raises(ValueError, match="reference"):
        predict_with_reference(unet, latents, reference[:, :, 0], 5, text)
    with pytest.raises(ValueError, match="encoder_hidden_states"):
        predict_with_reference(unet, latents, reference, 5, text.repeat(2, 1, 1))


def test_reference_timesteps_floor():
    t = torch.tensor([1000, 999, 50, 0, 100, 301])
    assert reference_timesteps(t).tolist() == [10, 9, 0, 0, 1, 3]
    assert reference_timesteps(t).dtype == torch.long
    all_t = torch.arange(1000)
    assert torch.equal(reference_timesteps(all_t), all_t // 100)
    assert reference_timesteps(torch.tensor([500]), alpha=0.1).tolist() == [50]


def test_girl_terms_and_weighting_by_hand():
    # B=1, C=1, F=2, 1x2 latents
    prediction = torch.tensor([[[[[1.0, 2.0]], [[3.0, 4.0]], [[5.0, 7.0]]]]])  # (1, 1, 3, 1, 2)
    noise = torch.tensor([[[[[1.0, 0.0]], [[3.0, 6.0]]]]])  # (1, 1, 2, 1, 2): errors 0, 2, 0, -2
    reference_noise = torch.tensor([[[[[4.0, 4.0]]]]])  # (1, 1, 1, 1, 2): errors 1, 3
    video, reg = girl_terms(prediction, noise, reference_noise)
    assert video.item() == pytest.approx((0 + 4 + 0 + 4) / 4)
    assert reg.item() == pytest.approx((1 + 9) / 2)
    assert girl_loss(prediction, noise, reference_noise).item() == pytest.approx(2.0 + 0.1 * 5.0)
    assert girl_loss(prediction, noise, reference_noise, beta=1.0).item() == pytest.approx(7.0)
    with pytest.raises(ValueError, match="F\\+1"):
        girl_terms(prediction[:, :, :2], noise, reference_noise)


def test_noisy_reference_is_ddpm_add_noise_at_the_small_timestep():
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    reference, eps = torch.randn(2, 4, 1, 8, 8), torch.randn(2, 4, 1, 8, 8)
    t = torch.tensor([999, 450])
    got = noisy_reference(scheduler, reference, eps, t)
    torch.testing.assert_close(got, scheduler.add_noise(reference, eps, torch.tensor([9, 4])))
    assert (got - reference).abs().mean() < (eps - reference).abs().mean() / 5  # t' ≤ 9 of 1000: little noise


def _trainable_name(name, update_motion):
    parts = name.split(".")
    if "motion_modules" in parts:
        return update_motion
    return "attn1" in parts and parts[parts.index("attn1") + 1] in ("to_q", "to_k", "to_v", "to_out")


@pytest.mark.parametrize("update_motion", [True, False])
def test_videomaker_trainable_is_exactly_attn1_and_motion_modules(update_motion):
    unet = tiny_unet(seed=0)
    params = videomaker_trainable(unet, update_motion=update_motion)
    names = {n for n, p in unet.named_parameters() if p.requires_grad}
    assert names == {n for n, _ in unet.named_parameters() if _trainable_name(n, update_motion)}
    assert {id(p) for p in params} == {id(p) for n, p in unet.named_parameters() if n in names}
    assert any(".attn1.to_out.0." in n for n in names) and not any(".attn2." in n and "motion" not in n for n in names)
    assert any("motion_modules" in n for n in names) == update_motion


def test_training_step_reaches_only_trainable_parameters_and_loss_falls():
    unet = tiny_unet(seed=0)
    params = videomaker_trainable(unet)
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    latents, reference, text = _inputs(batch=1, frames=2, seed=1)
    g = torch.Generator().manual_seed(2)
    noise, reference_noise = torch.randn(latents.shape, generator=g), torch.randn(reference.shape, generator=g)
    t = torch.tensor([600])
    noisy = scheduler.add_noise(latents, noise, t)
    noisy_ref = noisy_reference(scheduler, reference, reference_noise, t)

    def loss():
        return girl_loss(predict_with_reference(unet, noisy, noisy_ref, t, text), noise, reference_noise)

    optimizer = torch.optim.Adam(params, lr=1e-3)
    first = loss()
    first.backward()
    trainable = {id(p) for p in params}
    for name, p in unet.named_parameters():
        assert (p.grad is not None) == (id(p) in trainable), name
    losses = [first.item()]
    for _ in range(20):
        optimizer.step()
        optimizer.zero_grad()
        value = loss()
        value.backward()
        losses.append(value.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_gradient_checkpointing_gives_the_same_gradients():
    """Checkpointing reruns PISA in backward, after predict_with_reference returned; it must see F+1 frames."""
    latents, reference, text = _inputs(batch=1, frames=2, seed=3)

    def gradients(checkpointing):
        unet = tiny_unet(seed=0)
        params = videomaker_trainable(unet)
        if checkpointing:
            unet.enable_gradient_checkpointing()
        predict_with_reference(unet, latents, reference, torch.tensor([500]), text).square().mean().backward()
        return torch.cat([p.grad.flatten() for p in params])

    torch.testing.assert_close(gradients(True), gradients(False))
