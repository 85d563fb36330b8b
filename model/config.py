"""Architecture and sampler settings, and the model presets.

One pydantic model is the single source of truth for what a checkpoint is. The run config
(components/config.py) embeds it; `vidcustom.json` in a checkpoint stores it.

`method` picks the customization method: "sugar" (CogVideoX; every section but `videomaker`) or "videomaker"
(AnimateDiff; the `videomaker` section plus the shared sizes height, width, num_frames, fps). The other method's
sections are kept, unread, so that `--set model.method=videomaker` works on any preset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Bases shipped with the code (model/bundled/<name>/), named "bundled:<name>" in model.transformer_path. Here,
# not in model/transformer.py, so that reading the run config (components/config.py) needs no torch.
BUNDLED = Path(__file__).resolve().parent / "bundled"
BUNDLED_PREFIX = "bundled:"

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
    """[RECON] The diffusion noise (model/noise.py): white, plus a smooth field shared by all frames. SUGAR only:
    VideoMaker works in an SD VAE's latent space and draws white noise, as AnimateDiff was trained."""

    low_frequency: float = Field(
        0.0, ge=0.0, le=10.0,
        description="std of the smooth part relative to the white part (0: plain white noise). In pixel space it "
                    "keeps a subject's colour uncertain deep into the schedule, where the identity image then pays "
                    "(docs/sugar_mechanism.md); training and both samplers draw the same noise")
    grid: int = Field(4, ge=1, le=64, description="lattice cells per side of the smooth field")


VIDEOMAKER_LATENT_CHANNELS = 4  # SD1.5's VAE and UNet (the tiny ones copy it)
MOTION_MAX_FRAMES = 32  # positions of the motion modules' table: tiny_unet and animatediff-motion-adapter-v1-5-3
SD15_VAE_FACTOR, SD15_UNET_FACTOR = 8, 8  # a pretrained SD1.5 VAE downsamples 8x, its UNet 3 more times


class DDIMConfig(_Strict):
    """VideoMaker's noise schedule and sampler (METHOD_NOTES §2.7, V-code `inference.py`): diffusers' DDIMScheduler
    with AnimateDiff's linear betas. Training noises with the same schedule (`add_noise`)."""

    num_train_timesteps: int = Field(1000, ge=1)
    beta_start: float = Field(0.00085, gt=0, lt=1, description="SD1.5's")
    beta_end: float = Field(0.012, gt=0, lt=1, description="SD1.5's")
    beta_schedule: Literal["linear", "scaled_linear"] = Field(
        "linear", description="AnimateDiff's motion modules were trained on linear betas (SD1.5 itself: scaled_linear)")
    timestep_spacing: Literal["linspace", "leading", "trailing"] = "linspace"
    steps_offset: int = Field(1, ge=0)
    clip_sample: bool = False
    set_alpha_to_one: bool = Field(False, description="SD1.5's scheduler config")
    prediction_type: Literal["epsilon"] = Field(
        "epsilon", description="GIRL's terms are noise predictions (§2.4): no other target is implemented")

    @model_validator(mode="after")
    def _betas_rise(self) -> "DDIMConfig":
        if self.beta_end <= self.beta_start:
            raise ValueError(f"beta_end={self.beta_end} must exceed beta_start={self.beta_start}")
        return self


