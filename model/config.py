"""Architecture and sampler settings, and the model presets.

One pydantic model is the single source of truth for what a checkpoint is. The run config
(components/config.py) embeds it; `vidcustom.json` in a checkpoint stores it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

AttentionDesign = Literal["a", "b", "c", "d", "e"]


class _Strict(BaseModel):
    # Unknown keys are typos: refuse them at start-up rather than silently ignore them.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TransformerConfig(_Strict):
    """Kwargs of diffusers' CogVideoXTransformer3DModel that a preset chooses."""

    num_layers: int = Field(4, ge=1)
    num_attention_heads: int = Field(4, ge=1)
    attention_head_dim: int = Field(32, ge=8)
    time_embed_dim: int = Field(64, ge=8)
    text_embed_dim: int = Field(64, ge=8, description="width of the conditioning stream (the T5 width)")
    patch_size: int = Field(2, ge=1)
    use_rotary_positional_embeddings: bool = False
    temporal_compression_ratio: int = Field(1, ge=1, description="1 for the pixel-unshuffle codec, 4 for the CogVideoX VAE")
    max_text_seq_length: int = Field(32, ge=1)


class ImageEncoderConfig(_Strict):
    """A tiny random DINOv2 / CLIP vision tower, or a local path to a pretrained one."""

    pretrained_path: str | None = None
    image_size: int = 32
    patch_size: int = 8
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 128
    projection_dim: int = 64  # CLIP only
    initializer_range: float = Field(
        0.5, gt=0, description="random towers only: init std. transformers' 0.02 leaves a random tower's output "
                               "almost the same for every image (0.2 % of the CLIP embedding's variance is between "
                               "images), so nothing could learn identity from it; 0.5 keeps 20-30 %")
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


class TextEncoderConfig(_Strict):
    """A tiny random T5 encoder with the byte-level ByT5 tokenizer, or a local pretrained T5."""

    pretrained_path: str | None = None
    tokenizer_path: str | None = None
    tokenizer: Literal["words", "byt5"] = Field(
        "words", description="tiny only: a word-level tokenizer built in code, or byte-level ByT5 (1 token per byte)")
    max_length: int = Field(24, ge=1, le=512, description="T5 tokens per prompt (CogVideoX: 226)")
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    d_ff: int = 128
    d_kv: int = 16


class CodecConfig(_Strict):
    kind: Literal["pixel_unshuffle", "cogvideox_vae"] = "pixel_unshuffle"
    factor: int = Field(4, ge=1, description="pixel-unshuffle downscale; channels = 3 * factor**2")
    pretrained_path: str | None = None


class SchedulerConfig(_Strict):
    num_train_timesteps: int = 1000
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "squaredcos_cap_v2"
    # tiny trains from scratch in pixel space: a 128-wide token cannot carry a 192-value patch of noise,
    # so it predicts the clean sample and DDIM carries the noise analytically; CogVideoX itself is v-pred.
    prediction_type: Literal["v_prediction", "epsilon", "sample"] = "sample"
    rescale_betas_zero_snr: bool = True
    timestep_spacing: Literal["trailing", "leading", "linspace"] = "trailing"
    # CogVideoX divides the SNR by this (CogVideoXDDIMScheduler). tiny needs a large shift: a token averages
    # 192 pixel values, so at the nominal SNR the model reads the image from x_t instead of the conditions.
    snr_shift_scale: float = Field(4.0, gt=0)


class SamplerConfig(_Strict):
    num_inference_steps: int = Field(20, ge=1, le=1000)
    guidance: Literal["null_text", "negative_prompt"] = Field(
        "null_text", description="eq. 1 (unconditional text = null) or eq. 2 (negative prompt)")
    # tiny after its ~5-minute demo training: guidance extrapolation (3/3) lowered held-out identity (0.016 vs
    # 0.043 at 1/1), so it samples the fully conditioned branch; the CogVideoX presets use the paper's scales.
    image_scale: float = Field(1.0, ge=0.0)
    text_scale: float = Field(1.0, ge=0.0)
    early_dino_drop: float = Field(0.0, ge=0.0, le=1.0, description="fraction of first steps that drop DINO tokens")
    negative_prompt: str = ""


