"""Shared fixtures: tiny configs and a tiny hand-made dataset (no download, no synthesis step)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TQDM_DISABLE", "1")


def make_dataset(root: Path, n: int = 8, frames: int = 8, size: int = 32, fps: int = 8) -> Path:
    """n samples of a coloured square sliding right on black; half real-like, half synthetic; the last two
    rows (one subject) are val; categories cycle so each has its share; two samples per subject."""
    from components.dataset import file_md5, write_manifest
    from components.media import write_image, write_video

    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    rows = []
    for i in range(n):
        c = np.array(colours[i % len(colours)], np.uint8)
        video = np.zeros((frames, size, size, 3), np.uint8)
        for t in range(frames):
            video[t, 10:20, 2 + 2 * t:12 + 2 * t] = c
        ident = np.full((size, size, 3), 255, np.uint8)
        ident[11:21, 11:21] = c
        write_video(root / "videos" / f"s{i}.mp4", video, fps)
        write_image(root / "identity" / f"s{i}.png", ident)
        rows.append(dict(sample_id=f"s{i}", source="real" if i % 2 == 0 else "synthetic", subject_id=f"subj{i // 2}",
                         category=("animal", "active_object", "static_object")[i % 3], identity_image=f"identity/s{i}.png", video=f"videos/s{i}.mp4",
                         caption=f"a colour {i % 4} square slides right", num_frames=frames, fps=fps, height=size,
                         width=size, clip_text_score=0.3, dino_identity_score=0.5, frame_consistency=0.9,
                         flow_score=1.0, static_video=False, split="val" if i >= n - 2 else "train",
                         identity_md5=file_md5(root / "identity" / f"s{i}.png"),
                         video_md5=file_md5(root / "videos" / f"s{i}.mp4")))
    write_manifest(root, pd.DataFrame(rows))
    return root


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    return make_dataset(tmp_path / "dataset")


@pytest.fixture
def run_config(tmp_path, monkeypatch):
    """The `ci` preset with its state (MLflow store, DVC remote, train state) under tmp_path."""
    from components.config import load_config

    monkeypatch.setenv("VIDCUSTOM_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def make(*overrides: str):
        return load_config(preset="ci", overrides=list(overrides))

    return make
