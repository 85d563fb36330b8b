"""Data filters shared by every synthesis backend (METHOD_NOTES §1.5, steps 2 and 4).

Each score is recorded in the manifest whatever the thresholds, so they can be tuned after the
fact; `apply_filters` turns scores and `cfg.synthesize.min_*` thresholds into a kept mask.

- clip_text_score: CLIP text feature . mean of the frames' CLIP image features (= mean per-frame
  cosine; not re-normalised, METHOD_NOTES §3.5).
- dino_identity_score: mean cosine between the identity image's DINO feature and each frame's.
- frame_consistency: DINO subject consistency, mean of (mean cosine of consecutive frames, mean
  cosine of T random frame pairs); 1.0 for a single frame.
- flow_score / static_video: VBench's static filter (`components.optical_flow.static_filter`): per frame pair
  the mean of the top 2 % flow magnitudes (dynamic degree uses 5 %), thres = 3*min(H,W)/256,
  count_num = round(2*N/16); static unless more than count_num consecutive pairs exceed thres or a
  first<->last pair exceeds 2*thres*count_num. flow_score is the mean over consecutive pairs (px per
  frame). OpenCV Farneback on the clip's principal colour axis by default, RAFT when configured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from model.encoders import preprocess, to_unit_tensor
from model.scoring import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD

# manifest column -> SynthesizeConfig threshold field
FILTERS: dict[str, str] = {
    "clip_text_score": "min_clip_text_score",
    "dino_identity_score": "min_dino_identity_score",
    "frame_consistency": "min_frame_consistency",
    "flow_score": "min_flow_score",
}


def _contrast_channel(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, H, W) uint8 along the video's first principal colour axis.

    Farneback needs one channel; luminance can hide a subject as bright as its background (green on
    gray), the principal axis of the clip's own colours cannot. The projection keeps its natural
    scale (÷√3 maps any unit axis into 0..255): stretching the clip's range to 0..255 would also
    amplify codec and sensor noise, and make a still clip look moving to the static filter.
    """
    x = frames.reshape(-1, 3).astype(np.float64)
    x = x - x.mean(axis=0)
    _, vecs = np.linalg.eigh(x.T @ x)
    axis = vecs[:, -1] * np.sign(vecs[np.argmax(np.abs(vecs[:, -1])), -1] or 1.0)  # fixed sign: deterministic
    proj = (frames.astype(np.float64) @ axis)
    return np.clip(np.rint((proj - proj.min()) / np.sqrt(3.0)), 0, 255).astype(np.uint8)


