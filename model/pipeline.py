"""The user-facing SUGAR pipeline: identity image + prompt in, video out, as a diffusers `DiffusionPipeline`.

Checkpoint layout (DESIGN.md), written by `save_pretrained` through diffusers; every weight in safetensors,
nothing unpickled on load:
    model_index.json      diffusers' index: component -> (library, class)
    transformer/          SugarTransformer3DModel: CogVideoX's keys + `conditioner.*`; its config.json holds
                          the attention design, the token counts and the projection widths
    vae/ text_encoder/ tokenizer/ image_encoder_dino/ image_encoder_clip/ scheduler/
    vidcustom.json        method, preset, attention design, null condition, data version, training stage and
                          the ModelConfig (sizes, preprocessing, sampler defaults)
Checkpoints written before the pipeline was a DiffusionPipeline (a stock `transformer/` beside `conditioner/`,
`image_encoders/{dino,clip}/`, no model_index.json) load too (`from_pretrained` converts them).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, DiffusionPipeline
from diffusers.utils import BaseOutput
from pydantic import PrivateAttr
from transformers import CLIPVisionModelWithProjection, Dinov2Model, PreTrainedTokenizerBase, T5EncoderModel

from .codec import PixelUnshuffleCodec, as_codec, build_vae
from .conditioning import SugarConditioner
from .config import ModelConfig
from .encoders import (ImageEncoders, TextEncoder, build_clip_vision, build_dino, build_t5, build_tokenizer,
                       to_unit_tensor)
from .guidance import DualGuidanceSampler
from .noise import diffusion_noise
from .transformer import SugarTransformer3DModel, build_transformer, sugar_transformer_kwargs

CHECKPOINT_META = "vidcustom.json"
LEGACY_META_COPIES = ("method", "attention_design", "null_condition")  # now read from model_config
MODEL_INDEX = "model_index.json"
OUTPUT_TYPES = ("np", "pt", "latent")

logger = logging.getLogger(__name__)


def build_scheduler(cfg: ModelConfig):
    """CogVideoX's own DDIM scheduler (DDIM with an SNR shift), for every preset."""
    s = cfg.scheduler
    return CogVideoXDDIMScheduler(num_train_timesteps=s.num_train_timesteps, beta_schedule=s.beta_schedule,
                                  prediction_type=s.prediction_type, rescale_betas_zero_snr=s.rescale_betas_zero_snr,
                                  timestep_spacing=s.timestep_spacing, snr_shift_scale=s.snr_shift_scale,
                                  clip_sample=False, set_alpha_to_one=True)


def video_to_uint8(video: torch.Tensor) -> np.ndarray:
    """Decoded video (N, T, 3, H, W), nominally in [-1, 1] -> uint8 (N, T, H, W, 3): the served rounding."""
    return ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 1, 3, 4, 2).cpu().numpy()


@dataclass
class SugarPipelineOutput(BaseOutput):
    """
    Output of `SugarPipeline`.

    Args:
        frames: for output_type "np", uint8 videos (N, T, H, W, 3); for "pt", float videos (N, T, 3, H, W) in
            [0, 1]; for "latent", the denoised latents (N, F, C, h, w).
    """

    frames: np.ndarray | torch.Tensor


class SugarPipelineConfig(ModelConfig):
    """The pipeline's `config`: the ModelConfig that defines the checkpoint. Read as a mapping (`keys()`,
    `[name]`), it is diffusers' model index {component: (library, class)}, which DiffusionPipeline's own
    methods (`save_pretrained`, `components`, `to`) read through `pipe.config`."""

    _model_index: Any = PrivateAttr(default_factory=dict)

    def keys(self):
        return self._model_index.keys()

    def __getitem__(self, name: str):
        return self._model_index[name]


