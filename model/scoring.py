"""Frozen judges for data filters and metrics: a DINO image encoder and a CLIP image/text pair.

VBench and DreamBooth use DINO ViT-B/16 or ViT-S/16 (transformers `ViTModel`, CLS after the final
norm) and OpenAI CLIP ViT-B/32 (`CLIPModel`); give their local folders in `ScoringConfig`. Without
paths the judges are tiny random models: the numbers then only prove the plumbing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import TINY_SEED, _frozen, _seeded, build_tokenizer
from .config import ScoringConfig, TextEncoderConfig

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


class ScoringEncoders(nn.Module):
    """`dino(x)` / `clip_image(x)`: preprocessed (N, 3, S, S) -> L2-normalised (N, D); `clip_text(list)` likewise."""

    def __init__(self, cfg: ScoringConfig | None = None):
        super().__init__()
        from transformers import CLIPConfig, CLIPModel, CLIPTokenizer, ViTConfig, ViTModel

        cfg = cfg or ScoringConfig()
        self.plumbing_only = not (cfg.dino_path and cfg.clip_path)
        s = cfg.tiny_image_size
        if cfg.dino_path:
            self.dino_model = _frozen(ViTModel.from_pretrained(cfg.dino_path, add_pooling_layer=False,
                                                               use_safetensors=True))
        else:
            conf = ViTConfig(image_size=s, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                             intermediate_size=128)
            self.dino_model = _frozen(_seeded(lambda: ViTModel(conf, add_pooling_layer=False), TINY_SEED + 10))
        if cfg.clip_path:
            self.clip_model = _frozen(CLIPModel.from_pretrained(cfg.clip_path, use_safetensors=True))
            self.tokenizer = CLIPTokenizer.from_pretrained(cfg.clip_path)
        else:
            conf = CLIPConfig(
                text_config=dict(vocab_size=384, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=128, max_position_embeddings=77, eos_token_id=1, pad_token_id=0,
                                 bos_token_id=0),
                vision_config=dict(image_size=s, patch_size=8, hidden_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, intermediate_size=128),
                projection_dim=64)
            self.clip_model = _frozen(_seeded(lambda: CLIPModel(conf), TINY_SEED + 11))
            self.tokenizer = build_tokenizer(TextEncoderConfig())
        # VBench's subject consistency uses DINO ViT-B/16, DreamBooth's DINO-I ViT-S/16 (METHOD_NOTES §3.6).
        self.subject_dino_model = (_frozen(ViTModel.from_pretrained(cfg.subject_dino_path, add_pooling_layer=False,
                                                                    use_safetensors=True))
                                   if cfg.subject_dino_path else self.dino_model)
        self.dino_size = self.dino_model.config.image_size
        self.subject_dino_size = self.subject_dino_model.config.image_size
        self.clip_size = self.clip_model.config.vision_config.image_size

    @torch.no_grad()
    def dino(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self._cls(self.dino_model, pixel_values)

    @torch.no_grad()
    def subject_dino(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self._cls(self.subject_dino_model, pixel_values)

    @staticmethod
    def _cls(model, pixel_values: torch.Tensor) -> torch.Tensor:
        # DINO's own interpolation handles non-square inputs (VBench keeps the aspect ratio).
        out = model(pixel_values=pixel_values, interpolate_pos_encoding=True).last_hidden_state[:, 0]
        return F.normalize(out.float(), dim=-1)

    @torch.no_grad()
    def clip_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.clip_model.get_image_features(pixel_values=pixel_values)
        out = getattr(out, "pooler_output", out)
        return F.normalize(out.float(), dim=-1)

    @torch.no_grad()
    def clip_text(self, texts: list[str]) -> torch.Tensor:
        tok = self.tokenizer(list(texts), padding="max_length", max_length=77, truncation=True, return_tensors="pt")
        out = self.clip_model.get_text_features(input_ids=tok.input_ids, attention_mask=tok.attention_mask)
        out = getattr(out, "pooler_output", out)
        return F.normalize(out.float(), dim=-1)
