"""Training data in memory: the method's frozen encodings of every row, and the real/synthetic pools.

The frozen encoders run once here, outside the DeepSpeed engine (ZeRO must never wrap them); what they
produce is the method's business (`TrainingMethod.encode`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from components.dataset import read_manifest, resolve_inside
from components.media import read_video
from components.preprocess import identity_image


@dataclass
class TrainingSet:
    features: dict[str, torch.Tensor]  # the method's encodings, N rows first
    synthetic: torch.Tensor  # (N,) bool

    def __len__(self) -> int:
        return self.synthetic.shape[0]

    def pool(self, synthetic: bool) -> torch.Tensor:
        return torch.nonzero(self.synthetic == synthetic).flatten()

    def rows(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v[idx] for k, v in self.features.items()}


def load_training_set(dataset_dir: str | Path, method, pipe, split: str = "train", batch: int = 64) -> TrainingSet:
    """Decode the `split` rows of a validated dataset and encode them with `method.encode`."""
    df = read_manifest(dataset_dir)
    df = df[df["split"] == split].reset_index(drop=True)
    if df.empty:
        raise ValueError(f"{dataset_dir}: no rows with split={split!r}")
    cfg = method.config
    videos, images = [], []
    for row in df.itertuples():
        frames, _ = read_video(resolve_inside(dataset_dir, row.video))
        if frames.shape[0] < cfg.num_frames or frames.shape[1:3] != (cfg.height, cfg.width):
            raise ValueError(f"sample {row.sample_id}: video is {frames.shape[:3]}, the model needs at least "
                             f"{cfg.num_frames} frames of {cfg.height}x{cfg.width}")
        videos.append(frames[: cfg.num_frames])
        images.append(identity_image(resolve_inside(dataset_dir, row.identity_image), cfg.height, cfg.width))
    video = torch.from_numpy(np.stack(videos)).permute(0, 1, 4, 2, 3).float() / 127.5 - 1  # (N, F, 3, H, W)
    parts: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for i in range(0, len(df), batch):
            chunk = method.encode(pipe, video[i:i + batch], np.stack(images[i:i + batch]),
                                  list(df["caption"][i:i + batch]))
            for k, v in chunk.items():
                parts.setdefault(k, []).append(v)
    return TrainingSet({k: torch.cat(v) for k, v in parts.items()},
                       synthetic=torch.tensor((df["source"] == "synthetic").to_numpy()))
