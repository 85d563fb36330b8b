"""Frozen encoders from transformers: DINOv2 and CLIP vision for the identity image, T5 for the prompt.

Each loads from a local `pretrained_path` when the config gives one; otherwise it is a tiny random
model built from a transformers config in code (the transformers testing convention), seeded so
that every step of a run builds the same weights. Nothing is fetched from a hub.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import ImageEncoderConfig, ModelConfig, TextEncoderConfig

TINY_SEED = 0  # random tiny encoders are a function of the config and this seed


def _seeded(build, seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _frozen(module: nn.Module) -> nn.Module:
    module.requires_grad_(False)
    return module.eval()


def build_dino(cfg: ImageEncoderConfig) -> nn.Module:
    from transformers import Dinov2Config, Dinov2Model

    if cfg.pretrained_path:
        return _frozen(Dinov2Model.from_pretrained(cfg.pretrained_path, use_safetensors=True))
    conf = Dinov2Config(image_size=cfg.image_size, patch_size=cfg.patch_size, hidden_size=cfg.hidden_size,
                        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
                        intermediate_size=cfg.intermediate_size, initializer_range=cfg.initializer_range)
    return _frozen(_seeded(lambda: Dinov2Model(conf), TINY_SEED))


def build_clip_vision(cfg: ImageEncoderConfig) -> nn.Module:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    if cfg.pretrained_path:
        return _frozen(CLIPVisionModelWithProjection.from_pretrained(cfg.pretrained_path, use_safetensors=True))
    conf = CLIPVisionConfig(image_size=cfg.image_size, patch_size=cfg.patch_size, hidden_size=cfg.hidden_size,
                            num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
                            intermediate_size=cfg.intermediate_size, projection_dim=cfg.projection_dim,
                            # CLIP scales most of its init by initializer_factor (1.0 <-> std 0.02)
                            initializer_range=cfg.initializer_range, initializer_factor=cfg.initializer_range / 0.02)
    return _frozen(_seeded(lambda: CLIPVisionModelWithProjection(conf), TINY_SEED + 1))


# The tiny preset's word vocabulary: short prompts of subjects, colours, motions, styles and scenes.
# Unknown words map to <unk>; ids 0-2 follow T5 (pad, eos, unk).
TINY_WORDS = sorted(set("""
a an the of on in to at as and with which is now its into from over under against while , .
background backdrop scene plain drawn outline sketch pencil pixel art style version texture striped dotted solid
stripes dots turned becomes become changed colour color
black white gray grey brown dark light red green blue yellow cyan magenta orange purple pink
left right up down upward downward upwards downwards forward backward around quickly slowly fast slow
walks walk runs run jumps jump spins spin slides slide floats float zooms zoom drifts drift rolls roll
flies fly swims swim drives drive moves move hops hop
cat dog bird fish horse rabbit robot car ball box vase lamp cup chair toy person man woman
- one retro covered polka checkered floor wall front moving comes closer toward away camera viewer recedes distance
darts races speeds glides leaps turns twirls
""".split()))
TINY_VOCAB_SIZE = 3 + len(TINY_WORDS)


def tiny_word_tokenizer():
    """A word-level tokenizer built in code with `tokenizers` (nothing to download), saved like any other."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(TINY_WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def build_tokenizer(cfg: TextEncoderConfig):
    from transformers import AutoTokenizer, ByT5Tokenizer

    if cfg.tokenizer_path:
        return AutoTokenizer.from_pretrained(cfg.tokenizer_path)
    if cfg.tokenizer == "byt5":
        return ByT5Tokenizer()  # byte-level: needs no vocabulary file either
    return tiny_word_tokenizer()


def build_t5(cfg: TextEncoderConfig) -> nn.Module:
    from transformers import T5Config, T5EncoderModel

    if cfg.pretrained_path:
        return _frozen(T5EncoderModel.from_pretrained(cfg.pretrained_path, use_safetensors=True))
    conf = T5Config(vocab_size=384 if cfg.tokenizer == "byt5" else TINY_VOCAB_SIZE, d_model=cfg.d_model, d_kv=cfg.d_kv, d_ff=cfg.d_ff, num_layers=cfg.num_layers,
                    num_heads=cfg.num_heads)
    return _frozen(_seeded(lambda: T5EncoderModel(conf), TINY_SEED + 2))