class ConditioningConfig(_Strict):
    null_condition: Literal["learned", "zeros"] = "learned"
    # Independent drop probabilities (paper: 0.5 / 0.2 / 0.2).
    drop_dino: float = Field(0.5, ge=0.0, le=1.0)
    drop_clip: float = Field(0.2, ge=0.0, le=1.0)
    drop_text: float = Field(0.2, ge=0.0, le=1.0)
    image_residual: bool = Field(
        False, description="[RECON] image tokens = null + keep * projection(features), projections zero-initialised: "
                           "a pretrained transformer starts out seeing constant image tokens and the image pathway "
                           "grows from zero (ControlNet / IP-Adapter practice); false: random projections")
    image_input_norm: bool = Field(
        False, description="[RECON] LayerNorm on the DINO / CLIP features before their projections, so image "
                           "features of any scale train at the same pace as the rest of the model")


class NoiseConfig(_Strict):
    """[RECON] The diffusion noise (model/noise.py): white, plus a smooth field shared by all frames."""

    low_frequency: float = Field(
        0.0, ge=0.0, le=10.0,
        description="std of the smooth part relative to the white part (0: plain white noise). In pixel space it "
                    "keeps a subject's colour uncertain deep into the schedule, where the identity image then pays "
                    "(docs/sugar_mechanism.md); training and both samplers draw the same noise")
    grid: int = Field(4, ge=1, le=64, description="lattice cells per side of the smooth field")


class ModelConfig(_Strict):
    """Everything that defines a vidcustom checkpoint."""

    method: Literal["sugar"] = "sugar"
    preset: str = "tiny"
    height: int = Field(32, ge=8)
    width: int = Field(32, ge=8)
    num_frames: int = Field(8, ge=1)
    fps: int = Field(8, ge=1)
    attention_design: AttentionDesign = "b"
    attention_text_sees_image: bool = Field(
        False, description="[RECON] let text tokens attend to image tokens in designs (b)-(d); off by default so "
                           "the image reaches later frames only through frame 0")
    transformer: TransformerConfig = TransformerConfig()
    transformer_path: str | None = Field(
        None, description="pretrained CogVideoX transformer: a local diffusers folder, or bundled:NAME for a base "
                          "shipped in model/bundled/NAME/ (tiny: bundled:tiny-t2v); null = random initialisation")
    transformer_sha256: str | None = Field(
        None, description="sha256 of the transformer's safetensors file; checked before loading, a mismatch is "
                          "refused (pins the exact pretrained weights a run starts from)")
    dino: ImageEncoderConfig = ImageEncoderConfig()
    clip: ImageEncoderConfig = ImageEncoderConfig(mean=(0.48145466, 0.4578275, 0.40821073),
                                                  std=(0.26862954, 0.26130258, 0.27577711))
    text_encoder: TextEncoderConfig = TextEncoderConfig()
    codec: CodecConfig = CodecConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    sampler: SamplerConfig = SamplerConfig()
    conditioning: ConditioningConfig = ConditioningConfig()
    noise: NoiseConfig = NoiseConfig()

    @model_validator(mode="after")
    def _check_shapes(self) -> "ModelConfig":
        if self.codec.kind == "pixel_unshuffle":
            f, p = self.codec.factor, self.transformer.patch_size
            if self.height % (f * p) or self.width % (f * p):
                raise ValueError(
                    f"height={self.height} and width={self.width} must be multiples of codec.factor*patch_size={f * p}")
            if self.transformer.temporal_compression_ratio != 1:
                raise ValueError("transformer.temporal_compression_ratio must be 1 with the pixel_unshuffle codec")
        side = min(self.latent_size) * self.noise_args["unshuffle"]
        if self.noise.low_frequency and self.noise.grid > side:
            raise ValueError(f"noise.grid={self.noise.grid} must be at most the sample's side ({side})")
        if self.transformer.text_embed_dim != self.text_encoder.d_model and self.text_encoder.pretrained_path is None:
            raise ValueError(
                f"transformer.text_embed_dim={self.transformer.text_embed_dim} must equal "
                f"text_encoder.d_model={self.text_encoder.d_model}")
        return self

    @property
    def noise_args(self) -> dict:
        """Keyword arguments of model.noise.diffusion_noise for this model (also written to sampler.json)."""
        unshuffle = self.codec.factor if self.codec.kind == "pixel_unshuffle" else 1
        return {"low_frequency": self.noise.low_frequency, "grid": self.noise.grid, "unshuffle": unshuffle}

    @property
    def latent_channels(self) -> int:
        return 3 * self.codec.factor ** 2 if self.codec.kind == "pixel_unshuffle" else 16

    @property
    def latent_frames(self) -> int:
        r = self.transformer.temporal_compression_ratio
        return (self.num_frames - 1) // r + 1

    @property
    def latent_size(self) -> tuple[int, int]:
        f = self.codec.factor if self.codec.kind == "pixel_unshuffle" else 8
        return self.height // f, self.width // f


