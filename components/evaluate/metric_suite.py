"""All metrics over a set of videos, for the evaluate step (METHOD_NOTES §3).

`evaluate_videos` runs any subset of `metrics.METRICS` over a list of videos and aggregates each metric as
its reference does. The per-video metrics live in `metrics` (dynamic degree, consistency, CLIP-T/-I,
DINO-I, T.Cons) and `text_video` (the §3.4 text-video score); this module is the one place that uses both.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from components.optical_flow import FarnebackFlow, FlowEstimator

from .metrics import (METRICS, aggregate_consistency, background_consistency, check_video, clip_frame_features,
                      consecutive_cosine, dino_image_features, dynamic_degree, dynamic_degree_video, mean_cosine,
                      reference_features, subject_consistency)
from .text_video import ClipMeanPoolTextVideo, TextVideoScorer, text_video_score


def evaluate_videos(samples: Sequence[Mapping], encoders, metrics: Sequence[str] = METRICS,
                    estimator: FlowEstimator | None = None, consistency_weighting: str = "frame",
                    batch_size: int = 64, text_video_scorer: TextVideoScorer | None = None
                    ) -> tuple[dict[str, float], list[dict]]:
    """Score videos and aggregate each metric as its reference does.

    samples: mappings with "frames" (uint8 (T, H, W, 3)), "fps" (float), and optionally "id",
    "prompt" (natural prompt, for clip_t and text_video) and "references" (image(s) of the subject, for
    clip_i and dino_i). A metric whose input a sample lacks is None in its row and skipped in the mean.
    text_video_scorer: a `text_video.TextVideoScorer` (X-CLIP from `cfg.scoring.text_video_path`); None
    uses the CLIP judge of `encoders`, mean-pooled over 8 frames [RECON].

    Returns (summary, rows): summary maps metric -> value (dynamic degree: fraction dynamic;
    subject/background consistency: `consistency_weighting`, frame-weighted by default; the rest:
    mean over videos); a metric no video could be scored on is left out. rows: one dict per video
    with "id", "num_frames" and each metric's per-video value (dynamic_degree as a bool).
    """
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {METRICS}")
    estimator = estimator or FarnebackFlow()
    if "text_video" in metrics and text_video_scorer is None:
        text_video_scorer = ClipMeanPoolTextVideo(encoders)
    rows, dyn, subj, back = [], [], [], []
    for i, sample in enumerate(samples):
        video = check_video(sample["frames"])
        row: dict = {"id": sample.get("id", i), "num_frames": len(video)}
        if "dynamic_degree" in metrics:
            dyn.append(dynamic_degree_video(video, sample["fps"], estimator))
            row["dynamic_degree"] = dyn[-1].dynamic
        if "subject_consistency" in metrics:
            subj.append(subject_consistency(video, encoders, batch_size=batch_size))
            row["subject_consistency"] = subj[-1].score
        if "background_consistency" in metrics:
            back.append(background_consistency(video, encoders, batch_size=batch_size))
            row["background_consistency"] = back[-1].score
        # CLIP-T, CLIP-I and T.Cons share one set of DreamBooth-transformed CLIP frame features.
        if {"temporal_consistency", "clip_t", "clip_i"} & set(metrics):
            clip = clip_frame_features(video, encoders, batch_size)
            if "temporal_consistency" in metrics:
                row["temporal_consistency"] = consecutive_cosine(clip)
            if "clip_t" in metrics:
                prompt = sample.get("prompt")
                row["clip_t"] = None if prompt is None else mean_cosine(encoders.clip_text([prompt]).float(), clip)
            if "clip_i" in metrics:
                refs = sample.get("references")
                row["clip_i"] = None if refs is None else mean_cosine(
                    reference_features(refs, lambda r: clip_frame_features(r, encoders, batch_size)), clip)
        if "dino_i" in metrics:
            refs = sample.get("references")
            row["dino_i"] = None if refs is None else mean_cosine(
                reference_features(refs, lambda r: dino_image_features(r, encoders, batch_size)),
                dino_image_features(video, encoders, batch_size))
        if "text_video" in metrics:
            prompt = sample.get("prompt")
            row["text_video"] = None if prompt is None else text_video_score(video, prompt, text_video_scorer)
        rows.append(row)

    summary: dict[str, float] = {}
    if dyn:
        summary["dynamic_degree"] = dynamic_degree(dyn)
    if subj:
        summary["subject_consistency"] = aggregate_consistency(subj, consistency_weighting)
    if back:
        summary["background_consistency"] = aggregate_consistency(back, consistency_weighting)
    for name in ("temporal_consistency", "clip_t", "clip_i", "dino_i", "text_video"):
        values = [r[name] for r in rows if r.get(name) is not None]
        if values:
            summary[name] = float(np.mean(values))
    return summary, rows
