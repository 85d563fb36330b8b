"""The user-facing SUGAR pipeline: identity image + prompt in, video out.

Checkpoint layout (DESIGN.md), every weight in safetensors, nothing unpickled on load:
    transformer/ conditioner/ vae/ text_encoder/ tokenizer/ image_encoders/{dino,clip}/ scheduler/ vidcustom.json
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .codec import build_codec, load_codec
from .conditioning import SugarConditioner
from .config import ModelConfig
from .encoders import ImageEncoders, TextEncoder, to_unit_tensor
from .guidance import DualGuidanceSampler
from .noise import diffusion_noise
from .transformer import SugarDenoiser, build_transformer

CHECKPOINT_META = "vidcustom.json"


def build_scheduler(cfg: ModelConfig):
    """CogVideoX's own DDIM scheduler (DDIM with an SNR shift), for every preset."""
    from diffusers import CogVideoXDDIMScheduler

    s = cfg.scheduler
    return CogVideoXDDIMScheduler(num_train_timesteps=s.num_train_timesteps, beta_schedule=s.beta_schedule,
                                  prediction_type=s.prediction_type, rescale_betas_zero_snr=s.rescale_betas_zero_snr,
                                  timestep_spacing=s.timestep_spacing, snr_shift_scale=s.snr_shift_scale,
                                  clip_sample=False, set_alpha_to_one=True)


