"""The SUGAR denoiser: `SugarTransformer3DModel`, diffusers' CogVideoXTransformer3DModel plus what SUGAR adds.

What is added (and nothing else; the stock weights and their state-dict keys stay as they are):
  * the conditioning stream of `SugarConditioner` (DINO + CLIP + T5 tokens) in place of T5 alone, as the
    submodule `conditioner` (the only new state-dict keys, `conditioner.*`);
  * the selective-attention processor on every block (`attention.py`);
  * with sincos positions (2B-style), a patch embedding that gives every conditioning token zero position
    whatever the conditioning length; with 3D RoPE (5B-style), RoPE on video tokens only.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import torch
from diffusers import CogVideoXTransformer3DModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.embeddings import CogVideoXPatchEmbed, get_3d_rotary_pos_embed
from diffusers.models.modeling_outputs import Transformer2DModelOutput
# DiffusionPipeline.from_pretrained finds the loader of a component from outside diffusers by looking the
# component's base class up in its module: SugarPipeline can load this model because ModelMixin is named here.
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401

from .attention import SugarSelectiveAttnProcessor2_0, allowed, selective_attention_mask
from .conditioning import SugarConditioner
from .config import BUNDLED, BUNDLED_PREFIX, ModelConfig


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
    """The stock CogVideoX transformer SUGAR starts from: pretrained from `cfg.transformer_path` (a local
    diffusers folder or `bundled:NAME`), its weights checked against `cfg.transformer_sha256` when pinned; else
    randomly initialised from the preset."""
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


def sugar_transformer_kwargs(cfg: ModelConfig, dino_dim: int, clip_dim: int, num_dino_tokens: int) -> dict:
    """SUGAR's `SugarTransformer3DModel` kwargs from the model config and the image encoders' widths."""
    c = cfg.conditioning
    return dict(attention_design=cfg.attention_design, text_sees_image=cfg.attention_text_sees_image,
                dino_dim=dino_dim, clip_dim=clip_dim, num_dino_tokens=num_dino_tokens,
                num_text_tokens=cfg.text_encoder.max_length, null_condition=c.null_condition,
                image_residual=c.image_residual, image_input_norm=c.image_input_norm)


def _stock_kwargs(config) -> dict:
    """CogVideoXTransformer3DModel's kwargs out of a (stock or SUGAR) transformer config."""
    names = inspect.signature(CogVideoXTransformer3DModel.__init__).parameters
    return {k: config[k] for k in names if k != "self" and k in config}


def _accept_sugar_denoiser_keys(module, state_dict, prefix, *args) -> None:
    """The SUGAR denoiser before this class wrapped the stock model as `transformer.` (`transformer.x` here is
    `x`; `conditioner.*` is unchanged), so state dicts it wrote, such as training-resume weights, still load."""
    old = prefix + "transformer."
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[prefix + key[len(old):]] = state_dict.pop(key)


