"""Per-video metrics with the reference implementations' preprocessing and aggregation (METHOD_NOTES §3).

One public function per metric (per video), plus the reference's aggregation over videos:

| metric | per video | over videos | reference |
|---|---|---|---|
| dynamic degree (§3.1) | `dynamic_degree_video` / `dynamic_degree_path` | `dynamic_degree` (fraction dynamic) | VBench, RAFT |
| subject consistency (§3.2) | `subject_consistency` (DINO, clamp) | `aggregate_consistency` (frame-weighted) | VBench |
| background consistency (§3.3) | `background_consistency` (CLIP, clamp) | `aggregate_consistency` (frame-weighted) | VBench |
| text-video (§3.4) | `text_video.text_video_score` | `text_video.text_video_mean` | VBench overall_consistency |
| CLIP-T / CLIP-I / DINO-I (§3.5) | `clip_t` / `clip_i` / `dino_i` | mean over videos | DreamBooth / VGen |
| T.Cons (§3.5) | `temporal_consistency` (CLIP, consecutive) | mean over videos | VGen |

`METRICS` names them all; `metric_suite.evaluate_videos` runs any subset over a list of videos. Videos are
uint8 (T, H, W, 3) RGB arrays (`video_io.load_video` reads files as VBench does); the image transforms are
`components.image_transforms`, the flow rules `components.optical_flow`. Encoders are `model.scoring.ScoringEncoders`
(or any object with `dino`, `clip_image`, `clip_text`, `dino_size`, `clip_size`). With the tiny random
judges (`encoders.plumbing_only`) the numbers only prove the plumbing. CLIP-T/CLIP-I/DINO-I are plain
cosines: no 2.5x CLIPScore scaling, no clamping (§3.5 asks to state this).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from components.optical_flow import FarnebackFlow, FlowEstimator, dynamic_check
from components.image_transforms import (clip_transform, dino_transform, dreambooth_clip_transform,
                                         dreambooth_dino_transform)

from .video_io import read_frame_folder, read_mp4

METRICS = ("dynamic_degree", "subject_consistency", "background_consistency", "temporal_consistency",
           "clip_t", "clip_i", "dino_i", "text_video")


def _features(encode: Callable[[torch.Tensor], torch.Tensor], transform, images: np.ndarray, size: int,
              batch_size: int) -> torch.Tensor:
    """Transform and encode in chunks so a 49-frame 480p video never sits in memory as float all at once."""
    return torch.cat([encode(transform(images[i:i + batch_size], size)).float()
                      for i in range(0, len(images), batch_size)])


def _references(images) -> list[np.ndarray]:
    """One (H, W, 3) image, a (K, H, W, 3) stack or a list of images (sizes may differ) -> list of (1, H, W, 3)."""
    if isinstance(images, np.ndarray):
        return [images[None]] if images.ndim == 3 else [im[None] for im in images]
    return [np.asarray(im)[None] for im in images]


def check_video(video: np.ndarray, min_frames: int = 2) -> np.ndarray:
    """`video` as a uint8 (T, H, W, 3) array with at least `min_frames` frames, else ValueError."""
    video = np.asarray(video)
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"expected a uint8 video (T, H, W, 3), got {video.dtype} {video.shape}")
    if len(video) < min_frames:
        raise ValueError(f"this metric needs at least {min_frames} frames, got {len(video)}")
    return video


# ---------------------------------------------------------------------------------------------------
# Formulas on L2-normalised features
# ---------------------------------------------------------------------------------------------------

def consistency_terms(features: torch.Tensor) -> torch.Tensor:
    """(T, D) normalised -> (T-1,) terms ½[max(0,<f_{t-1},f_t>) + max(0,<f_1,f_t>)], t = 2..T (§3.2)."""
    prev = (features[:-1] * features[1:]).sum(-1).clamp(min=0)
    first = (features[:1] * features[1:]).sum(-1).clamp(min=0)
    return (prev + first) / 2


def mean_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean of <a_k, b_f> over all (k, f) pairs: per-pair cosines averaged, never a re-normalised mean (§3.6)."""
    return (a @ b.T).mean().item()


def consecutive_cosine(features: torch.Tensor) -> float:
    """T.Cons = mean_f <g_f, g_{f+1}> (§3.5)."""
    return (features[:-1] * features[1:]).sum(-1).mean().item()


# ---------------------------------------------------------------------------------------------------
# VBench subject / background consistency (§3.2, §3.3)
# ---------------------------------------------------------------------------------------------------

@dataclass
class ConsistencyResult:
    """Per-video score S = mean(terms) and its T-1 per-frame terms (kept for frame-weighted aggregation)."""

    score: float
    terms: list[float] = field(repr=False)


def _consistency(features: torch.Tensor) -> ConsistencyResult:
    terms = consistency_terms(features)
    return ConsistencyResult(terms.mean().item(), terms.tolist())


def subject_consistency(video: np.ndarray, encoders, size: int | None = None,
                        batch_size: int = 64) -> ConsistencyResult:
    """VBench subject consistency (§3.2): DINO features of every frame via `dino_transform(size)`.

    `size` defaults to `encoders.dino_size` (224 for DINO ViT-B/16).
    """
    video = check_video(video)
    # VBench's DINO ViT-B/16 (encoders.subject_dino), not DreamBooth's S/16 used for DINO-I.
    encode = getattr(encoders, "subject_dino", encoders.dino)
    feats = _features(encode, dino_transform, video, size or getattr(encoders, "subject_dino_size",
                                                                     encoders.dino_size), batch_size)
    return _consistency(feats)