class VideoMakerConfig(_Strict):
    """VideoMaker on AnimateDiff (METHOD_NOTES §2), read when `method` is "videomaker".

    Paths are local diffusers / transformers folders; an `s3://` URI is accepted here and must be made local by
    the step that builds the pipeline (components.storage.local_path: model/ reaches no object store). A path left
    null builds a tiny random module from the sizes below (the diffusers testing convention), so `tiny` with
    `method=videomaker` runs on a laptop CPU.
    """

    unet_path: str | None = Field(
        None, description="SD1.5 UNet2DConditionModel folder (the paper: Realistic_Vision_V5.1_noVAE/unet), inflated "
                          "with motion_adapter_path; or a UNetMotionModel folder (a trained VideoMaker's unet/), used "
                          "as is. null: a tiny random UNetMotionModel")
    motion_adapter_path: str | None = Field(
        None, description="diffusers MotionAdapter folder (the paper: animatediff-motion-adapter-v1-5-3)")
    vae_path: str | None = Field(None, description="AutoencoderKL folder (SD1.5's; Realistic Vision ships none)")
    text_encoder_path: str | None = Field(None, description="CLIPTextModel folder (SD1.5's CLIP ViT-L/14 text tower)")
    tokenizer_path: str | None = Field(None, description="CLIP tokenizer folder; null: the tiny word tokenizer")
    max_length: int = Field(32, ge=2, le=512, description="tokens per prompt (CLIP: 77)")
    # tiny sizes (used only where the matching path is null)
    vae_block_out_channels: tuple[int, ...] = Field(
        (16, 32, 32), min_length=1, description="tiny VAE: one block per entry, each but the last downsamples 2x "
                                                "(three blocks: 32x32 frames -> 8x8 latents); multiples of 8")
    text_hidden_size: int = Field(32, ge=8, description="tiny CLIP text width, also the tiny UNet's cross-attention width")
    text_num_layers: int = Field(2, ge=1)
    text_num_heads: int = Field(4, ge=1)
    text_intermediate_size: int = Field(64, ge=8)
    # the method (§2.4, §2.5)
    girl_alpha: float = Field(0.01, ge=0.0, le=1.0, description="GIRL: the reference is noised at t' = floor(alpha*t)")
    girl_beta: float = Field(0.1, ge=0.0, description="GIRL: loss = L_video + beta * L_reg")
    update_motion: bool = Field(True, description="train the motion modules with the spatial self-attention (the "
                                                  "paper's final model, Table 3 row 4); false: attn1 only")
    reference_drop: float = Field(
        0.1, ge=0.0, le=1.0, description="[RECON] probability that a training sample's reference is dropped to the "
                                         "all-zeros latent (the unconditional input CFG uses, §2.5); the paper does "
                                         "not state the rate; 0.1 is the rate SD1.5 dropped its text condition at")
    # sampling (§2.7); the pipeline's `config.sampler` mirrors these for code written for SUGAR
    guidance_scale: float = Field(8.0, ge=0.0, description="single-scale CFG: eps_u + s * (eps_c - eps_u)")
    num_inference_steps: int = Field(30, ge=1, le=1000)
    negative_prompt: str = Field(
        "worst quality, low quality, blurry, deformed, watermark",
        description="[RECON] the unconditional branch's text; the paper's code uses a long fixed string, this is a "
                    "short one of the same kind")
    scheduler: DDIMConfig = DDIMConfig()

    @model_validator(mode="after")
    def _check_sizes(self) -> "VideoMakerConfig":
        if self.motion_adapter_path and not self.unet_path:
            raise ValueError("motion_adapter_path is set but unet_path is not: the adapter inflates a pretrained "
                             "SD1.5 UNet; set unet_path too")
        odd = [c for c in self.vae_block_out_channels if c % 8]
        if odd:
            raise ValueError(f"vae_block_out_channels={list(self.vae_block_out_channels)}: {odd} are not "
                             "multiples of 8 (the tiny VAE's group-norm groups)")
        if self.text_hidden_size % self.text_num_heads:
            raise ValueError(f"text_hidden_size={self.text_hidden_size} must be a multiple of "
                             f"text_num_heads={self.text_num_heads}")
        return self

    @property
    def vae_scale_factor(self) -> int:
        return SD15_VAE_FACTOR if self.vae_path else 2 ** (len(self.vae_block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        """What frame sides must divide by: the VAE's factor times the UNet's downsampling (tiny_unet: 2x)."""
        return self.vae_scale_factor * (SD15_UNET_FACTOR if self.unet_path else 2)

    def as_sampler(self) -> SamplerConfig:
        """These sampling defaults as a SamplerConfig, for code that reads SUGAR's `sampler` section."""
        return SamplerConfig(num_inference_steps=self.num_inference_steps, guidance="negative_prompt",
                             image_scale=self.guidance_scale, text_scale=self.guidance_scale,
                             negative_prompt=self.negative_prompt)


class ModelConfig(_Strict):
    """Everything that defines a vidcustom checkpoint."""

    method: Literal["sugar", "videomaker"] = Field(
        "sugar", description="sugar: SUGAR on CogVideoX; videomaker: VideoMaker on AnimateDiff (reads `videomaker`)")
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
    videomaker: VideoMakerConfig = VideoMakerConfig()

    @model_validator(mode="after")
    def _check_shapes(self) -> "ModelConfig":
        if self.method == "videomaker":
            return self._check_videomaker_shapes()
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

    def _check_videomaker_shapes(self) -> "ModelConfig":
        m = self.videomaker.size_multiple
        if self.height % m or self.width % m:
            raise ValueError(f"height={self.height} and width={self.width} must be multiples of {m} with "
                             f"method=videomaker (the VAE's {self.videomaker.vae_scale_factor}x times the UNet's "
                             "downsampling)")
        if self.num_frames + 1 > MOTION_MAX_FRAMES:
            raise ValueError(f"num_frames={self.num_frames} is too many for method=videomaker: the frames plus the "
                             f"reference must fit the motion modules' {MOTION_MAX_FRAMES} positions; set num_frames "
                             f"to at most {MOTION_MAX_FRAMES - 1}")
        return self

    # The latent shape (N, latent_frames, latent_channels, *latent_size) and its noise, for either method.
    @property
    def noise_args(self) -> dict:
        """Keyword arguments of model.noise.diffusion_noise for this model (also written to sampler.json)."""
        if self.method == "videomaker":  # white noise in the SD VAE's latent space (NoiseConfig)
            return {"low_frequency": 0.0, "grid": self.noise.grid, "unshuffle": 1}
        unshuffle = self.codec.factor if self.codec.kind == "pixel_unshuffle" else 1
        return {"low_frequency": self.noise.low_frequency, "grid": self.noise.grid, "unshuffle": unshuffle}

    @property
    def latent_channels(self) -> int:
        if self.method == "videomaker":
            return VIDEOMAKER_LATENT_CHANNELS
        return 3 * self.codec.factor ** 2 if self.codec.kind == "pixel_unshuffle" else 16

    @property
    def latent_frames(self) -> int:
        if self.method == "videomaker":  # the VAE is per frame
            return self.num_frames
        r = self.transformer.temporal_compression_ratio
        return (self.num_frames - 1) // r + 1

    @property
    def latent_size(self) -> tuple[int, int]:
        if self.method == "videomaker":
            f = self.videomaker.vae_scale_factor
        else:
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


def _animatediff(root: str) -> dict:
    """VideoMaker's scale (METHOD_NOTES §2.1): 512x512, 16 frames, from local copies of the paper's bases.
    root/unet, text_encoder/, tokenizer/: Realistic_Vision_V5.1_noVAE's folders; root/motion_adapter:
    animatediff-motion-adapter-v1-5-3; root/vae: an SD1.5 VAE (the base ships none) [GUESS: sd-vae-ft-mse]."""
    return dict(
        preset="animatediff-sd15", method="videomaker", height=512, width=512, num_frames=16, fps=8,
        videomaker=dict(unet_path=f"{root}/unet", motion_adapter_path=f"{root}/motion_adapter", vae_path=f"{root}/vae",
                        text_encoder_path=f"{root}/text_encoder", tokenizer_path=f"{root}/tokenizer", max_length=77),
    )


# Presets are plain dicts so params.yaml overrides merge onto them key by key.
PRESETS: dict[str, dict] = {
    # pixel space: smooth noise keeps colour for the identity image to tell (NoiseConfig, docs/decisions.md)
    "tiny": {"noise": {"low_frequency": 1.5}},
    "cogvideox-2b": _cogvideox(1920, 30, 30, rope=False, root="models/CogVideoX-2b"),
    "cogvideox-5b": _cogvideox(3072, 42, 48, rope=True, root="models/CogVideoX-5b"),
    "animatediff-sd15": _animatediff(root="models/animatediff-sd15"),
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