def preprocess(images: torch.Tensor, size: int, mean, std, crop: bool = False,
               mode: str = "bilinear") -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> normalised (N, 3, size, size).

    crop=False resizes to size x size; crop=True resizes the shorter side then centre-crops (CLIP's way).
    """
    if crop:
        h, w = (int(x) for x in images.shape[-2:])  # plain ints, also while tracing for ONNX
        s = size / min(h, w)
        images = F.interpolate(images, size=(max(size, round(h * s)), max(size, round(w * s))), mode=mode,
                               align_corners=False)
        top, left = (images.shape[-2] - size) // 2, (images.shape[-1] - size) // 2
        images = images[..., top:top + size, left:left + size]
    elif tuple(int(x) for x in images.shape[-2:]) != (size, size):
        images = F.interpolate(images, size=(size, size), mode=mode, align_corners=False)
    m = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    s_ = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - m) / s_


def to_unit_tensor(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) arrays or float (N, 3, H, W) tensors in [0, 1] -> float (N, 3, H, W) in [0, 1]."""
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected uint8 images (N, H, W, 3), got {images.dtype} {images.shape}")
        return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return images.float()


class ImageEncoders(nn.Module):
    """Identity image -> DINOv2 tokens (patches + CLS) and the CLIP pooled image embedding.

    Input: float (N, 3, H, W) in [0, 1]. Output: dino (N, 1 + P, D_dino), clip (N, 1, D_clip).
    """

    def __init__(self, dino: nn.Module, clip: nn.Module, dino_cfg: ImageEncoderConfig, clip_cfg: ImageEncoderConfig):
        super().__init__()
        self.dino, self.clip = dino, clip
        self.dino_cfg, self.clip_cfg = dino_cfg, clip_cfg

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> "ImageEncoders":
        return cls(build_dino(cfg.dino), build_clip_vision(cfg.clip), cfg.dino, cfg.clip)

    @property
    def dino_dim(self) -> int:
        return self.dino.config.hidden_size

    @property
    def clip_dim(self) -> int:
        return self.clip.config.projection_dim

    def num_dino_tokens(self) -> int:
        c = self.dino.config
        return 1 + (self.dino_cfg.image_size // c.patch_size) ** 2

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.dino_cfg
        dino = self.dino(pixel_values=preprocess(images, d.image_size, d.mean, d.std)).last_hidden_state
        c = self.clip_cfg
        clip = self.clip(pixel_values=preprocess(images, c.image_size, c.mean, c.std, crop=True)).image_embeds
        return dino, clip.unsqueeze(1)


class TextEncoder(nn.Module):
    """Prompts -> T5 hidden states (N, max_length, d_model), padded to a fixed length as CogVideoX does."""

    def __init__(self, t5: nn.Module, tokenizer, cfg: TextEncoderConfig):
        super().__init__()
        self.t5, self.tokenizer, self.cfg = t5, tokenizer, cfg

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> "TextEncoder":
        return cls(build_t5(cfg.text_encoder), build_tokenizer(cfg.text_encoder), cfg.text_encoder)

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        for p in prompts:
            if not isinstance(p, str):
                raise TypeError(f"prompt must be a string, got {type(p).__name__}: {p!r}")
        ids = self.tokenizer(list(prompts), padding="max_length", max_length=self.cfg.max_length, truncation=True,
                             add_special_tokens=True, return_tensors="pt", return_overflowing_tokens=False).input_ids
        too_long = [p for p in prompts if len(self.tokenizer(p).input_ids) > self.cfg.max_length]
        if too_long:
            import logging

            logging.getLogger(__name__).warning(
                "%d prompt(s) exceed text_encoder.max_length=%d tokens and were truncated, e.g. %r", len(too_long),
                self.cfg.max_length, too_long[0][:80])
        return ids

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> torch.Tensor:
        ids = self.tokenize(prompts).to(next(self.t5.parameters()).device)
        return self.t5(input_ids=ids).last_hidden_state