def contrast_video(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 -> the same clip in its contrast channel, replicated to 3 channels (OpenCV flow)."""
    return np.repeat(_contrast_channel(np.asarray(frames))[..., None], 3, axis=-1)


def opencv_flow_for(height: int, width: int):
    """Farneback sized to the frame: pyramid down to ~8 px, window a quarter of the shorter side (5..15)."""
    from components.optical_flow import FarnebackFlow

    levels = max(1, int(math.log2(max(min(height, width), 8) / 8)) + 1)
    winsize = max(5, min(15, min(height, width) // 4) | 1)
    return FarnebackFlow(pyr_scale=0.5, levels=levels, winsize=winsize, iterations=3, poly_n=5, poly_sigma=1.1)


def flow_score(frames: np.ndarray, estimator=None) -> float:
    """Mean over consecutive pairs of the mean top-2 % flow magnitude (px/frame) of (T, H, W, 3) frames."""
    return static_scores(frames, estimator)[1]


def static_scores(frames: np.ndarray, estimator=None) -> tuple[bool, float]:
    """(VBench static verdict, mean top-2 % flow magnitude). estimator None: OpenCV Farneback on the clip's
    contrast channel; otherwise a `components.optical_flow.FlowEstimator` (RAFT) on the RGB frames."""
    from components.optical_flow import static_filter

    frames = np.asarray(frames)
    if estimator is None:
        return static_filter(contrast_video(frames), opencv_flow_for(*frames.shape[1:3]))
    return static_filter(frames, estimator)


def _encode(fn, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([fn(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


SCORE_COLUMNS = (*FILTERS, "static_video")


def score_samples(encoders, identity_images: Sequence[np.ndarray], videos: Sequence[np.ndarray],
                  captions: Sequence[str], batch_size: int = 256, seed: int = 0,
                  flow_estimator=None, sample_ids: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """All filter scores for N samples, the frames of all videos encoded together in batches.

    identity_images: N x (H, W, 3) uint8; videos: N x (T_i, H_i, W_i, 3) uint8; captions: N strings;
    encoders: a `model.scoring.ScoringEncoders`. `seed` and `sample_ids` fix the random frame pairs (per
    sample, so a score does not depend on the batch or shard it was computed in); flow_estimator
    None = OpenCV (see `static_scores`). Returns {column: (N,)} for SCORE_COLUMNS: float64 scores and
    bool `static_video`.
    """
    n = len(videos)
    if not (len(identity_images) == len(captions) == n):
        raise ValueError(f"got {len(identity_images)} identity images, {n} videos and {len(captions)} captions; "
                         "pass one of each per sample")
    if n == 0:
        return {col: np.zeros(0, bool if col == "static_video" else np.float64) for col in SCORE_COLUMNS}
    ds, cs = encoders.dino_size, encoders.clip_size
    # Preprocess per video (sizes may differ between videos), then encode everything in fixed batches.
    frames_d, frames_c, lengths = [], [], []
    for video in videos:
        unit = to_unit_tensor(np.asarray(video))
        frames_d.append(preprocess(unit, ds, IMAGENET_MEAN, IMAGENET_STD))
        frames_c.append(preprocess(unit, cs, CLIP_MEAN, CLIP_STD, crop=True))
        lengths.append(len(unit))
    ids = torch.cat([preprocess(to_unit_tensor(np.asarray(im)[None]), ds, IMAGENET_MEAN, IMAGENET_STD)
                     for im in identity_images])
    dino_frames = _encode(encoders.dino, torch.cat(frames_d), batch_size)
    clip_frames = _encode(encoders.clip_image, torch.cat(frames_c), batch_size)
    dino_ids = _encode(encoders.dino, ids, batch_size)
    texts = torch.cat([encoders.clip_text(list(captions[i:i + batch_size])) for i in range(0, n, batch_size)])

    out = {col: np.zeros(n) for col in FILTERS}
    out["static_video"] = np.zeros(n, bool)
    start = 0
    for i, t in enumerate(lengths):
        d, c = dino_frames[start:start + t], clip_frames[start:start + t]
        start += t
        out["clip_text_score"][i] = float((c @ texts[i]).mean())
        out["dino_identity_score"][i] = float((d @ dino_ids[i]).mean())
        key = [seed, i] if sample_ids is None else [seed, *_stable_words(sample_ids[i])]
        out["frame_consistency"][i] = _consistency(d, np.random.default_rng(key))
        out["static_video"][i], out["flow_score"][i] = static_scores(videos[i], flow_estimator)
    return out


def _stable_words(text: str) -> list[int]:
    """A string as 4 uint32 words (md5), for seeding: stable across processes, unlike hash()."""
    import hashlib

    digest = hashlib.md5(text.encode()).digest()
    return [int.from_bytes(digest[k:k + 4], "little") for k in range(0, 16, 4)]


def _consistency(feats: torch.Tensor, rng: np.random.Generator) -> float:
    """feats (T, D) L2-normalised -> mean of consecutive-pair and random-pair cosines."""
    t = len(feats)
    if t < 2:
        return 1.0
    consecutive = (feats[:-1] * feats[1:]).sum(-1).mean()
    a = rng.integers(0, t, size=t)
    b = (a + rng.integers(1, t, size=t)) % t  # b != a
    random_pairs = (feats[a] * feats[b]).sum(-1).mean()
    return float(0.5 * (consecutive + random_pairs))


def apply_filters(scores: Mapping[str, Sequence[float]], cfg) -> tuple[np.ndarray, dict[str, dict]]:
    """Scores {column: (N,)} and a SynthesizeConfig -> (kept bool (N,), per-filter report).

    A sample is kept when every score is >= its threshold (NaN fails) and, with `cfg.drop_static`, it
    is not static. The report gives, per filter, its threshold and how many samples it alone would
    keep and drop (so the counts of different filters overlap), plus "all": the samples kept by every
    filter together.
    """
    n = len(next(iter(scores.values()))) if scores else 0
    kept = np.ones(n, bool)
    report: dict[str, dict] = {}
    for col, field in FILTERS.items():
        threshold = float(getattr(cfg, field))
        ok = np.asarray(scores[col], np.float64) >= threshold
        kept &= ok
        report[col] = {"threshold": threshold, "kept": int(ok.sum()), "dropped": int((~ok).sum())}
    if "static_video" in scores:
        moving = ~np.asarray(scores["static_video"], bool)
        if not cfg.drop_static:
            moving = np.ones(n, bool)
        kept &= moving
        report["static_video"] = {"enabled": bool(cfg.drop_static), "kept": int(moving.sum()),
                                  "dropped": int((~moving).sum())}
    report["all"] = {"kept": int(kept.sum()), "dropped": int((~kept).sum())}
    return kept, report