class SugarPipeline:
    """Holds the SUGAR denoiser, the codec, the frozen encoders and the scheduler."""

    def __init__(self, config: ModelConfig, denoiser: SugarDenoiser, codec, image_encoders: ImageEncoders,
                 text_encoder: TextEncoder, scheduler, metadata: dict | None = None):
        self.config, self.denoiser, self.codec = config, denoiser, codec
        self.image_encoders, self.text_encoder, self.scheduler = image_encoders, text_encoder, scheduler
        self.metadata = dict(metadata or {})

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: ModelConfig, seed: int = 0) -> "SugarPipeline":
        """A fresh pipeline: pretrained parts from the config's local paths, the rest random (seeded)."""
        image_encoders, text_encoder = ImageEncoders.from_config(cfg), TextEncoder.from_config(cfg)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            transformer = build_transformer(cfg)
            conditioner = SugarConditioner(
                dino_dim=image_encoders.dino_dim, clip_dim=image_encoders.clip_dim,
                text_dim=transformer.config.text_embed_dim, num_dino_tokens=image_encoders.num_dino_tokens(),
                num_text_tokens=cfg.text_encoder.max_length, null_condition=cfg.conditioning.null_condition,
                image_residual=cfg.conditioning.image_residual, image_input_norm=cfg.conditioning.image_input_norm)
        denoiser = SugarDenoiser(transformer, conditioner, cfg.attention_design, cfg.attention_text_sees_image)
        return cls(cfg, denoiser, build_codec(cfg.codec), image_encoders, text_encoder, build_scheduler(cfg))

    def save_pretrained(self, path: str | Path, metadata: dict | None = None) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.denoiser.transformer.save_pretrained(path / "transformer")
        self.denoiser.conditioner.save_pretrained(path / "conditioner")
        self.codec.save_pretrained(path / "vae")
        self.text_encoder.t5.save_pretrained(path / "text_encoder")
        self.text_encoder.tokenizer.save_pretrained(path / "tokenizer")
        self.image_encoders.dino.save_pretrained(path / "image_encoders" / "dino")
        self.image_encoders.clip.save_pretrained(path / "image_encoders" / "clip")
        self.scheduler.save_pretrained(path / "scheduler")
        self.metadata.update(metadata or {})
        meta = {"method": self.config.method, "preset": self.config.preset,
                "attention_design": self.config.attention_design,
                "null_condition": self.config.conditioning.null_condition, **self.metadata,
                "model_config": self.config.model_dump(mode="json")}
        (path / CHECKPOINT_META).write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path, attention_design: str | None = None) -> "SugarPipeline":
        from diffusers import CogVideoXDDIMScheduler, CogVideoXTransformer3DModel

        path = Path(path)
        meta_file = path / CHECKPOINT_META
        if not meta_file.is_file():
            raise FileNotFoundError(f"{meta_file} is missing: {path} is not a vidcustom checkpoint")
        meta = json.loads(meta_file.read_text())
        cfg = ModelConfig.model_validate(meta.pop("model_config"))
        # Every part loads from the checkpoint itself, not from the paths it was built from.
        local = cfg.model_copy(deep=True)
        local.dino.pretrained_path = str(path / "image_encoders" / "dino")
        local.clip.pretrained_path = str(path / "image_encoders" / "clip")
        local.text_encoder.pretrained_path = str(path / "text_encoder")
        local.text_encoder.tokenizer_path = str(path / "tokenizer")
        transformer = CogVideoXTransformer3DModel.from_pretrained(path / "transformer", use_safetensors=True)
        conditioner = SugarConditioner.from_pretrained(path / "conditioner", use_safetensors=True)
        denoiser = SugarDenoiser(transformer, conditioner, attention_design or cfg.attention_design,
                                 cfg.attention_text_sees_image)
        pipe = cls(cfg, denoiser, load_codec(cfg.codec, path / "vae"), ImageEncoders.from_config(local),
                   TextEncoder.from_config(local), CogVideoXDDIMScheduler.from_pretrained(path / "scheduler"), meta)
        pipe.eval()
        return pipe

    def eval(self) -> "SugarPipeline":
        self.denoiser.eval()
        return self

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    def to(self, device) -> "SugarPipeline":
        """Move every network (denoiser, encoders, codec) to `device`; inputs follow inside `__call__`."""
        for module in (self.denoiser, self.image_encoders, self.text_encoder, self.codec):
            module.to(device)
        return self

    # ---- inference ----------------------------------------------------------------------------
    def encode_image(self, images) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (N, H, W, 3) or (H, W, 3) -> dino (N, Ld, Dd), clip (N, 1, Dc)."""
        arr = np.asarray(images)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.dtype != np.uint8:
            if not np.isfinite(arr).all():
                raise ValueError("identity image contains NaN or infinite values")
            raise ValueError(f"identity image must be uint8 RGB (H, W, 3), got dtype {arr.dtype}")
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"identity image must be RGB of shape (H, W, 3) or (N, H, W, 3), got {arr.shape}")
        return self.image_encoders(to_unit_tensor(arr).to(self.device))

    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        return self.text_encoder(prompts)

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """latents -> uint8 (N, T, H, W, 3)."""
        video = self.codec.decode(latents).clamp(-1, 1)
        return ((video + 1) * 127.5).round().to(torch.uint8).permute(0, 1, 3, 4, 2).cpu().numpy()

    def initial_noise(self, n: int, seed: int) -> torch.Tensor:
        """The starting noise for `seed`: NumPy's generator and model.noise, exactly as the ONNX sampler draws it."""
        c = self.config
        shape = (n, c.latent_frames, c.latent_channels, *c.latent_size)
        return torch.from_numpy(diffusion_noise(np.random.default_rng(seed), shape, **c.noise_args))

    @torch.no_grad()
    def __call__(self, image, prompt: str | list[str], num_inference_steps: int | None = None,
                 image_scale: float | None = None, text_scale: float | None = None, seed: int = 0,
                 early_dino_drop: float | None = None, negative_prompt: str | None = None, use_image: bool = True,
                 progress: bool = False, output_latents: bool = False):
        """Generate videos (N, T, H, W, 3) uint8 for N (image, prompt) pairs; defaults from config.sampler."""
        s = self.config.sampler
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        dino, clip = self.encode_image(image)
        if dino.shape[0] != len(prompts):
            if dino.shape[0] != 1:
                raise ValueError(f"got {dino.shape[0]} identity images for {len(prompts)} prompts")
            dino, clip = dino.expand(len(prompts), -1, -1), clip.expand(len(prompts), -1, -1)
        eq2 = s.guidance == "negative_prompt"
        neg = s.negative_prompt if negative_prompt is None else negative_prompt
        text = self.encode_prompt(prompts)
        uncond = self.encode_prompt([neg] * len(prompts)) if eq2 else torch.zeros_like(text)
        sampler = DualGuidanceSampler(self.denoiser, self.scheduler)
        latents = sampler(
            self.initial_noise(len(prompts), seed).to(self.device), dino, clip, text, uncond,
            num_inference_steps or s.num_inference_steps,
            s.image_scale if image_scale is None else image_scale, s.text_scale if text_scale is None else text_scale,
            negative_prompt=eq2, early_dino_drop=s.early_dino_drop if early_dino_drop is None else early_dino_drop,
            use_image=use_image, progress=progress)
        return latents if output_latents else self.decode(latents)