class VidcustomPipelineMixin:
    """What SUGAR's and VideoMaker's pipelines share: `self.config` is a ModelConfig view (not diffusers'
    FrozenDict), and the initial noise comes from a seed through NumPy (model.noise), so the PyTorch pipelines
    and the ONNX sampler draw the same noise."""

    def __setattr__(self, name: str, value: Any):
        # DiffusionPipeline.__setattr__ reads the model index through `self.config`, the ModelConfig here:
        # keep the index of a reassigned component up to date from the index itself.
        from diffusers.pipelines.pipeline_loading_utils import _fetch_class_library_tuple

        index = self.__dict__.get("_internal_dict", {})
        if name in self.__dict__ and isinstance(index.get(name), (tuple, list)):
            self.register_to_config(**{name: (None, None) if value is None else _fetch_class_library_tuple(value)})
        object.__setattr__(self, name, value)

    def eval(self):
        """Every torch module of the pipeline in eval mode (diffusers' pipelines have no eval)."""
        for module in self.components.values():
            if isinstance(module, torch.nn.Module):
                module.eval()
        return self

    def initial_noise(self, n: int, seed: int | np.random.Generator) -> torch.Tensor:
        """The starting noise for `seed`: NumPy's generator and model.noise, exactly as the ONNX sampler draws it."""
        c = self.config
        shape = (n, c.latent_frames, c.latent_channels, *c.latent_size)
        return torch.from_numpy(diffusion_noise(np.random.default_rng(seed), shape, **c.noise_args))

    def prepare_latents(self, n: int, seed: int = 0, generator=None, latents: torch.Tensor | None = None):
        """The initial noise (N, F, C, h, w): `latents` as given; else drawn by `generator` (an int seed, a NumPy
        or a torch Generator, or a list of them, one per sample); else by `seed`.

        A torch.Generator seeds the NumPy generator that draws the noise (model.noise is NumPy, shared with
        the ONNX sampler), so the same generator state gives the same video and the generator advances.
        """
        c = self.config
        shape = (n, c.latent_frames, c.latent_channels, *c.latent_size)
        if latents is not None:
            if tuple(latents.shape) != shape:
                raise ValueError(f"latents of shape {tuple(latents.shape)} given; this pipeline starts from {shape}")
            return latents
        if generator is None:
            return self.initial_noise(n, seed)
        if isinstance(generator, list):
            if len(generator) != n:
                raise ValueError(f"got {len(generator)} generators for {n} samples")
            return torch.cat([self.prepare_latents(1, generator=g) for g in generator])
        if isinstance(generator, torch.Generator):
            generator = int(torch.randint(2**63 - 1, (1,), generator=generator, device=generator.device))
        return self.initial_noise(n, generator)


