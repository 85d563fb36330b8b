"""SUGAR's conditioning stream: DINO tokens, a CLIP token and T5 tokens, each through its own projection,
with a null value per condition and independent condition dropout (METHOD_NOTES §1.1, §1.3).

The output lives in the T5 width so CogVideoX's own `patch_embed.text_proj` and text-expert norms take
all conditioning tokens [RECON §1.1]. A branch's condition is kept or replaced by its null through a
per-sample `keep` factor, so training dropout, the guidance branches and the early DINO drop all use
the one null the model was trained with.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class SugarConditioner(ModelMixin, ConfigMixin):
    """Projects (dino (N, Ld, Dd), clip (N, 1, Dc), text (N, Lt, Dt)) to (N, Ld + 1 + Lt, Dt).

    Args:
        dino_dim, clip_dim: encoder widths. text_dim: T5 width (= the transformer's text_embed_dim).
        num_dino_tokens, num_text_tokens: fixed lengths (DINO patches + CLS; padded T5 length).
        null_condition: "learned" (trained null embeddings, the default) or "zeros" [RECON §1.3].
        image_residual: image tokens are `null + keep * projection(features)` with the projections
            zero-initialised and the image nulls at unit scale, so a pretrained text-to-video transformer
            starts out seeing one constant set of image tokens (the nulls) and the image pathway grows from
            zero, as ControlNet's zero convolutions and IP-Adapter do [RECON]. False: tokens are
            `projection(features)`, swapped for the null when dropped, projections randomly initialised:
            random image-dependent tokens that a pretrained transformer first learns to ignore.
        image_input_norm: LayerNorm on the DINO and CLIP features before their projections [RECON]. Encoder
            outputs arrive at very different scales (CLIP image embeddings: std ~27 per dimension in the tiny
            tower, DINO tokens ~1); unnormalised, a large input makes every optimiser step move the image
            tokens far more than the rest of the model moves, so the pathway cannot settle.
    """

    @register_to_config
    def __init__(self, dino_dim: int, clip_dim: int, text_dim: int, num_dino_tokens: int, num_text_tokens: int,
                 null_condition: str = "learned", image_residual: bool = False, image_input_norm: bool = False):
        super().__init__()
        if null_condition not in ("learned", "zeros"):
            raise ValueError(f"null_condition must be 'learned' or 'zeros', got {null_condition!r}")
        self.dino_proj = nn.Linear(dino_dim, text_dim)
        self.clip_proj = nn.Linear(clip_dim, text_dim)
        self.dino_norm = nn.LayerNorm(dino_dim) if image_input_norm else nn.Identity()
        self.clip_norm = nn.LayerNorm(clip_dim) if image_input_norm else nn.Identity()
        learned = null_condition == "learned"
        # Nulls live after the projections (in the text width); text's null replaces the T5 states.
        self.null_dino = nn.Parameter(torch.zeros(num_dino_tokens, text_dim), requires_grad=learned)
        self.null_clip = nn.Parameter(torch.zeros(1, text_dim), requires_grad=learned)
        self.null_text = nn.Parameter(torch.zeros(num_text_tokens, text_dim), requires_grad=learned)
        if learned:
            for p in (self.null_dino, self.null_clip, self.null_text):
                nn.init.normal_(p, std=0.02)
        if image_residual:
            if not learned:
                raise ValueError("image_residual needs learned nulls (null_condition='learned'): the image tokens "
                                 "grow from the nulls")
            # Unit scale: the blocks' LayerNorms see null + a small projection, a smooth start, not a tiny
            # vector that normalisation would blow up to full size.
            for p in (self.null_dino, self.null_clip):
                nn.init.normal_(p, std=1.0)
            for proj in (self.dino_proj, self.clip_proj):
                nn.init.zeros_(proj.weight)
                nn.init.zeros_(proj.bias)

    @property
    def group_lengths(self) -> tuple[int, int, int]:
        return self.config.num_dino_tokens, 1, self.config.num_text_tokens

    def forward(self, dino: torch.Tensor, clip: torch.Tensor, text: torch.Tensor, keep_dino: torch.Tensor,
                keep_clip: torch.Tensor, keep_text: torch.Tensor) -> torch.Tensor:
        """keep_*: (N,) in {0, 1}; 0 swaps that sample's condition for its null."""
        ld, _, lt = self.group_lengths
        if dino.shape[1] != ld or text.shape[1] != lt or clip.shape[1] != 1:
            raise ValueError(f"conditioning lengths dino={dino.shape[1]}, clip={clip.shape[1]}, text={text.shape[1]}"
                             f" do not match the conditioner's ({ld}, 1, {lt})")
        parts = []
        residual = self.config.image_residual
        for x, null, keep, grows in ((self.dino_proj(self.dino_norm(dino)), self.null_dino, keep_dino, residual),
                                     (self.clip_proj(self.clip_norm(clip)), self.null_clip, keep_clip, residual),
                                     (text, self.null_text, keep_text, False)):
            k = keep.to(x.device, x.dtype).view(-1, 1, 1)
            null = null.to(x.device, x.dtype).unsqueeze(0)
            parts.append(null + k * x if grows else k * x + (1 - k) * null)
        return torch.cat(parts, dim=1)


def condition_dropout(n: int, p_dino: float, p_clip: float, p_text: float,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """Independent per-sample keep masks (1 = keep) for DINO, CLIP and text (paper: 0.5 / 0.2 / 0.2)."""
    u = torch.rand(3, n, generator=generator)
    probs = torch.tensor([p_dino, p_clip, p_text]).view(3, 1)
    keep = (u >= probs).float()
    return keep[0], keep[1], keep[2]
