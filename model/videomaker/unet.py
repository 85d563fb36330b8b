"""VideoMaker's use of AnimateDiff's `UNetMotionModel`: the reference as an extra last frame (METHOD_NOTES §2.1),
what is trained (§2.5), and a tiny random UNet for tests.

Layout, read from diffusers' code (0.42), not its docstring: `UNetMotionModel.forward` takes `sample` as
(batch, channel, frames, h, w) (it reads `num_frames = sample.shape[2]` and permutes (0, 2, 1, 3, 4)), repeats
the time embedding over frames, and returns (batch, channel, frames, h, w). The forward docstring's
"(batch, num_frames, channel, height, width)" is wrong. Text states are NOT repeated over frames in this version
(diffusers 0.30, which VideoMaker used, did it inside forward; newer AnimateDiff pipelines do it before the
call), so `predict_with_reference` does it.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import install_pisa, pisa_processors, set_pisa_frames


def tiny_unet(seed: int = 0, sample_size: int = 8, cross_attention_dim: int = 32):
    """A tiny random AnimateDiff UNet (SD1.5's layout shrunk) with PISA installed; equal seeds give equal
    weights, and the global random stream is left as it was.

    Shapes: latents (B, 4, F, h, w) with h, w multiples of 2 (one downsampling: 8 -> 4); text states
    (B, L, cross_attention_dim); up to 32 frames including the reference (the motion modules' position table).
    """
    from diffusers import UNetMotionModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNetMotionModel(
            sample_size=sample_size, in_channels=4, out_channels=4,
            down_block_types=("CrossAttnDownBlockMotion", "DownBlockMotion"),
            up_block_types=("UpBlockMotion", "CrossAttnUpBlockMotion"),
            block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8,  # 8 groups divide 32 and 64
            cross_attention_dim=cross_attention_dim, num_attention_heads=2,  # head dim 16 at 32 channels
            motion_max_seq_length=32, motion_num_attention_heads=2, use_motion_mid_block=True)
    install_pisa(unet)
    return unet


def predict_with_reference(unet, latents: torch.Tensor, reference: torch.Tensor, timestep,
                           encoder_hidden_states: torch.Tensor, **kw) -> torch.Tensor:
    """The UNet's prediction for F video frames plus the reference appended as frame F (METHOD_NOTES §2.1).

    latents (B, C, F, h, w) noisy video latents; reference (B, C, 1, h, w) reference latent (noised by GIRL in
    training, clean at inference, zeros for the unconditional branch, §2.4, §2.7); timestep a scalar or (B,):
    one per video, shared by all F+1 frames, the reference included (it is not given t=0, §2.1, §2.9);
    encoder_hidden_states (B, L, D) text states, repeated here to every frame so the reference also goes
    through cross-attention (§2.3), or already repeated, (B·(F+1), L, D). `kw` goes to the UNet's forward.
    Returns (B, C, F+1, h, w); [:, :, :F] is the video's prediction, [:, :, F] the reference's.

    The PISA frame count is F+1 for the call and restored afterwards, except under gradient checkpointing
    with grad enabled, where it stays F+1 so that backward's recomputation pairs frames the same way.
    """
    if latents.ndim != 5 or reference.ndim != 5 or reference.shape[2] != 1:
        raise ValueError(f"expected latents (B, C, F, h, w) and reference (B, C, 1, h, w), got "
                         f"{tuple(latents.shape)} and {tuple(reference.shape)}")
    batch, frames = latents.shape[0], latents.shape[2] + 1
    sample = torch.cat([latents, reference.to(latents.dtype)], dim=2)  # last temporal position (§2.1)
    if encoder_hidden_states.shape[0] == batch:
        encoder_hidden_states = encoder_hidden_states.repeat_interleave(frames, dim=0)
    elif encoder_hidden_states.shape[0] != batch * frames:
        raise ValueError(f"encoder_hidden_states batch {encoder_hidden_states.shape[0]} is neither B={batch} "
                         f"nor B·(F+1)={batch * frames}")
    previous = {name: p.num_frames for name, p in pisa_processors(unet).items()}
    set_pisa_frames(unet, frames)
    # Gradient checkpointing reruns the attention in backward, after this call: it must still see F+1 frames.
    keep = torch.is_grad_enabled() and unet.is_gradient_checkpointing
    try:
        return unet(sample, timestep, encoder_hidden_states, return_dict=False, **kw)[0]
    finally:
        if not keep:
            for name, p in pisa_processors(unet).items():
                p.num_frames = previous.get(name)


def _is_motion(name: str) -> bool:
    return "motion_modules" in name.split(".")


def videomaker_trainable(unet, update_motion: bool = True) -> list[nn.Parameter]:
    """Freeze the UNet, then unfreeze the spatial self-attention (`attn1` to_q/to_k/to_v/to_out) outside the
    motion modules and, with `update_motion` (the paper's final setting), every motion module (METHOD_NOTES
    §2.5: ResBlocks, cross-attention and the rest stay frozen; no new parameters). Returns the trainable
    parameters in `unet.parameters()` order."""
    unet.requires_grad_(False)
    for name, module in unet.named_modules():
        if name.split(".")[-1] == "attn1" and not _is_motion(name):
            for part in (module.to_q, module.to_k, module.to_v, module.to_out):
                part.requires_grad_(True)
        elif update_motion and name.split(".")[-1] == "motion_modules":
            module.requires_grad_(True)
    return [p for p in unet.parameters() if p.requires_grad]
