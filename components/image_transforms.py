"""Image transforms of the evaluation references (VBench, DreamBooth, OpenAI CLIP), re-done on tensors.

torchvision semantics without torchvision: `resize_shorter` (Resize(int)) scales the shorter side and
truncates the longer with int(); `center_crop` (CenterCrop) rounds the offset; `normalize` is
(x - mean) / std per channel. Inputs of the named transforms are uint8 (N, H, W, 3) RGB arrays; outputs
are float (N, 3, H', W') tensors ready for a DINO / CLIP image encoder.

| transform | used by | recipe |
|---|---|---|
| `dino_transform` | VBench subject consistency | shorter side bilinear (no antialias), no crop, ImageNet norm |
| `clip_transform` | VBench background consistency | shorter side bicubic (no antialias), CenterCrop, CLIP norm |
| `clip_transform_uint8` | VBench overall_consistency (text-video) | as `clip_transform`, resized on uint8 levels |
| `dreambooth_dino_transform` | DINO-I | Resize(256/224 * size) bicubic + antialias, PIL uint8, CenterCrop, ImageNet norm |
| `dreambooth_clip_transform` | CLIP-T / CLIP-I / T.Cons | Resize(size) bicubic + antialias, PIL uint8, CenterCrop, CLIP norm |

Shared (no step imports): the evaluate step's metrics and its text-video score both use it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from model.encoders import to_unit_tensor
from model.scoring import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD


def resize_shorter(x: torch.Tensor, size: int, mode: str, antialias: bool) -> torch.Tensor:
    """(..., H, W) -> shorter side `size`, longer side int(size * long / short); unchanged (same object) if already so."""
    h, w = x.shape[-2:]
    if h <= w:
        new_h, new_w = size, int(size * w / h)
    else:
        new_h, new_w = int(size * h / w), size
    if (new_h, new_w) == (h, w):
        return x
    return F.interpolate(x, size=(new_h, new_w), mode=mode, align_corners=False, antialias=antialias)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """(..., H, W) -> (..., size, size) around the centre, offsets rounded as torchvision's CenterCrop."""
    h, w = x.shape[-2:]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return x[..., top:top + size, left:left + size]


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """(N, 3, H, W) -> (x - mean) / std per channel."""
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s


def as_pil_uint8(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats back on the uint8 grid: the DreamBooth/ImagenHub transforms resize PIL images, whose output is uint8."""
    return (x * 255.0).clamp(0, 255).round() / 255.0


def dino_transform(images: np.ndarray, size: int) -> torch.Tensor:
    """VBench `dino_transform` (§3.2): uint8 (N, H, W, 3) -> (N, 3, size, ~size*aspect).

    Shorter side to `size`, bilinear, antialias=False, no centre crop (DINO interpolates its
    position embeddings), /255, ImageNet normalisation.
    """
    return normalize(resize_shorter(to_unit_tensor(images), size, "bilinear", False), IMAGENET_MEAN, IMAGENET_STD)


def clip_transform(images: np.ndarray, size: int) -> torch.Tensor:
    """VBench `clip_transform` (§3.3): shorter side bicubic, antialias=False, CenterCrop, /255, CLIP norm."""
    x = center_crop(resize_shorter(to_unit_tensor(images), size, "bicubic", False), size)
    return normalize(x, CLIP_MEAN, CLIP_STD)


def clip_transform_uint8(frames: np.ndarray, size: int, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    """VBench `clip_transform(size)` applied to uint8 frames, as overall_consistency does: (N, H, W, 3) -> (N, 3, size, size).

    Bicubic resize of the shorter side (antialias=False), rounded and clamped back to uint8 levels (torchvision
    on a uint8 tensor), CenterCrop, /255, normalisation. Background consistency reads float frames instead, so
    its `clip_transform` does not round.
    """
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    resized = resize_shorter(x, size, "bicubic", False)
    if resized is not x:
        resized = resized.clamp(0, 255).round()
    return normalize(center_crop(resized, size) / 255.0, mean, std)


def dreambooth_dino_transform(images: np.ndarray, size: int) -> torch.Tensor:
    """DreamBooth DINO (§3.5): Resize(256*size/224, bicubic) -> CenterCrop(size) -> ImageNet norm."""
    x = resize_shorter(to_unit_tensor(images), int(round(256 * size / 224)), "bicubic", True)
    return normalize(center_crop(as_pil_uint8(x), size), IMAGENET_MEAN, IMAGENET_STD)


def dreambooth_clip_transform(images: np.ndarray, size: int) -> torch.Tensor:
    """OpenAI CLIP preprocess (§3.5): Resize(size, bicubic) -> CenterCrop(size) -> CLIP norm."""
    x = resize_shorter(to_unit_tensor(images), size, "bicubic", True)
    return normalize(center_crop(as_pil_uint8(x), size), CLIP_MEAN, CLIP_STD)
