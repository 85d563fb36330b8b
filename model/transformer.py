"""The SUGAR denoiser: diffusers' CogVideoXTransformer3DModel, unchanged, plus what SUGAR adds.

What is added (and nothing else; pretrained weights stay as they are):
  * the conditioning stream of `SugarConditioner` (DINO + CLIP + T5 tokens) in place of T5 alone;
  * the selective-attention processor on every block (`attention.py`);
  * with sincos positions (2B-style), a patch embedding that gives every conditioning token zero position
    whatever the conditioning length; with 3D RoPE (5B-style), RoPE on video tokens only.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import CogVideoXTransformer3DModel
from diffusers.models.embeddings import CogVideoXPatchEmbed, get_3d_rotary_pos_embed
from torch import nn

from .attention import SelectiveAttnProcessor, selective_attention_mask
from .conditioning import SugarConditioner
from .config import ModelConfig


class AnyLengthConditionPatchEmbed(CogVideoXPatchEmbed):
    """CogVideoX's patch embedding for a conditioning sequence of any length.

    The stock sincos table has `max_text_seq_length` zero rows for text followed by video positions, so a
    longer [image; text] sequence would shift the video positions. Video tokens are embedded with the stock
    code on a zero-padded text slot; conditioning tokens get `text_proj` and zero position, as text always had.
    """

    def forward(self, text_embeds: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        n, m = text_embeds.shape[1], self.max_text_seq_length
        if n == m or not (self.use_positional_embeddings or self.use_learned_positional_embeddings):
            return super().forward(text_embeds, image_embeds)
        slot = text_embeds.new_zeros(text_embeds.shape[0], m, text_embeds.shape[2])
        video = super().forward(slot, image_embeds)[:, m:]
        return torch.cat([self.text_proj(text_embeds), video], dim=1)


def tiny_transformer_kwargs(cfg: ModelConfig) -> dict:
    t = cfg.transformer
    h, w = cfg.latent_size
    return dict(
        num_attention_heads=t.num_attention_heads, attention_head_dim=t.attention_head_dim,
        in_channels=cfg.latent_channels, out_channels=cfg.latent_channels, time_embed_dim=t.time_embed_dim,
        text_embed_dim=t.text_embed_dim, num_layers=t.num_layers, sample_width=w, sample_height=h,
        sample_frames=(cfg.latent_frames - 1) * t.temporal_compression_ratio + 1, patch_size=t.patch_size,
        temporal_compression_ratio=t.temporal_compression_ratio, max_text_seq_length=t.max_text_seq_length,
        use_rotary_positional_embeddings=t.use_rotary_positional_embeddings)


# Pretrained-config fields the rest of the model relies on, and the ModelConfig value each must equal.
_MUST_MATCH = {
    "in_channels": lambda c: c.latent_channels, "out_channels": lambda c: c.latent_channels,
    "patch_size": lambda c: c.transformer.patch_size, "text_embed_dim": lambda c: c.transformer.text_embed_dim,
    "temporal_compression_ratio": lambda c: c.transformer.temporal_compression_ratio,
    "use_rotary_positional_embeddings": lambda c: c.transformer.use_rotary_positional_embeddings,
}


def check_pretrained(transformer: CogVideoXTransformer3DModel, cfg: ModelConfig) -> None:
    """Refuse a pretrained transformer whose architecture disagrees with the model config, naming the field."""
    bad = [f"{k}: pretrained {transformer.config[k]!r}, config {want(cfg)!r}" for k, want in _MUST_MATCH.items()
           if transformer.config[k] != want(cfg)]
    if bad:
        raise ValueError(f"the transformer at {cfg.transformer_path} does not fit this model config ("
                         + "; ".join(bad) + "); choose the matching preset, set model.transformer.* / model.codec.*, or set "
                         "model.transformer_path=null to start from a random initialisation")


BUNDLED = Path(__file__).resolve().parent / "bundled"
BUNDLED_PREFIX = "bundled:"
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"


def resolve_transformer_path(path: str) -> Path:
    """`bundled:NAME` -> model/bundled/NAME/transformer (a base shipped with the code); anything else as is."""
    if not path.startswith(BUNDLED_PREFIX):
        return Path(path)
    name = path.removeprefix(BUNDLED_PREFIX)
    folder = BUNDLED / name / "transformer"
    if not folder.is_dir():
        known = sorted(p.name for p in BUNDLED.iterdir() if (p / "transformer").is_dir()) if BUNDLED.is_dir() else []
        raise FileNotFoundError(f"model.transformer_path={path}: no bundled base {name!r} (shipped: {known}); "
                                "use one of those, a local diffusers folder, or null for a random initialisation")
    return folder


def file_sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_weights(folder: Path, expected: str | None) -> None:
    """Refuse weights whose sha256 differs from the pinned one (a corrupted or swapped file)."""
    if not expected:
        return
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing; model.transformer_sha256 pins a single safetensors file")
    got = file_sha256(weights)
    if got != expected:
        raise ValueError(f"{weights}: sha256 {got} does not match model.transformer_sha256={expected}; the file is "
                         "corrupted or not the pinned base (restore it from git, or change the pin on purpose)")


def build_transformer(cfg: ModelConfig) -> CogVideoXTransformer3DModel:
    """Pretrained from `cfg.transformer_path` (a local diffusers folder or `bundled:NAME`), its weights checked
    against `cfg.transformer_sha256` when pinned; else randomly initialised from the preset."""
    if cfg.transformer_path:
        folder = resolve_transformer_path(cfg.transformer_path)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"model.transformer_path={cfg.transformer_path} is not a diffusers model folder "
                                    "(no config.json); point it at the `transformer/` folder of a CogVideoX checkpoint")
        check_weights(folder, cfg.transformer_sha256)
        transformer = CogVideoXTransformer3DModel.from_pretrained(folder, use_safetensors=True)
        check_pretrained(transformer, cfg)
        return transformer
    return CogVideoXTransformer3DModel(**tiny_transformer_kwargs(cfg))


def add_sugar(transformer: CogVideoXTransformer3DModel) -> CogVideoXTransformer3DModel:
    """Install SUGAR's processor and patch embedding in place; no weight is touched."""
    transformer.set_attn_processor(SelectiveAttnProcessor())
    if type(transformer.patch_embed) is CogVideoXPatchEmbed:
        # Same module, same parameters and state-dict keys; only the forward changes.
        transformer.patch_embed.__class__ = AnyLengthConditionPatchEmbed
    return transformer


