"""SUGAR's selective attention (paper Fig. 4): which token group may attend to which.

Sequence order is CogVideoX's [conditioning; video], with conditioning = [DINO; CLIP; text] and video
frame-major, so latent frame 0 is the first `tokens_per_frame` video tokens. Masks use the SDPA
convention (True = may attend) and are built from the actual group lengths, never from constants.

Designs (a)-(e) [RECON §1.2 for the exact masks; the text describes (a), (b), (e)]:
  (a) video never sees the image: image tokens are isolated from every other group;
  (b) only latent frame 0 attends to the image; image attends to itself, text and frame 0 (the paper's pick);
  (c) all frames attend to CLIP, only frame 0 to DINO;
  (d) all frames attend to the image, the image does not attend to video (one-way injection);
  (e) full attention (no mask).
In (a)-(d) text tokens do not attend to image tokens, so the image cannot leak into other frames
through the text stream [RECON; `text_sees_image=True` lifts this for (b)-(d), never for (a), whose
video must stay unconditioned]; every other group pair not listed is allowed.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

GROUPS = ("dino", "clip", "text", "frame0", "rest")
_IMAGE, _VIDEO = ("dino", "clip"), ("frame0", "rest")

# (query group, key group) pairs that are FORBIDDEN per design; anything else may attend.
_FORBIDDEN: dict[str, set[tuple[str, str]]] = {
    "a": {(q, k) for q in ("text", *_VIDEO) for k in _IMAGE} | {(q, k) for q in _IMAGE for k in _VIDEO},
    "b": {(q, k) for q in ("text", "rest") for k in _IMAGE} | {(q, "rest") for q in _IMAGE},
    "c": {("text", k) for k in _IMAGE} | {("rest", "dino")} | {(q, "rest") for q in _IMAGE},
    "d": {("text", k) for k in _IMAGE} | {(q, k) for q in _IMAGE for k in _VIDEO},
    "e": set(),
}


def allowed(design: str, query_group: str, key_group: str, text_sees_image: bool = False) -> bool:
    """Whether a `query_group` token may attend to a `key_group` token under `design`."""
    if design not in _FORBIDDEN:
        raise ValueError(f"attention design must be one of {sorted(_FORBIDDEN)}, got {design!r}")
    if text_sees_image and design != "a" and query_group == "text" and key_group in _IMAGE:
        return True
    return (query_group, key_group) not in _FORBIDDEN[design]


@lru_cache(maxsize=32)
def _mask(design: str, n_dino: int, n_clip: int, n_text: int, tokens_per_frame: int, n_frames: int,
          text_sees_image: bool, device: str):
    sizes = (n_dino, n_clip, n_text, tokens_per_frame, tokens_per_frame * (n_frames - 1))
    group_of = torch.repeat_interleave(torch.arange(len(GROUPS)), torch.tensor(sizes))
    table = torch.tensor([[allowed(design, q, k, text_sees_image) for k in GROUPS] for q in GROUPS])
    return table[group_of][:, group_of].to(device)  # cached per device: no host-to-device copy per step


def selective_attention_mask(design: str, n_dino: int, n_clip: int, n_text: int, tokens_per_frame: int,
                             n_frames: int, device: torch.device | str = "cpu", *,
                             text_sees_image: bool = False) -> torch.Tensor | None:
    """Bool mask (S, S), S = n_dino + n_clip + n_text + tokens_per_frame * n_frames; None for design (e).

    Cached per shape, so the sampling loop does not rebuild it every step.
    """
    if design == "e":
        allowed(design, "dino", "dino")  # validates the name
        return None
    return _mask(design, n_dino, n_clip, n_text, tokens_per_frame, n_frames, text_sees_image, str(torch.device(device)))


class SugarSelectiveAttnProcessor2_0:
    r"""
    Processor for SUGAR's selective attention on the CogVideoX model: the joint [conditioning; video]
    scaled dot-product attention of diffusers' `CogVideoXAttnProcessor2_0` (rotary embedding on the video
    tokens only, none on the conditioning tokens), with `attention_mask` a bool SDPA mask (True = may attend)
    of shape (S, S) or (B, 1, S, S), S = conditioning + video tokens, from `selective_attention_mask`.
    Without a mask it computes exactly what `CogVideoXAttnProcessor2_0` computes.

    The attention itself goes through diffusers' `dispatch_attention_fn`, so `set_attention_backend` on the
    model selects the kernel (a backend must support bool masks; the default, native SDPA, does).

    Inputs: hidden_states (B, Sv, D) video tokens, encoder_hidden_states (B, Sc, D) conditioning tokens.
    Returns: (video (B, Sv, D), conditioning (B, Sc, D)), the order CogVideoXBlock expects.
    """

    _attention_backend = None
    _parallel_config = None

    def __init__(self):
        if not hasattr(F, "scaled_dot_product_attention"):
            raise ImportError("SugarSelectiveAttnProcessor2_0 requires PyTorch 2.0 or later; please upgrade PyTorch.")

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
                 attention_mask: torch.Tensor | None = None, image_rotary_emb=None):
        from diffusers.models.attention_dispatch import dispatch_attention_fn

        cond_len = encoder_hidden_states.size(1)
        hidden_states = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        batch, seq, _ = hidden_states.shape

        query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query, key, value = (x.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for x in (query, key, value))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        if image_rotary_emb is not None:
            # RoPE on video tokens only: conditioning tokens (image and text) carry no position.
            from diffusers.models.embeddings import apply_rotary_emb

            query = torch.cat([query[:, :, :cond_len], apply_rotary_emb(query[:, :, cond_len:], image_rotary_emb)], 2)
            key = torch.cat([key[:, :, :cond_len], apply_rotary_emb(key[:, :, cond_len:], image_rotary_emb)], 2)
        if attention_mask is not None:
            if attention_mask.shape[-1] != seq:
                raise ValueError(f"attention mask covers {attention_mask.shape[-1]} tokens, the sequence has {seq}")
            if attention_mask.dim() == 2:
                # (S, S) -> (1, 1, S, S): a 2-D mask would read as a (batch, keys) padding mask to the dispatcher
                attention_mask = attention_mask[None, None]
        # The dispatcher takes (B, S, H, D); the native backend hands SDPA these same (B, H, S, D) views.
        out = dispatch_attention_fn(query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2),
                                    attn_mask=attention_mask, dropout_p=0.0, is_causal=False,
                                    backend=self._attention_backend, parallel_config=self._parallel_config)
        out = out.reshape(batch, -1, attn.heads * head_dim)
        out = attn.to_out[1](attn.to_out[0](out))
        encoder_out, video_out = out.split([cond_len, seq - cond_len], dim=1)
        return video_out, encoder_out


# The name before it followed diffusers' processor naming; kept for code that imports it.
SelectiveAttnProcessor = SugarSelectiveAttnProcessor2_0
