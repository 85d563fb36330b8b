"""VideoMaker's Personalized Injection Self-Attention (PISA), METHOD_NOTES §2.2.

The reference latent rides along as the last frame of every video (§2.1), so a spatial self-attention layer
sees (B·(F+1), N, C). PISA replaces the layer's per-frame attention with, for each generated frame i, full
attention over the 2N tokens [G_i ; r] using the layer's own to_q/to_k/to_v/to_out (no new parameters, §2.5):
generated frames never see each other (the motion modules do that), and the reference output is the mean of
its F copies, one per frame it met. It is installed on every spatial `attn1` outside the motion modules;
cross-attention (`attn2`) and temporal attention keep diffusers' processors (§2.2, §2.3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import AttnProcessor2_0


class PISAttnProcessor2_0:
    r"""
    Processor for VideoMaker's Personalized Injection Self-Attention on a spatial self-attention layer of
    AnimateDiff's `UNetMotionModel` (METHOD_NOTES §2.2).

    `num_frames` is the number of frames per video **including** the reference, which is the last one; it is
    set from outside before the forward (`set_pisa_frames`, or `predict_with_reference` for one call). With
    `num_frames` None or 1 the processor computes exactly what `AttnProcessor2_0` computes, so a UNet with
    PISA installed still runs plain AnimateDiff.

    Inputs: hidden_states (B·(F+1), N, C) or (B·(F+1), C, h, w), frame-major per video as the UNet lays them out.
    Returns: the same shape; generated frame i's tokens from attention over [G_i ; r], the reference's tokens
    the mean over i of its outputs, both through to_out (and residual/rescale as in `AttnProcessor2_0`).
    """

    def __init__(self, num_frames: int | None = None):
        if not hasattr(F, "scaled_dot_product_attention"):
            raise ImportError("PISAttnProcessor2_0 requires PyTorch 2.0 or later; please upgrade PyTorch.")
        self.num_frames = num_frames
        self._plain = AttnProcessor2_0()

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 *args, **kwargs) -> torch.Tensor:
        frames = self.num_frames
        if frames is None or frames == 1:
            return self._plain(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        if encoder_hidden_states is not None or attention_mask is not None:
            # [G_i ; r] is a self-attention over 2N tokens: a key sequence or mask from outside has no place in it.
            raise ValueError("PISA is a spatial self-attention: it takes no encoder_hidden_states or attention_mask")

        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_frames, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_frames, channel, height * width).transpose(1, 2)
        batch_frames, tokens, _ = hidden_states.shape
        if batch_frames % frames:
            raise ValueError(f"PISA expects {frames} frames per video, got a batch of {batch_frames} frames")
        batch, generated = batch_frames // frames, frames - 1
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        # Projections are per token, so projecting each frame once and then pairing equals projecting each
        # [G_i ; r] (the reference is not projected F times).
        query, key, value = (self._pair_with_reference(proj(hidden_states), batch, frames)
                             for proj in (attn.to_q, attn.to_k, attn.to_v))
        inner_dim = key.shape[-1]
        head_dim = inner_dim // attn.heads
        query, key, value = (x.view(batch * generated, -1, attn.heads, head_dim).transpose(1, 2)
                             for x in (query, key, value))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        out = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(batch, generated, 2 * tokens, inner_dim).to(query.dtype)
        # G'_i = first N outputs of pair i; r' = mean over the F pairs of the last N (§2.2, §2.9: mean, not one copy).
        frames_out = out[:, :, :tokens]
        reference_out = out[:, :, tokens:].mean(dim=1, keepdim=True)
        hidden_states = torch.cat([frames_out, reference_out], dim=1).reshape(batch_frames, tokens, inner_dim)

        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_frames, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor

    @staticmethod
    def _pair_with_reference(x: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
        """(B·(F+1), N, D) -> (B·F, 2N, D): each generated frame's tokens followed by its video's reference."""
        x = x.view(batch, frames, *x.shape[1:])
        generated, reference = x[:, :-1], x[:, -1:]
        paired = torch.cat([generated, reference.expand_as(generated)], dim=2)
        return paired.reshape(batch * (frames - 1), -1, x.shape[-1])


def _is_spatial_self_attention(processor_name: str) -> bool:
    # Names as `unet.attn_processors` gives them ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor");
    # motion modules also have an attn1 (temporal self-attention), which PISA must leave alone.
    parts = processor_name.split(".")
    return parts[-2:] == ["attn1", "processor"] and "motion_modules" not in parts


def install_pisa(unet) -> int:
    """Put a `PISAttnProcessor2_0` on every spatial `attn1` outside the motion modules (METHOD_NOTES §2.2);
    every other attention keeps its processor. Returns how many were installed."""
    processors = dict(unet.attn_processors)
    names = [name for name in processors if _is_spatial_self_attention(name)]
    processors.update({name: PISAttnProcessor2_0() for name in names})  # one per layer, as diffusers' dict form
    unet.set_attn_processor(processors)
    return len(names)


def pisa_processors(unet) -> dict[str, PISAttnProcessor2_0]:
    """The installed PISA processors by processor name."""
    return {name: p for name, p in unet.attn_processors.items() if isinstance(p, PISAttnProcessor2_0)}


def set_pisa_frames(unet, num_frames: int | None) -> None:
    """Tell every PISA processor how many frames (reference included) each video has; None turns PISA off
    (plain per-frame self-attention)."""
    if num_frames is not None and num_frames < 1:
        raise ValueError(f"num_frames must be at least 1 (the reference counts), got {num_frames}")
    for processor in pisa_processors(unet).values():
        processor.num_frames = num_frames
