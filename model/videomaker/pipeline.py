"""The user-facing VideoMaker pipeline (METHOD_NOTES §2): identity image + prompt in, video out, as a diffusers
`DiffusionPipeline` on AnimateDiff, with SugarPipeline's interface so evaluation and serving code can call either.

Checkpoint layout: diffusers' (`model_index.json`, `unet/` (a UNetMotionModel: SD1.5 + motion modules, PISA adds
no weights), `vae/`, `text_encoder/`, `tokenizer/`, `scheduler/`) plus `vidcustom.json` with the ModelConfig
(`method: videomaker`), written and read as SugarPipeline does.

Sampling (§2.1, §2.7): the identity image's VAE latent rides along as frame F+1 of every UNet call, with the
video's timestep and text; single-scale CFG whose unconditional branch has the negative prompt and the
all-zeros reference, F+1 frames in both branches; DDIM updates the first F frames only, and they are decoded.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DiffusionPipeline, UNetMotionModel
from transformers import CLIPTextModel, PreTrainedTokenizerBase

from ..config import ModelConfig
from ..encoders import to_unit_tensor
from ..pipeline import (CHECKPOINT_META, OUTPUT_TYPES, SugarPipelineConfig, SugarPipelineOutput, VidcustomPipelineMixin,
                        video_to_uint8)
from .attention import install_pisa
from .builders import build_scheduler, build_text_encoder, build_tokenizer, build_unet, build_vae
from .unet import predict_with_reference

logger = logging.getLogger(__name__)


class VideoMakerPipeline(VidcustomPipelineMixin, DiffusionPipeline):
    r"""
    VideoMaker (zero-shot subject-driven video customization) on AnimateDiff (METHOD_NOTES §2).

    Args:
        vae: diffusers' `AutoencoderKL` (SD1.5's, or a tiny random one), per frame.
        text_encoder, tokenizer: the frozen CLIP text tower and its tokenizer.
        unet: AnimateDiff's `UNetMotionModel` with `PISAttnProcessor2_0` on every spatial self-attention
            (installed here, so a loaded checkpoint gets it too).
        scheduler: `DDIMScheduler` with VideoMaker's settings (§2.7).
        model_config: the `ModelConfig` (`method="videomaker"`), `pipe.config` once built; its `sampler` section
            mirrors `videomaker`'s sampling defaults (`VideoMakerConfig.as_sampler`) for code written for SUGAR.
        metadata: what `vidcustom.json` records beyond the config (data version, training stage, ...).
    """

    def __init__(self, vae: AutoencoderKL, text_encoder: CLIPTextModel, tokenizer: PreTrainedTokenizerBase,
                 unet: UNetMotionModel, scheduler: DDIMScheduler, model_config: ModelConfig | None = None,
                 metadata: dict | None = None):
        super().__init__()
        if model_config is None or model_config.method != "videomaker":
            raise ValueError("VideoMakerPipeline needs model_config with method='videomaker'; build one with "
                             "VideoMakerPipeline.from_config or load one with from_pretrained")
        self._model_config = SugarPipelineConfig.model_validate(model_config.model_dump())
        limit = unet.config.motion_max_seq_length
        if model_config.num_frames + 1 > limit:
            raise ValueError(f"model.num_frames={model_config.num_frames} plus the reference exceeds the motion "
                             f"modules' {limit} positions; set model.num_frames to at most {limit - 1}")
        for encoder in (vae, text_encoder):
            encoder.requires_grad_(False).eval()
        install_pisa(unet)
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        self.metadata = dict(metadata or {})

    # ---- what the pipeline holds ----------------------------------------------------------------
    # Adapted from model.pipeline.SugarPipeline.config: the sampler section follows `videomaker` on every read.
    @property
    def config(self) -> SugarPipelineConfig:
        view = self.__dict__["_model_config"]
        view._model_index = self.__dict__.get("_internal_dict", {})
        view.__dict__["sampler"] = view.videomaker.as_sampler()
        return view

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def vae_scaling_factor(self) -> float:
        return self.vae.config.scaling_factor

    # ---- construction, saving, loading ----------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: ModelConfig, seed: int = 0) -> "VideoMakerPipeline":
        """A fresh pipeline: pretrained parts from `cfg.videomaker`'s local paths, the rest tiny and random (the UNet
        from `seed`, the frozen modules from the config alone)."""
        if cfg.method != "videomaker":
            raise ValueError(f"model.method={cfg.method!r}: VideoMakerPipeline builds method='videomaker' only")
        vm = cfg.videomaker
        return cls(build_vae(vm, cfg.height), build_text_encoder(vm), build_tokenizer(vm), build_unet(cfg, seed),
                   build_scheduler(vm), model_config=cfg)

    # Copied from model.pipeline.SugarPipeline.save_pretrained
    def save_pretrained(self, save_directory: str | Path, metadata: dict | None = None, **kwargs) -> Path:
        """diffusers' layout (one folder per component, model_index.json) plus vidcustom.json; `metadata` is
        merged into what vidcustom.json records. Returns the folder."""
        path = Path(save_directory)
        path.mkdir(parents=True, exist_ok=True)
        super().save_pretrained(path, **kwargs)
        self.metadata.update(metadata or {})
        meta = {**self.metadata, "model_config": self.config.model_dump(mode="json")}
        (path / CHECKPOINT_META).write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs) -> "VideoMakerPipeline":
        """Load a checkpoint folder written by `save_pretrained`, in eval mode. kwargs: DiffusionPipeline's."""
        path = Path(pretrained_model_name_or_path)
        meta_file = path / CHECKPOINT_META
        if not meta_file.is_file():
            raise FileNotFoundError(f"{meta_file} is missing: {path} is not a vidcustom checkpoint")
        meta = json.loads(meta_file.read_text())
        cfg = ModelConfig.model_validate(meta.pop("model_config"))
        if cfg.method != "videomaker":
            raise ValueError(f"{path} is a method={cfg.method!r} checkpoint; load it with that method's pipeline")
        kwargs.setdefault("use_safetensors", True)
        return super().from_pretrained(str(path), model_config=cfg, metadata=meta, **kwargs).eval()

    # ---- encoders -------------------------------------------------------------------------------
    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        """Prompts -> CLIP text states (N, max_length, D), padded to a fixed length as SD does."""
        for p in prompts:
            if not isinstance(p, str):
                raise TypeError(f"prompt must be a string, got {type(p).__name__}: {p!r}")
        ids = self.tokenizer(list(prompts), padding="max_length", max_length=self.config.videomaker.max_length,
                             truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            return self.text_encoder(ids.to(self.text_encoder.device))[0]

    def encode_video(self, videos: torch.Tensor, sample: bool = True) -> torch.Tensor:
        """Videos (N, F, 3, H, W) in [-1, 1] -> scaled VAE latents (N, C, F, h, w), frame by frame. sample=True
        draws from the latent distribution (the global torch stream), as SD-family training does."""
        n, f = videos.shape[:2]
        dist = self.vae.encode(videos.flatten(0, 1).to(self.vae.device, self.vae.dtype)).latent_dist
        latents = (dist.sample() if sample else dist.mean) * self.vae_scaling_factor
        return latents.unflatten(0, (n, f)).permute(0, 2, 1, 3, 4)

    def encode_reference(self, images, sample: bool = False) -> torch.Tensor:
        """Identity images, uint8 (H, W, 3) or (N, H, W, 3) at the model's size -> the reference latent
        (N, C, 1, h, w) (§2.1: resize (done by the caller), [-1, 1], VAE, × scaling factor).

        [RECON] The paper samples the latent distribution; sample=False (inference) takes its mean, so a seed
        fixes the video. Training (`VideoMakerMethod.encode`) samples, as the paper does.
        """
        arr = np.asarray(images)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"identity image must be uint8 RGB (H, W, 3) or (N, H, W, 3), got {arr.dtype} "
                             f"{arr.shape}")
        c = self.config
        if arr.shape[1:3] != (c.height, c.width):
            raise ValueError(f"identity image is {arr.shape[2]}x{arr.shape[1]}; this model takes {c.width}x{c.height} "
                             "(fit it first, as components.preprocess does)")
        pixels = to_unit_tensor(arr) * 2 - 1
        return self.encode_video(pixels[:, None], sample=sample)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (N, C, F, h, w) -> videos (N, F, 3, H, W), nominally in [-1, 1], one video at a time."""
        frames = [self.vae.decode(x.permute(1, 0, 2, 3).to(self.vae.dtype) / self.vae_scaling_factor).sample
                  for x in latents]
        return torch.stack(frames).float()

    # ---- inference ----------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, image, prompt: str | list[str], num_inference_steps: int | None = None,
                 guidance_scale: float | None = None, seed: int = 0, negative_prompt: str | None = None,
                 use_image: bool = True, progress: bool = False, generator=None, latents: torch.Tensor | None = None,
                 output_type: str = "np", return_dict: bool = True, image_scale: float | None = None,
                 text_scale: float | None = None) -> SugarPipelineOutput | tuple:
        """Videos for N (identity image, prompt) pairs; sampler settings default to config.videomaker.

        image: uint8 (H, W, 3) at the model's size for every prompt, or (N, H, W, 3). prompt: a string or N strings.
        guidance_scale: s in eps_u + s * (eps_c - eps_u) (§2.7); at 1 only the conditional branch runs.
        seed / generator / latents: the initial noise (`prepare_latents`, SugarPipeline's layout and draw).
        use_image=False puts the all-zeros reference in both branches (the "image dropped" ablation).
        image_scale, text_scale: SugarPipeline's two scales, accepted so code written for it runs. VideoMaker has
            one scale for image and text together: text_scale is used as guidance_scale when that is not given;
            image_scale is ignored.
        output_type: "np" (uint8 (N, T, H, W, 3)), "pt" (float (N, T, 3, H, W) in [0, 1]) or "latent"
            ((N, F, C, h, w), as SugarPipeline).
        Returns `SugarPipelineOutput(frames=...)`, or the tuple `(frames,)` when return_dict is False.
        """
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        vm = self.config.videomaker
        if image_scale is not None:
            logger.debug("image_scale=%s ignored: VideoMaker guides image and text with one scale", image_scale)
        scale = next(s for s in (guidance_scale, text_scale, vm.guidance_scale) if s is not None)
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        n, device, dtype = len(prompts), self.device, self.unet.dtype

        reference = self.encode_reference(image)
        if reference.shape[0] != n:
            if reference.shape[0] != 1:
                raise ValueError(f"got {reference.shape[0]} identity images for {n} prompts")
            reference = reference.expand(n, -1, -1, -1, -1)
        if not use_image:
            reference = torch.zeros_like(reference)
        text = self.encode_prompt(prompts)
        guided = scale != 1.0  # at 1 the formula is the conditional branch: skip the other
        if guided:
            # The unconditional branch keeps F+1 frames with a zero reference, and has the negative prompt (§2.7, §2.9).
            negative = self.encode_prompt([vm.negative_prompt if negative_prompt is None else negative_prompt] * n)
            text, reference = torch.cat([negative, text]), torch.cat([torch.zeros_like(reference), reference])
        text, reference = text.to(device, dtype), reference.to(device, dtype)

        x = self.prepare_latents(n, seed, generator, latents).to(device, dtype).permute(0, 2, 1, 3, 4)
        x = x * self.scheduler.init_noise_sigma
        frames = x.shape[2]
        self.scheduler.set_timesteps(num_inference_steps or vm.num_inference_steps, device=device)
        from tqdm.auto import tqdm

        for t in tqdm(self.scheduler.timesteps, disable=not progress, desc="VideoMaker", unit="step"):
            sample = self.scheduler.scale_model_input(torch.cat([x, x]) if guided else x, t)
            eps = predict_with_reference(self.unet, sample, reference, t, text)[:, :, :frames]  # reference out dropped
            if guided:
                uncond, cond = eps.chunk(2)
                eps = uncond + scale * (cond - uncond)
            x = self.scheduler.step(eps, t, x).prev_sample

        if output_type == "latent":
            out = x.permute(0, 2, 1, 3, 4)
        else:
            video = self.decode(x)
            out = video_to_uint8(video) if output_type == "np" else (video.clamp(-1, 1) + 1) / 2
        self.maybe_free_model_hooks()
        return SugarPipelineOutput(frames=out) if return_dict else (out,)