class SugarDenoiser(nn.Module):
    """v-prediction on latents given the three conditions and their keep flags.

    forward(latents (N, F, C, h, w), timestep (N,), dino (N, Ld, Dd), clip (N, 1, Dc), text (N, Lt, Dt),
            keep_dino / keep_clip / keep_text (N,)) -> (N, F, C, h, w)
    """

    def __init__(self, transformer: CogVideoXTransformer3DModel, conditioner: SugarConditioner, design: str,
                 text_sees_image: bool = False):
        super().__init__()
        self.transformer = add_sugar(transformer)
        self.conditioner = conditioner
        self.design, self.text_sees_image = design, text_sees_image
        self._rope_cache: dict = {}

    def _rope(self, frames: int, h: int, w: int, device) -> tuple[torch.Tensor, torch.Tensor] | None:
        c = self.transformer.config
        if not c.use_rotary_positional_embeddings:
            return None
        key = (frames, h, w, str(device))
        if key not in self._rope_cache:
            from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

            gh, gw = h // c.patch_size, w // c.patch_size
            crops = get_resize_crop_region_for_grid((gh, gw), c.sample_width // c.patch_size,
                                                    c.sample_height // c.patch_size)
            self._rope_cache[key] = get_3d_rotary_pos_embed(c.attention_head_dim, crops, (gh, gw), frames,
                                                            device=device)
        return self._rope_cache[key]

    def attention_mask(self, frames: int, h: int, w: int, device) -> torch.Tensor | None:
        p = self.transformer.config.patch_size
        ld, lc, lt = self.conditioner.group_lengths
        return selective_attention_mask(self.design, ld, lc, lt, (h // p) * (w // p), frames, device,
                                        text_sees_image=self.text_sees_image)

    def forward(self, latents, timestep, dino, clip, text, keep_dino, keep_clip, keep_text) -> torch.Tensor:
        _, frames, _, h, w = latents.shape
        cond = self.conditioner(dino, clip, text, keep_dino, keep_clip, keep_text)
        return self.transformer(
            hidden_states=latents, encoder_hidden_states=cond.to(latents.dtype), timestep=timestep,
            image_rotary_emb=self._rope(frames, h, w, latents.device),
            attention_kwargs={"attention_mask": self.attention_mask(frames, h, w, latents.device)},
            return_dict=False)[0]
