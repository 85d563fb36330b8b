"""Metrics against hand-computed values (METHOD_NOTES §3)."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # repo root; the package is not installed

from components.evaluate import metrics as M  # noqa: E402
from components.flow import build_flow_estimator, pad_to_multiple_of_8  # noqa: E402
from model.scoring import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, ScoringEncoders  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return ScoringEncoders()  # tiny random judges, image size 32


class FakeEncoders:
    """Same interface as ScoringEncoders; each frame is a constant grey level that picks a chosen feature.

    Constant images stay constant through every resize/crop, so the level is recovered exactly by
    undoing the normalisation of channel 0.
    """

    dino_size = clip_size = 16
    plumbing_only = True

    def __init__(self, table: dict[int, tuple], text=(1.0, 0.0)):
        self.table = {k: F.normalize(torch.tensor(v, dtype=torch.float32), dim=0) for k, v in table.items()}
        self.text = F.normalize(torch.tensor(text, dtype=torch.float32), dim=0)

    def _lookup(self, x, mean, std):
        levels = ((x[:, 0].mean((1, 2)) * std[0] + mean[0]) * 255).round().int().tolist()
        return torch.stack([self.table[v] for v in levels])

    def dino(self, x):
        return self._lookup(x, IMAGENET_MEAN, IMAGENET_STD)

    def clip_image(self, x):
        return self._lookup(x, CLIP_MEAN, CLIP_STD)

    def clip_text(self, texts):
        return self.text.expand(len(texts), -1)


def levels(*values, size=(16, 24)):
    """A video whose frame t is the constant grey level values[t]."""
    return np.stack([np.full((*size, 3), v, np.uint8) for v in values])


def moving_block(n_frames=16, step=3, size=64):
    """A 24x24 random-texture block sliding `step` px per frame over a flat grey background."""
    tex = (np.random.default_rng(0).random((24, 24, 3)) * 255).astype(np.uint8)
    video = np.full((n_frames, size, size, 3), 128, np.uint8)
    for t in range(n_frames):
        x = 4 + (t * step) % 30
        video[t, 20:44, x:x + 24] = tex
    return video


# --- dynamic degree (§3.1) ---------------------------------------------------------------------------

def test_dynamic_params_match_reference_examples():
    assert M.dynamic_params(512, 512, 16) == (12.0, 4)
    assert M.dynamic_params(480, 720, 49) == (11.25, 12)
    assert M.dynamic_params(64, 64, 16) == (1.5, 4)
    assert [M.frame_interval(f) for f in (0, 8, 16, 24, 30)] == [1, 1, 2, 3, 4]


def test_static_video_is_not_dynamic():
    video = np.repeat(moving_block()[:1], 16, axis=0)
    r = M.dynamic_degree_video(video, fps=8)
    assert not r.dynamic and max(r.pair_scores) < 0.01 and len(r.pair_scores) == 15


def test_large_moving_block_is_dynamic():
    r = M.dynamic_degree_video(moving_block(), fps=8)
    # 64x64 frames: thres 6*64/256 = 1.5; 16 frames: count_num 4. The block moves 3 px per frame and
    # covers 576 px > top 5 % (204 px), so every pair scores ~3.
    assert (r.thres, r.count_num, r.n_frames) == (1.5, 4, 16)
    assert r.dynamic and sum(s > 1.5 for s in r.pair_scores) >= 4
    assert abs(np.median(r.pair_scores) - 3.0) < 0.3
    assert M.dynamic_degree([r, M.dynamic_degree_video(moving_block()[:1].repeat(16, 0), 8)]) == 0.5


def test_fps_sampling_and_mp4_path(tmp_path):
    from components.media import write_video

    video = moving_block(n_frames=32, step=2)  # at 16 fps VBench keeps every 2nd frame: 16 frames, 4 px/pair
    assert M.dynamic_degree_video(video, fps=16).n_frames == 16
    write_video(tmp_path / "v.mp4", video, fps=16)
    r = M.dynamic_degree_path(tmp_path / "v.mp4")
    assert r.n_frames == 16 and r.dynamic


def test_gif_and_raft_without_weights_are_refused():
    with pytest.raises(NotImplementedError, match="mp4"):
        M.dynamic_degree_path("video.gif")
    with pytest.raises(NotImplementedError, match="raft-things.pth"):
        build_flow_estimator("raft")


def test_padding_and_top5_percent_score():
    frame = np.arange(30 * 61 * 3, dtype=np.uint32).reshape(30, 61, 3).astype(np.uint8)
    padded = pad_to_multiple_of_8(frame)
    assert padded.shape == (32, 64, 3)
    # InputPadder 'sintel': rows 1 before / 1 after, columns 1 before / 2 after, edge-replicated.
    assert (padded[1:31, 1:62] == frame).all() and (padded[0, 1:62] == frame[0]).all()
    assert (padded[1:31, 63] == frame[:, -1]).all()
    flow = np.zeros((10, 10, 2), np.float32)
    flow[..., 0] = np.arange(100).reshape(10, 10)  # top int(0.05*100)=5 magnitudes are 95..99
    assert M.flow_score(flow) == pytest.approx(97.0)


# --- subject / background consistency (§3.2, §3.3) ---------------------------------------------------

def test_identical_frames_give_consistency_one(tiny):
    frame = (np.random.default_rng(1).random((1, 32, 48, 3)) * 255).astype(np.uint8)
    video = np.repeat(frame, 5, axis=0)
    for fn in (M.subject_consistency, M.background_consistency):
        r = fn(video, tiny)
        assert abs(r.score - 1.0) < 1e-5 and len(r.terms) == 4


def test_negative_cosines_are_clamped():
    # f1=(1,0), f2=(-1,0), f3=(.6,.8): t=2 -> ½[max(0,-1)+max(0,-1)] = 0; t=3 -> ½[max(0,-.6)+.6] = .3
    enc = FakeEncoders({10: (1, 0), 20: (-1, 0), 30: (0.6, 0.8)})
    for fn in (M.subject_consistency, M.background_consistency):
        r = fn(levels(10, 20, 30), enc)
        assert r.terms == pytest.approx([0.0, 0.3]) and r.score == pytest.approx(0.15)


def test_frame_weighted_vs_video_weighted():
    enc = FakeEncoders({10: (1, 0), 20: (-1, 0), 30: (0.6, 0.8)})
    a = M.subject_consistency(levels(10, 20, 30), enc)  # terms [0, .3], S = .15
    b = M.subject_consistency(levels(10, 10), enc)  # terms [1], S = 1
    assert M.aggregate_consistency([a, b], "frame") == pytest.approx(1.3 / 3)  # (0 + .3 + 1) / 3 terms
    assert M.aggregate_consistency([a, b], "video") == pytest.approx(0.575)  # (.15 + 1) / 2 videos
    samples = [{"frames": levels(10, 20, 30), "fps": 8}, {"frames": levels(10, 10), "fps": 8}]
    summary, rows = M.evaluate_videos(samples, enc, metrics=["subject_consistency", "background_consistency"])
    assert summary["subject_consistency"] == pytest.approx(1.3 / 3)
    assert summary["background_consistency"] == pytest.approx(1.3 / 3)
    assert [r["subject_consistency"] for r in rows] == pytest.approx([0.15, 1.0])
    summary, _ = M.evaluate_videos(samples, enc, metrics=["subject_consistency"], consistency_weighting="video")
    assert summary["subject_consistency"] == pytest.approx(0.575)


# --- CLIP-T, CLIP-I, DINO-I, T.Cons (§3.5) ------------------------------------------------------------

def test_clip_t_is_mean_of_per_frame_cosines():
    enc = FakeEncoders({10: (1, 0), 20: (0, 1)}, text=(1, 0))
    # cosines 1 and 0 -> 0.5; the re-normalised mean feature would give cos 45° = 0.707
    assert M.clip_t(levels(10, 20), "a dog", enc) == pytest.approx(0.5)


def test_clip_i_dino_i_and_temporal_consistency():
    enc = FakeEncoders({10: (1, 0), 20: (0, 1), 30: (0.6, 0.8), 40: (-1, 0)})
    ref = np.full((20, 20, 3), 30, np.uint8)
    assert M.clip_i(levels(10, 20), ref, enc) == pytest.approx(0.7)  # (.6 + .8) / 2
    assert M.dino_i(levels(10, 20), ref, enc) == pytest.approx(0.7)
    two_refs = [ref, np.full((8, 12, 3), 10, np.uint8)]  # adds cosines 1 and 0: (.6 + .8 + 1 + 0) / 4
    assert M.dino_i(levels(10, 20), two_refs, enc) == pytest.approx(0.6)
    # consecutive cosines: <(1,0),(.6,.8)> = .6, <(.6,.8),(-1,0)> = -.6, not clamped -> 0
    assert M.temporal_consistency(levels(10, 30, 40), enc) == pytest.approx(0.0)


# --- transforms and the evaluate-step helper ----------------------------------------------------------

def test_transform_shapes():
    frames = np.zeros((2, 480, 720, 3), np.uint8)
    assert M.dino_transform(frames, 224).shape == (2, 3, 224, 336)  # shorter side only, no crop
    assert M.clip_transform(frames, 224).shape == (2, 3, 224, 224)
    assert M.dreambooth_dino_transform(frames, 224).shape == (2, 3, 224, 224)
    assert M.dreambooth_clip_transform(frames, 224).shape == (2, 3, 224, 224)


def test_evaluate_videos_with_tiny_encoders(tiny):
    rng = np.random.default_rng(2)
    samples = [{"id": f"v{i}", "frames": (rng.random((8, 32, 32, 3)) * 255).astype(np.uint8), "fps": 8,
                "prompt": "a dog on a beach", "references": (rng.random((2, 32, 32, 3)) * 255).astype(np.uint8)}
               for i in range(2)]
    samples[1].pop("prompt")
    summary, rows = M.evaluate_videos(samples, tiny)
    assert set(summary) == set(M.METRICS)
    assert [r["id"] for r in rows] == ["v0", "v1"] and rows[1]["clip_t"] is None
    assert summary["clip_t"] == pytest.approx(rows[0]["clip_t"])  # only v0 has a prompt
    assert summary["dynamic_degree"] in (0.0, 0.5, 1.0)
    assert all(-1.0 <= summary[k] <= 1.0 for k in M.METRICS)