class SugarTransformer3DModel(CogVideoXTransformer3DModel):
    r"""
    SUGAR's denoiser: diffusers' CogVideoX transformer conditioned on an identity image and a prompt.

    forward(latents (N, F, C, h, w), timestep (N,), dino (N, Ld, Dd), clip (N, 1, Dc), text (N, Lt, Dt),
            keep_dino / keep_clip / keep_text (N,) in {0, 1}) -> prediction (N, F, C, h, w)

    The stock modules and their state-dict keys are CogVideoX's, so a stock transformer folder loads into
    it weight for weight (`from_cogvideox`); SUGAR's projections and nulls are the `conditioner.*` keys.

    Parameters:
        num_attention_heads ... patch_bias: `CogVideoXTransformer3DModel`'s, with its defaults and meaning
            (`text_embed_dim` is the width of the whole conditioning stream, the T5 width).
        attention_design (`str`, defaults to `"b"`): the selective-attention design, "a" to "e" (`attention.py`).
        text_sees_image (`bool`, defaults to `False`): let text tokens attend to image tokens in designs (b)-(d).
        dino_dim (`int`, defaults to `1024`): width of the DINOv2 tokens.
        clip_dim (`int`, defaults to `768`): width of the CLIP image embedding.
        num_dino_tokens (`int`, defaults to `257`): DINOv2 tokens per image (patches + CLS).
        num_text_tokens (`int`, defaults to `226`): T5 tokens per prompt (the padded length).
        null_condition (`str`, defaults to `"learned"`): "learned" or "zeros" nulls (`SugarConditioner`).
        image_residual (`bool`, defaults to `False`): image tokens grow from their nulls (`SugarConditioner`).
        image_input_norm (`bool`, defaults to `False`): LayerNorm on the image features (`SugarConditioner`).
    """

    _no_split_modules = ["CogVideoXBlock", "CogVideoXPatchEmbed", "SugarConditioner"]

    @register_to_config
    def __init__(
        self,
        num_attention_heads: int = 30,
        attention_head_dim: int = 64,
        in_channels: int = 16,
        out_channels: int | None = 16,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        time_embed_dim: int = 512,
        ofs_embed_dim: int | None = None,
        text_embed_dim: int = 4096,
        num_layers: int = 30,
        dropout: float = 0.0,
        attention_bias: bool = True,
        sample_width: int = 90,
        sample_height: int = 60,
        sample_frames: int = 49,
        patch_size: int = 2,
        patch_size_t: int | None = None,
        temporal_compression_ratio: int = 4,
        max_text_seq_length: int = 226,
        activation_fn: str = "gelu-approximate",
        timestep_activation_fn: str = "silu",
        norm_elementwise_affine: bool = True,
        norm_eps: float = 1e-5,
        spatial_interpolation_scale: float = 1.875,
        temporal_interpolation_scale: float = 1.0,
        use_rotary_positional_embeddings: bool = False,
        use_learned_positional_embeddings: bool = False,
        patch_bias: bool = True,
        attention_design: str = "b",
        text_sees_image: bool = False,
        dino_dim: int = 1024,
        clip_dim: int = 768,
        num_dino_tokens: int = 257,
        num_text_tokens: int = 226,
        null_condition: str = "learned",
        image_residual: bool = False,
        image_input_norm: bool = False,
    ):
        super().__init__(
            num_attention_heads=num_attention_heads, attention_head_dim=attention_head_dim, in_channels=in_channels,
            out_channels=out_channels, flip_sin_to_cos=flip_sin_to_cos, freq_shift=freq_shift,
            time_embed_dim=time_embed_dim, ofs_embed_dim=ofs_embed_dim, text_embed_dim=text_embed_dim,
            num_layers=num_layers, dropout=dropout, attention_bias=attention_bias, sample_width=sample_width,
            sample_height=sample_height, sample_frames=sample_frames, patch_size=patch_size,
            patch_size_t=patch_size_t, temporal_compression_ratio=temporal_compression_ratio,
            max_text_seq_length=max_text_seq_length, activation_fn=activation_fn,
            timestep_activation_fn=timestep_activation_fn, norm_elementwise_affine=norm_elementwise_affine,
            norm_eps=norm_eps, spatial_interpolation_scale=spatial_interpolation_scale,
            temporal_interpolation_scale=temporal_interpolation_scale,
            use_rotary_positional_embeddings=use_rotary_positional_embeddings,
            use_learned_positional_embeddings=use_learned_positional_embeddings, patch_bias=patch_bias)
        allowed(attention_design, "dino", "dino")  # refuses an unknown design, naming the choices
        # SUGAR's patch embedding in place of the stock one, with the weights just drawn for it: built off the
        # RNG stream, so a seeded model gets the very weights the stock model would (same keys, same values).
        with torch.random.fork_rng(devices=[]):
            patch_embed = AnyLengthConditionPatchEmbed(
                patch_size=patch_size, patch_size_t=patch_size_t, in_channels=in_channels,
                embed_dim=num_attention_heads * attention_head_dim, text_embed_dim=text_embed_dim, bias=patch_bias,
                sample_width=sample_width, sample_height=sample_height, sample_frames=sample_frames,
                temporal_compression_ratio=temporal_compression_ratio, max_text_seq_length=max_text_seq_length,
                spatial_interpolation_scale=spatial_interpolation_scale,
                temporal_interpolation_scale=temporal_interpolation_scale,
                use_positional_embeddings=not use_rotary_positional_embeddings,
                use_learned_positional_embeddings=use_learned_positional_embeddings)
        patch_embed.load_state_dict(self.patch_embed.state_dict())
        self.patch_embed = patch_embed
        self.conditioner = self._make_conditioner()
        self.set_attn_processor(SugarSelectiveAttnProcessor2_0())
        self._rope_cache: dict = {}
        self.register_load_state_dict_pre_hook(_accept_sugar_denoiser_keys)

    def _make_conditioner(self) -> SugarConditioner:
        c = self.config
        return SugarConditioner(
            dino_dim=c.dino_dim, clip_dim=c.clip_dim, text_dim=c.text_embed_dim, num_dino_tokens=c.num_dino_tokens,
            num_text_tokens=c.num_text_tokens, null_condition=c.null_condition, image_residual=c.image_residual,
            image_input_norm=c.image_input_norm)

    @classmethod
    def from_cogvideox(cls, transformer: CogVideoXTransformer3DModel | str | os.PathLike,
                       **sugar_kwargs) -> "SugarTransformer3DModel":
        """SUGAR on a stock CogVideoX transformer (a model, or its diffusers folder) and SUGAR's kwargs.

        Every stock weight is taken over unchanged (shared with `transformer`, not copied); the conditioner is
        initialised from the global RNG, which nothing else here draws from: seeding, building the stock model
        and then calling this gives the same weights as `SugarTransformer3DModel(**stock_kwargs, **sugar_kwargs)`
        under the same seed.
        """
        from accelerate import init_empty_weights

        if not isinstance(transformer, CogVideoXTransformer3DModel):
            transformer = CogVideoXTransformer3DModel.from_pretrained(transformer, use_safetensors=True)
        if isinstance(transformer, SugarTransformer3DModel):
            raise TypeError("from_cogvideox takes a stock CogVideoXTransformer3DModel; this one is already SUGAR's")
        with torch.random.fork_rng(devices=[]), init_empty_weights():  # no weight drawn, no stream moved
            model = cls(**_stock_kwargs(transformer.config), **sugar_kwargs)
        missing, unexpected = model.load_state_dict(transformer.state_dict(), strict=False, assign=True)
        missing = [k for k in missing if not k.startswith("conditioner.")]
        if missing or unexpected:
            raise ValueError(f"the {type(transformer).__name__} does not fit SugarTransformer3DModel: missing "
                             f"{missing[:5]}, unexpected {unexpected[:5]}")
        model.conditioner = model._make_conditioner()
        return model.train(transformer.training)

    def to_cogvideox(self) -> CogVideoXTransformer3DModel:
        """The stock CogVideoX transformer under SUGAR (weights shared, not copied): what a text-to-video base
        is published as, loadable by diffusers without this package."""
        from accelerate import init_empty_weights

        with torch.random.fork_rng(devices=[]), init_empty_weights():
            base = CogVideoXTransformer3DModel(**_stock_kwargs(self.config))
        base.load_state_dict({k: v for k, v in self.state_dict().items() if not k.startswith("conditioner.")},
                             assign=True)
        return base.train(self.training)

    def set_attention_design(self, design: str, text_sees_image: bool | None = None) -> None:
        """Switch the selective-attention design (an ablation on the same weights); recorded in the config."""
        allowed(design, "dino", "dino")
        text = self.config.text_sees_image if text_sees_image is None else text_sees_image
        self.register_to_config(attention_design=design, text_sees_image=text)

    def _rope(self, frames: int, h: int, w: int, device) -> tuple[torch.Tensor, torch.Tensor] | None:
        c = self.config
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
        c = self.config
        ld, lc, lt = self.conditioner.group_lengths
        return selective_attention_mask(c.attention_design, ld, lc, lt, (h // c.patch_size) * (w // c.patch_size),
                                        frames, device, text_sees_image=c.text_sees_image)

    def forward(self, latents: torch.Tensor, timestep: torch.Tensor, dino: torch.Tensor, clip: torch.Tensor,
                text: torch.Tensor, keep_dino: torch.Tensor, keep_clip: torch.Tensor, keep_text: torch.Tensor,
                return_dict: bool = False) -> torch.Tensor | Transformer2DModelOutput:
        """The prediction (N, F, C, h, w); `return_dict=True` wraps it in a `Transformer2DModelOutput`. The
        default is the tensor, which the sampler, the trainer and the ONNX trace take."""
        _, frames, _, h, w = latents.shape
        cond = self.conditioner(dino, clip, text, keep_dino, keep_clip, keep_text)
        out = super().forward(
            hidden_states=latents, encoder_hidden_states=cond.to(latents.dtype), timestep=timestep,
            image_rotary_emb=self._rope(frames, h, w, latents.device),
            attention_kwargs={"attention_mask": self.attention_mask(frames, h, w, latents.device)},
            return_dict=False)[0]
        return Transformer2DModelOutput(sample=out) if return_dict else out