def background_consistency(video: np.ndarray, encoders, size: int | None = None,
                           batch_size: int = 64) -> ConsistencyResult:
    """VBench background consistency (§3.3): CLIP image features via `clip_transform(size)`."""
    video = check_video(video)
    feats = _features(encoders.clip_image, clip_transform, video, size or encoders.clip_size, batch_size)
    return _consistency(feats)


def aggregate_consistency(results: Sequence[ConsistencyResult], weighting: str = "frame") -> float:
    """Dimension score over videos (§3.2/§3.3).

    "frame": sum of all per-frame terms / their count, VBench's reported number (longer videos
    weigh more). "video": mean of per-video scores, what VBench's multi-process subject
    consistency reports.
    """
    if not results:
        raise ValueError("no videos to aggregate")
    if weighting == "frame":
        return float(sum(sum(r.terms) for r in results) / sum(len(r.terms) for r in results))
    if weighting == "video":
        return float(np.mean([r.score for r in results]))
    raise ValueError(f"weighting must be 'frame' or 'video', got {weighting!r}")


# ---------------------------------------------------------------------------------------------------
# DreamBooth / VGen CLIP-T, CLIP-I, DINO-I, T.Cons (§3.5)
# ---------------------------------------------------------------------------------------------------

def clip_frame_features(video, encoders, batch_size: int = 64) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, D) CLIP image features after the DreamBooth/OpenAI CLIP preprocess."""
    return _features(encoders.clip_image, dreambooth_clip_transform, video, encoders.clip_size, batch_size)


def dino_image_features(images, encoders, batch_size: int = 64) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, D) DreamBooth DINO (ViT-S/16, `encoders.dino`) features."""
    return _features(encoders.dino, dreambooth_dino_transform, images, encoders.dino_size, batch_size)


def reference_features(references, encode) -> torch.Tensor:
    """Reference image(s) (see `_references`) -> (K, D): `encode` on each (1, H, W, 3) image, concatenated."""
    return torch.cat([encode(r) for r in _references(references)])


def temporal_consistency(video: np.ndarray, encoders, batch_size: int = 64) -> float:
    """CLIP T.Cons (§3.5): mean cosine of consecutive frames' CLIP features."""
    return consecutive_cosine(clip_frame_features(check_video(video), encoders, batch_size))


def clip_t(video: np.ndarray, prompt: str, encoders, batch_size: int = 64) -> float:
    """CLIP-T (§3.5): mean over frames of cos(text, frame). Give the natural prompt, no placeholder token."""
    text = encoders.clip_text([prompt]).float()
    return mean_cosine(text, clip_frame_features(check_video(video, 1), encoders, batch_size))


def clip_i(video: np.ndarray, references, encoders, batch_size: int = 64) -> float:
    """CLIP-I (§3.5): mean over reference images k and frames f of cos(r_k, g_f)."""
    refs = reference_features(references, lambda r: clip_frame_features(r, encoders, batch_size))
    return mean_cosine(refs, clip_frame_features(check_video(video, 1), encoders, batch_size))


def dino_i(video: np.ndarray, references, encoders, batch_size: int = 64) -> float:
    """DINO-I (§3.5): as CLIP-I with DINO features (DreamBooth uses ViT-S/16, not VBench's B/16)."""
    refs = reference_features(references, lambda r: dino_image_features(r, encoders, batch_size))
    return mean_cosine(refs, dino_image_features(check_video(video, 1), encoders, batch_size))


# ---------------------------------------------------------------------------------------------------
# VBench dynamic degree (§3.1)
# ---------------------------------------------------------------------------------------------------

@dataclass
class DynamicResult:
    """One video's verdict, with the numbers it came from."""

    dynamic: bool
    pair_scores: list[float]
    thres: float
    count_num: int
    n_frames: int  # frames after fps sampling


def frame_interval(fps: float) -> int:
    """VBench samples mp4s to ~8 fps: every `max(1, round(fps/8))`-th frame (§3.1)."""
    return max(1, round(fps / 8))


def _judge(frames: Sequence[np.ndarray], estimator: FlowEstimator | None) -> DynamicResult:
    dynamic, scores, thres, count_num = dynamic_check(frames, estimator or FarnebackFlow())
    return DynamicResult(dynamic, scores, thres, count_num, len(frames))


def dynamic_degree_video(video: np.ndarray, fps: float, estimator: FlowEstimator | None = None) -> DynamicResult:
    """In-memory (T, H, W, 3) uint8 video and its frame rate, sampled as VBench samples an mp4."""
    video = check_video(video, 1)
    return _judge(video[::frame_interval(fps)], estimator)


def dynamic_degree_path(path: str | os.PathLike, estimator: FlowEstimator | None = None) -> DynamicResult:
    """A `.mp4` (read with OpenCV, fps from CAP_PROP_FPS, then sampled) or a folder of frames (all used).

    Anything else, GIFs included, raises NotImplementedError as in VBench (§3.1, §3.6).
    """
    path = Path(path)
    if str(path).endswith(".mp4"):
        frames, fps = read_mp4(path)
        return _judge(frames[::frame_interval(fps)], estimator)
    if path.is_dir():
        return _judge(read_frame_folder(path), estimator)
    raise NotImplementedError(f"{path}: VBench dynamic degree reads .mp4 files or frame folders only; "
                              "convert the video to .mp4 (GIFs are not supported by the reference)")


def dynamic_degree(results: Sequence[DynamicResult]) -> float:
    """Dimension score: the fraction of videos judged dynamic (not a mean flow magnitude, §3.6)."""
    if not results:
        raise ValueError("no videos to aggregate")
    return float(np.mean([r.dynamic for r in results]))