class SugarPipeline(VidcustomPipelineMixin, DiffusionPipeline):
    r"""
    SUGAR (zero-shot subject-driven video customization) on a CogVideoX transformer.

    Args:
        transformer: the SUGAR denoiser (`SugarTransformer3DModel`), also reachable as `denoiser`.
        vae: the codec between videos and latents: `PixelUnshuffleCodec` (tiny) or diffusers'
            `AutoencoderKLCogVideoX`; `codec` gives either one interface.
        text_encoder, tokenizer: the frozen T5 encoder and its tokenizer.
        image_encoder_dino, image_encoder_clip: the frozen DINOv2 and CLIP vision towers of the identity image.
        scheduler: CogVideoX's DDIM scheduler.
        model_config: the `ModelConfig` (sizes, preprocessing, sampler defaults), `pipe.config` once built.
        metadata: what `vidcustom.json` records beyond the config (data version, training stage, ...).
    """

    def __init__(self, transformer: SugarTransformer3DModel, vae: PixelUnshuffleCodec | AutoencoderKLCogVideoX,
                 text_encoder: T5EncoderModel, tokenizer: PreTrainedTokenizerBase, image_encoder_dino: Dinov2Model,
                 image_encoder_clip: CLIPVisionModelWithProjection, scheduler: CogVideoXDDIMScheduler,
                 model_config: ModelConfig | None = None, metadata: dict | None = None):
        super().__init__()
        if model_config is None:
            raise ValueError("SugarPipeline needs model_config (the ModelConfig: sizes, preprocessing, sampler "
                             "defaults); build one with SugarPipeline.from_config or load one with from_pretrained")
        self._model_config = SugarPipelineConfig.model_validate(model_config.model_dump())
        for encoder in (text_encoder, image_encoder_dino, image_encoder_clip):
            encoder.requires_grad_(False).eval()
        self.register_modules(transformer=transformer, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                              image_encoder_dino=image_encoder_dino, image_encoder_clip=image_encoder_clip,
                              scheduler=scheduler)
        self.metadata = dict(metadata or {})

    # ---- what the pipeline holds ----------------------------------------------------------------
    @property
    def config(self) -> SugarPipelineConfig:
        view = self.__dict__["_model_config"]
        view._model_index = self.__dict__.get("_internal_dict", {})
        return view

    @property
    def denoiser(self) -> SugarTransformer3DModel:
        """The trainable module (the transformer): denoiser(latents, t, dino, clip, text, keep_dino, keep_clip,
        keep_text) -> prediction."""
        return self.transformer

    @property
    def codec(self):
        """encode(video (B, F, 3, H, W) in [-1, 1]) -> latents (B, F, C, h, w), and decode back."""
        return as_codec(self.vae)

    @property
    def image_encoders(self) -> ImageEncoders:
        """float (N, 3, H, W) in [0, 1] -> dino (N, Ld, Dd), clip (N, 1, Dc), preprocessing included."""
        c = self.config
        return ImageEncoders(self.image_encoder_dino, self.image_encoder_clip, c.dino, c.clip)

    @property
    def _prompt_encoder(self) -> TextEncoder:
        return TextEncoder(self.text_encoder, self.tokenizer, self.config.text_encoder)

    @property
    def device(self) -> torch.device:
        return self.transformer.device

    # ---- construction, saving, loading ----------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: ModelConfig, seed: int = 0) -> "SugarPipeline":
        """A fresh pipeline: pretrained parts from the config's local paths, the rest random (seeded)."""
        dino, clip = build_dino(cfg.dino), build_clip_vision(cfg.clip)
        text_encoder, tokenizer = build_t5(cfg.text_encoder), build_tokenizer(cfg.text_encoder)
        images = ImageEncoders(dino, clip, cfg.dino, cfg.clip)
        sugar = sugar_transformer_kwargs(cfg, images.dino_dim, images.clip_dim, images.num_dino_tokens())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            # The stock weights first, then SUGAR's conditioner, from the one seeded stream.
            transformer = SugarTransformer3DModel.from_cogvideox(build_transformer(cfg), **sugar)
        return cls(transformer, build_vae(cfg.codec), text_encoder, tokenizer, dino, clip, build_scheduler(cfg),
                   model_config=cfg)

    def save_pretrained(self, save_directory: str | Path, metadata: dict | None = None, **kwargs) -> Path:
        """diffusers' layout (one folder per component, model_index.json) plus vidcustom.json; `metadata` is
        merged into what vidcustom.json records. Returns the folder."""
        path = Path(save_directory)
        path.mkdir(parents=True, exist_ok=True)
        super().save_pretrained(path, **kwargs)
        self.metadata.update(metadata or {})
        c = self.config
        # The model config is the one record of what was trained (the transformer's config.json repeats
        # what the module needs to be built: the design and token counts).
        meta = {**self.metadata, "model_config": c.model_dump(mode="json")}
        (path / CHECKPOINT_META).write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, attention_design: str | None = None,
                        **kwargs) -> "SugarPipeline":
        """Load a checkpoint folder (either layout, see the module docstring), in eval mode.

        attention_design: run the saved weights under another selective-attention design (an ablation).
        kwargs: DiffusionPipeline.from_pretrained's (dtype, device_map, ...), current layout only.
        """
        path = Path(pretrained_model_name_or_path)
        meta_file = path / CHECKPOINT_META
        if not meta_file.is_file():
            raise FileNotFoundError(f"{meta_file} is missing: {path} is not a vidcustom checkpoint")
        meta = json.loads(meta_file.read_text())
        cfg = ModelConfig.model_validate(meta.pop("model_config"))
        for copy in LEGACY_META_COPIES:  # older checkpoints repeated these beside model_config
            meta.pop(copy, None)
        if (path / MODEL_INDEX).is_file():
            kwargs.setdefault("use_safetensors", True)
            pipe = super().from_pretrained(str(path), model_config=cfg, metadata=meta, **kwargs)
        elif (path / "transformer").is_dir() and (path / "conditioner").is_dir():
            pipe = cls._from_layout_before_diffusers_pipeline(path, cfg, meta)
        else:
            raise FileNotFoundError(f"{path} has neither {MODEL_INDEX} nor transformer/ + conditioner/: not a "
                                    "vidcustom checkpoint folder")
        if attention_design is not None:
            pipe.transformer.set_attention_design(attention_design)
        # The module's own config is what runs: the model config's copy of the design follows it.
        pipe.config.attention_design = pipe.transformer.config.attention_design
        return pipe.eval()

    @classmethod
    def _from_layout_before_diffusers_pipeline(cls, path: Path, cfg: ModelConfig, meta: dict) -> "SugarPipeline":
        """transformer/ (stock CogVideoX) + conditioner/ + image_encoders/{dino,clip}/ + vae/ text_encoder/
        tokenizer/ scheduler/ vidcustom.json -> the same pipeline, weight for weight."""
        from diffusers import CogVideoXTransformer3DModel

        logger.info("%s has the checkpoint layout from before model_index.json; loading it by hand (save_pretrained "
                    "writes the current layout)", path)
        local = cfg.model_copy(deep=True)
        local.dino.pretrained_path = str(path / "image_encoders" / "dino")
        local.clip.pretrained_path = str(path / "image_encoders" / "clip")
        local.text_encoder.pretrained_path = str(path / "text_encoder")
        local.text_encoder.tokenizer_path = str(path / "tokenizer")
        conditioner = SugarConditioner.from_pretrained(path / "conditioner", use_safetensors=True)
        c = conditioner.config
        with torch.random.fork_rng(devices=[]):  # the conditioner drawn here is replaced by the saved one
            transformer = SugarTransformer3DModel.from_cogvideox(
                CogVideoXTransformer3DModel.from_pretrained(path / "transformer", use_safetensors=True),
                attention_design=cfg.attention_design, text_sees_image=cfg.attention_text_sees_image,
                dino_dim=c.dino_dim, clip_dim=c.clip_dim, num_dino_tokens=c.num_dino_tokens,
                num_text_tokens=c.num_text_tokens, null_condition=c.null_condition, image_residual=c.image_residual,
                image_input_norm=c.image_input_norm)
        transformer.conditioner.load_state_dict(conditioner.state_dict())
        if cfg.codec.kind == "pixel_unshuffle":
            vae = PixelUnshuffleCodec.from_pretrained(path / "vae")
        else:
            vae = AutoencoderKLCogVideoX.from_pretrained(path / "vae", use_safetensors=True)
        return cls(transformer, vae, build_t5(local.text_encoder), build_tokenizer(local.text_encoder),
                   build_dino(local.dino), build_clip_vision(local.clip),
                   CogVideoXDDIMScheduler.from_pretrained(path / "scheduler"), model_config=cfg, metadata=meta)

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

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """Prompts -> T5 input ids (N, max_length), padded and truncated as the model was trained."""
        return self._prompt_encoder.tokenize(prompts)

    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        """Prompts -> T5 hidden states (N, max_length, d_model)."""
        return self._prompt_encoder(prompts)

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """latents -> uint8 (N, T, H, W, 3)."""
        return video_to_uint8(self.codec.decode(latents))

    @torch.no_grad()
    def __call__(self, image, prompt: str | list[str], num_inference_steps: int | None = None,
                 image_scale: float | None = None, text_scale: float | None = None, seed: int = 0,
                 early_dino_drop: float | None = None, negative_prompt: str | None = None, use_image: bool = True,
                 progress: bool = False, generator=None, latents: torch.Tensor | None = None,
                 output_type: str = "np", return_dict: bool = True, branch_plan: bool = True
                 ) -> SugarPipelineOutput | tuple:
        """Videos for N (identity image, prompt) pairs; sampler settings default to config.sampler.

        image: uint8 (H, W, 3) for every prompt, or (N, H, W, 3). prompt: a string or N strings.
        seed / generator / latents: the initial noise (`prepare_latents`); `seed` when neither other is given.
        use_image=False swaps the image for its null in every guidance branch (the "image dropped" ablation).
        output_type: "np" (uint8 (N, T, H, W, 3)), "pt" (float (N, T, 3, H, W) in [0, 1]) or "latent".
        branch_plan: run only the guidance branches the scales need (`model.guidance.guidance_branches`);
            False runs all three at every step, as the pipeline did before the plan (same result within float
            rounding, up to 3x the work).
        Returns `SugarPipelineOutput(frames=...)`, or the tuple `(frames,)` when return_dict is False.
        """
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
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
        noise = self.prepare_latents(len(prompts), seed, generator, latents)
        sampler = DualGuidanceSampler(self.transformer, self.scheduler)
        out = sampler(
            noise.to(self.device), dino, clip, text, uncond, num_inference_steps or s.num_inference_steps,
            s.image_scale if image_scale is None else image_scale, s.text_scale if text_scale is None else text_scale,
            negative_prompt=eq2, early_dino_drop=s.early_dino_drop if early_dino_drop is None else early_dino_drop,
            use_image=use_image, progress=progress, branch_plan=branch_plan)
        if output_type == "np":
            out = self.decode(out)
        elif output_type == "pt":
            out = (self.codec.decode(out).clamp(-1, 1) + 1) / 2
        self.maybe_free_model_hooks()
        return SugarPipelineOutput(frames=out) if return_dict else (out,)
