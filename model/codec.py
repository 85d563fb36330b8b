"""Video <-> latent codecs. Videos are (B, F, 3, H, W) in [-1, 1]; latents use the transformer's layout (B, F, C, h, w).

`tiny` uses a lossless pixel-unshuffle in place of the VAE so that training on CPU spends no time on a
codec and nothing is lost; the scale presets use diffusers' AutoencoderKLCogVideoX. Either is the pipeline's
`vae` component (saved and loaded as diffusers saves a VAE); `as_codec` gives it the codec interface.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from .config import CodecConfig


class PixelUnshuffleCodec(ModelMixin, ConfigMixin):
    """Space-to-depth by `factor`: (B, F, 3, H, W) -> (B, F, 3*factor**2, H/factor, W/factor). Exactly invertible."""

    @register_to_config
    def __init__(self, factor: int = 4):
        super().__init__()
        # No weights, but DiffusionPipeline reads each component's device and dtype off its tensors: an
        # empty, unsaved buffer gives it one that follows .to().
        self.register_buffer("placement", torch.empty(0), persistent=False)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, subfolder: str | None = None, **kwargs):
        """Parameter-free: `save_pretrained` writes only config.json, so build from it (loading kwargs such as
        dtype or device_map have nothing to act on)."""
        return cls.from_config(cls.load_config(pretrained_model_name_or_path, subfolder=subfolder))

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        b, f = video.shape[:2]
        return F.pixel_unshuffle(video.flatten(0, 1), self.config.factor).unflatten(0, (b, f))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        b, f = latents.shape[:2]
        return F.pixel_shuffle(latents.flatten(0, 1), self.config.factor).unflatten(0, (b, f))


class CogVideoXVaeCodec(torch.nn.Module):
    """diffusers' CogVideoX VAE behind the same interface (it works in (B, C, F, H, W))."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae
        self.scale = vae.config.scaling_factor

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        latents = self.vae.encode(video.permute(0, 2, 1, 3, 4)).latent_dist.sample() * self.scale
        return latents.permute(0, 2, 1, 3, 4)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents.permute(0, 2, 1, 3, 4) / self.scale).sample.permute(0, 2, 1, 3, 4)


def build_vae(cfg: CodecConfig):
    """The pipeline's `vae` component: the pixel-unshuffle codec, or the CogVideoX VAE from its local folder."""
    if cfg.kind == "pixel_unshuffle":
        return PixelUnshuffleCodec(cfg.factor)
    from diffusers import AutoencoderKLCogVideoX

    if not cfg.pretrained_path:
        raise ValueError("codec.kind=cogvideox_vae needs codec.pretrained_path (a local diffusers VAE folder)")
    return AutoencoderKLCogVideoX.from_pretrained(cfg.pretrained_path, use_safetensors=True).eval()


def as_codec(vae):
    """encode (B, F, 3, H, W) -> latents (B, F, C, h, w) and decode back, whichever `vae` the pipeline holds."""
    return vae if isinstance(vae, PixelUnshuffleCodec) else CogVideoXVaeCodec(vae)