class ScoringConfig(_Strict):
    """Frozen judges for data filters and metrics (not part of a checkpoint)."""

    dino_path: str | None = Field(None, description="transformers ViTModel folder: DINO ViT-S/16 (DreamBooth's DINO-I "
                                  "and the data filters)")
    subject_dino_path: str | None = Field(None, description="DINO ViT-B/16 for VBench subject consistency (§3.2; "
                                          "S/16 there is a known error); default: dino_path")
    clip_path: str | None = Field(None, description="transformers CLIPModel folder (OpenAI CLIP ViT-B/32)")
    text_video_path: str | None = Field(None, description="video-text model folder for the text-video score "
                                        "(transformers X-CLIP); default: CLIP on 8 frames, mean-pooled [RECON]")
    tiny_image_size: int = 32


def _cogvideox(width: int, layers: int, heads: int, rope: bool, root: str) -> dict:
    return dict(
        preset=f"cogvideox-{'5b' if rope else '2b'}", height=480, width=720, num_frames=49,
        transformer=dict(num_layers=layers, num_attention_heads=heads, attention_head_dim=64, time_embed_dim=512,
                         text_embed_dim=4096, patch_size=2, use_rotary_positional_embeddings=rope,
                         temporal_compression_ratio=4, max_text_seq_length=226),
        transformer_path=f"{root}/transformer",
        dino=dict(pretrained_path=f"{root}/dinov2", image_size=224, patch_size=14, hidden_size=1024),
        clip=dict(pretrained_path=f"{root}/clip", image_size=224, patch_size=14, hidden_size=1024, projection_dim=768,
                  mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711)),
        text_encoder=dict(pretrained_path=f"{root}/text_encoder", tokenizer_path=f"{root}/tokenizer", max_length=226,
                          d_model=4096),
        codec=dict(kind="cogvideox_vae", pretrained_path=f"{root}/vae"),
        scheduler=dict(beta_schedule="scaled_linear", rescale_betas_zero_snr=True, prediction_type="v_prediction",
                       snr_shift_scale=3.0),
        sampler=dict(num_inference_steps=50, image_scale=2.5, text_scale=7.5),
    )


# Presets are plain dicts so params.yaml overrides merge onto them key by key.
PRESETS: dict[str, dict] = {
    # pixel space: smooth noise keeps colour for the identity image to tell (NoiseConfig, docs/decisions.md)
    "tiny": {"noise": {"low_frequency": 1.5}},
    "cogvideox-2b": _cogvideox(1920, 30, 30, rope=False, root="models/CogVideoX-2b"),
    "cogvideox-5b": _cogvideox(3072, 42, 48, rope=True, root="models/CogVideoX-5b"),
}


def model_config(preset: str = "tiny", **overrides) -> ModelConfig:
    """Build a ModelConfig from a preset name and nested overrides."""
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of {sorted(PRESETS)}")
    return ModelConfig.model_validate(deep_merge(PRESETS[preset], overrides))


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
