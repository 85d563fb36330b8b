"""Metrics against hand-computed values (METHOD_NOTES §3)."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # repo root; the package is not installed

from components import image_transforms as T  # noqa: E402
from components.evaluate import metrics as M  # noqa: E402
from components.evaluate.metric_suite import evaluate_videos  # noqa: E402
from components.evaluate.video_io import load_video  # noqa: E402
from components.optical_flow import (DYNAMIC_TOP_FRACTION, STATIC_TOP_FRACTION, build_flow_estimator,  # noqa: E402
                             dynamic_check, dynamic_params, is_dynamic, pad_to_multiple_of_8, top_magnitude)
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
    assert dynamic_params(512, 512, 16) == (12.0, 4)
    assert dynamic_params(480, 720, 49) == (11.25, 12)
    assert dynamic_params(64, 64, 16) == (1.5, 4)
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
    assert top_magnitude(flow, DYNAMIC_TOP_FRACTION) == pytest.approx(97.0)


def test_one_top_magnitude_rule_for_dynamic_degree_and_the_static_filter():
    """VBench get_score: mean of the top k = max(1, int(fraction*H*W)) magnitudes, 5 % (dynamic) or 2 % (static)."""
    flow = np.zeros((10, 10, 2), np.float32)
    flow[..., 0] = np.arange(100).reshape(10, 10)
    flow[0, 0] = (3.0, 4.0)  # magnitude 5, not 0
    # 5 %: k = 5 -> 95..99; 2 %: k = 2 -> 98, 99
    assert top_magnitude(flow, DYNAMIC_TOP_FRACTION) == 97.0
    assert top_magnitude(flow, STATIC_TOP_FRACTION) == 98.5
    # small maps, where int(fraction*H*W) is 0 and VBench's mean would be empty: the guard keeps k = 1 (the max)
    small = np.zeros((3, 3, 2), np.float32)  # 9 px: int(0.45) = int(0.18) = 0
    small[1, 2] = (6.0, 8.0)
    small[0, 0] = (0.0, 2.0)
    assert top_magnitude(small, DYNAMIC_TOP_FRACTION) == 10.0
    assert top_magnitude(small, STATIC_TOP_FRACTION) == 10.0
    # 19 px at 5 %: int(0.95) = 0 -> k = 1; 20 px: k = 1 without the guard too; 40 px: k = 2
    line = np.zeros((1, 40, 2), np.float32)
    line[0, :, 0] = np.arange(40)
    assert top_magnitude(line[:, :19], DYNAMIC_TOP_FRACTION) == 18.0
    assert top_magnitude(line[:, :20], DYNAMIC_TOP_FRACTION) == 19.0
    assert top_magnitude(line, DYNAMIC_TOP_FRACTION) == 38.5
    # the metric scores pairs with it over the 8-padded map: a 3x3 frame pads to 8x8 (64 px -> k = 3 at 5 %)
    r = dynamic_check(np.zeros((2, 3, 3, 3), np.uint8), ScriptedFlow([2.0]))
    assert r == (True, [2.0], 6.0 * 3 / 256, 0)  # count_num round(4*2/16) = 0: one pair is always dynamic
    assert is_dynamic([], 1.0, 0) is False  # no pairs: never dynamic


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
    summary, rows = evaluate_videos(samples, enc, metrics=["subject_consistency", "background_consistency"])
    assert summary["subject_consistency"] == pytest.approx(1.3 / 3)
    assert summary["background_consistency"] == pytest.approx(1.3 / 3)
    assert [r["subject_consistency"] for r in rows] == pytest.approx([0.15, 1.0])
    summary, _ = evaluate_videos(samples, enc, metrics=["subject_consistency"], consistency_weighting="video")
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
    assert T.dino_transform(frames, 224).shape == (2, 3, 224, 336)  # shorter side only, no crop
    assert T.clip_transform(frames, 224).shape == (2, 3, 224, 224)
    assert T.dreambooth_dino_transform(frames, 224).shape == (2, 3, 224, 224)
    assert T.dreambooth_clip_transform(frames, 224).shape == (2, 3, 224, 224)


def test_evaluate_videos_with_tiny_encoders(tiny):
    rng = np.random.default_rng(2)
    samples = [{"id": f"v{i}", "frames": (rng.random((8, 32, 32, 3)) * 255).astype(np.uint8), "fps": 8,
                "prompt": "a dog on a beach", "references": (rng.random((2, 32, 32, 3)) * 255).astype(np.uint8)}
               for i in range(2)]
    samples[1].pop("prompt")
    summary, rows = evaluate_videos(samples, tiny)
    assert set(summary) == set(M.METRICS)
    assert [r["id"] for r in rows] == ["v0", "v1"] and rows[1]["clip_t"] is None
    assert summary["clip_t"] == pytest.approx(rows[0]["clip_t"])  # only v0 has a prompt
    assert summary["dynamic_degree"] in (0.0, 0.5, 1.0)
    assert all(-1.0 <= summary[k] <= 1.0 for k in M.METRICS)


# --- dynamic degree: thresholds and the count rule on full-size inputs (§3.1) --------------------------

class ScriptedFlow:
    """Flow estimator returning, for the k-th pair it is asked about, a uniform flow of magnitude mags[k]."""

    def __init__(self, mags):
        self.mags, self.calls = list(mags), 0

    def __call__(self, a, b):
        m = self.mags[self.calls]
        self.calls += 1
        flow = np.zeros((*a.shape[:2], 2), np.float32)
        flow[..., 0] = m
        return flow


@pytest.mark.parametrize("t, h, w, fps, thres, count_num", [
    (49, 480, 720, 8, 11.25, 12),  # CogVideoX clip: 6*480/256, round(4*49/16) = round(12.25)
    (16, 512, 512, 8, 12.0, 4),  # 6*512/256, round(4*16/16)
])
def test_dynamic_thresholds_and_count_rule_full_size(t, h, w, fps, thres, count_num):
    video = np.zeros((t, h, w, 3), np.uint8)
    pairs = t - 1
    # exactly count_num pairs above thres (the rest exactly at thres, which does not count: score > thres)
    r = M.dynamic_degree_video(video, fps, ScriptedFlow([thres + 0.01] * count_num + [thres] * (pairs - count_num)))
    assert (r.thres, r.count_num, r.n_frames, len(r.pair_scores)) == (thres, count_num, t, pairs)
    assert r.dynamic and r.pair_scores[0] == pytest.approx(thres + 0.01)
    r = M.dynamic_degree_video(video, fps, ScriptedFlow([thres + 0.01] * (count_num - 1) + [thres] * (pairs - count_num + 1)))
    assert not r.dynamic
    assert M.dynamic_degree([r, r, M.dynamic_degree_video(video, fps, ScriptedFlow([99.0] * pairs))]) == pytest.approx(1 / 3)


def test_dynamic_fps_changes_frames_and_count_num():
    # 49 frames at 24 fps: interval round(24/8) = 3 -> frames 0, 3, ..., 48 = 17 -> count_num round(4.25) = 4
    r = M.dynamic_degree_video(np.zeros((49, 64, 96, 3), np.uint8), 24, ScriptedFlow([0.0] * 16))
    assert (r.n_frames, r.count_num, r.thres) == (17, 4, 1.5)


def test_gif_refused_for_dynamic_degree_but_read_for_consistency(tmp_path):
    from PIL import Image

    frames = moving_block(n_frames=4)
    Image.fromarray(frames[0]).save(tmp_path / "v.gif", save_all=True,
                                    append_images=[Image.fromarray(f) for f in frames[1:]], duration=125, loop=0)
    with pytest.raises(NotImplementedError, match="GIF"):
        M.dynamic_degree_path(tmp_path / "v.gif")  # an existing GIF, not just the name
    video = load_video(tmp_path / "v.gif")  # VBench's load_video reads GIFs for subject/background consistency
    assert video.shape == (4, 64, 64, 3) and video.dtype == np.uint8
    with pytest.raises(NotImplementedError):
        load_video(tmp_path / "v.avi")
    # a frame folder is VBench's other accepted input: all frames used, no fps sampling
    for i, f in enumerate(moving_block()):
        Image.fromarray(f).save(tmp_path / f"{i:03d}.png")
    r = M.dynamic_degree_path(tmp_path)
    assert r.n_frames == 16 and r.dynamic


# --- CLIP-T: per-frame mean of cosines, not the re-normalised mean feature (§3.6) -----------------------

def test_clip_t_differs_from_renormalised_mean():
    enc = FakeEncoders({10: (1, 0), 20: (0, 1)}, text=(1, 0))
    # frames (1,0), (1,0), (0,1): per-frame cosines 1, 1, 0 -> 2/3. The re-normalised mean feature
    # (2/3, 1/3)/|.| would give 2/sqrt(5) = 0.894.
    assert M.clip_t(levels(10, 10, 20), "a dog", enc) == pytest.approx(2 / 3)
    assert abs(M.clip_t(levels(10, 10, 20), "a dog", enc) - 2 / 5 ** 0.5) > 0.2


# --- text-video score (§3.4) ----------------------------------------------------------------------------

def test_text_video_samples_the_middle_of_8_segments():
    from components.evaluate.text_video import middle_frame_indices, sample_middle_frames

    # T=16: bounds 0,2,...,16 -> segments [0,1],[2,3],... -> (a+b)//2 = 0,2,...,14
    assert middle_frame_indices(16) == [0, 2, 4, 6, 8, 10, 12, 14]
    # T=49: bounds int(linspace(0,49,9)) = 0,6,12,18,24,30,36,42,49 -> (0+5)//2=2, (6+11)//2=8, ..., (42+48)//2=45
    assert middle_frame_indices(49) == [2, 8, 14, 20, 26, 32, 38, 45]
    assert middle_frame_indices(8) == list(range(8))
    assert middle_frame_indices(5) == [0, 1, 2, 3, 4, 4, 4, 4]  # fewer frames: padded with the last index
    video = np.arange(49, dtype=np.uint8)[:, None, None, None].repeat(2, 1).repeat(2, 2).repeat(3, 3)
    assert sample_middle_frames(video)[:, 0, 0, 0].tolist() == [2, 8, 14, 20, 26, 32, 38, 45]


def test_text_video_transform_rounds_like_a_uint8_resize():
    from components.image_transforms import clip_transform_uint8

    frames = (np.random.default_rng(3).random((2, 40, 60, 3)) * 255).astype(np.uint8)
    x = clip_transform_uint8(frames, 24)
    assert x.shape == (2, 3, 24, 24)
    levels_ = (x * torch.tensor(CLIP_STD).view(1, 3, 1, 1) + torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) * 255
    assert torch.allclose(levels_, levels_.round(), atol=1e-3)  # back on the uint8 grid
    assert levels_.min() >= -1e-3 and levels_.max() <= 255 + 1e-3
    assert (x - T.clip_transform(frames, 24)).abs().max() > 0  # background consistency's float path differs


def test_text_video_clip_meanpool_uses_only_the_sampled_frames():
    from components.evaluate.text_video import ClipMeanPoolTextVideo, text_video_mean, text_video_score

    enc = FakeEncoders({10: (1, 0), 20: (0, 1), 30: (-1, 0)}, text=(1, 0))
    scorer = ClipMeanPoolTextVideo(enc)
    # 16 frames: the sampled ones (even indices) are level 10, the others level 30 (the opposite feature)
    video = levels(*[10 if t % 2 == 0 else 30 for t in range(16)])
    assert text_video_score(video, "a dog", scorer) == pytest.approx(1.0)
    # sampled frames half (1,0), half (0,1): video feature = normalised mean (1,1)/sqrt2 -> cos 0.7071
    # (the video-level feature is re-normalised by design; CLIP-T on the same frames is the per-frame 0.5)
    half = levels(*[10 if t < 8 else 20 for t in range(16)])
    assert text_video_score(half, "a dog", scorer) == pytest.approx(2 ** -0.5)
    mean, per_video = text_video_mean([video, half], ["a dog", "a dog"], scorer)
    assert per_video == pytest.approx([1.0, 2 ** -0.5]) and mean == pytest.approx((1 + 2 ** -0.5) / 2)
    assert scorer.plumbing_only and scorer.name == "clip_meanpool"


def _byte_bpe_vocab():
    """CLIP-style byte-level vocabulary with no merges (one token per byte), start/end tokens last."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    chars = [chr(c) for c in cs]
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": 256 + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = 512, 513
    return vocab


@pytest.fixture(scope="module")
def xclip_dir(tmp_path_factory):
    """A tiny random X-CLIP and a byte-level CLIP tokenizer, both built in code and saved like real ones."""
    from transformers import CLIPTokenizer, XCLIPConfig, XCLIPModel

    path = tmp_path_factory.mktemp("xclip")
    vocab = _byte_bpe_vocab()
    conf = XCLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=77),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64, num_frames=8, mit_hidden_size=32, mit_intermediate_size=64,
                           mit_num_hidden_layers=1, mit_num_attention_heads=2),
        projection_dim=32, prompt_layers=1, prompt_num_attention_heads=2)
    torch.manual_seed(0)
    XCLIPModel(conf).save_pretrained(path)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(path)
    return path


def test_text_video_xclip_from_config_path(xclip_dir):
    from components.evaluate.text_video import (XClipTextVideo, build_text_video_scorer, middle_frame_indices,
                                                text_video_score)
    from components.image_transforms import clip_transform_uint8
    from model.config import ScoringConfig

    scorer = build_text_video_scorer(ScoringConfig(text_video_path=str(xclip_dir)))
    assert isinstance(scorer, XClipTextVideo) and scorer.name == "xclip" and not scorer.plumbing_only
    assert (scorer.num_frames, scorer.image_size, scorer.mean) == (8, 32, CLIP_MEAN)
    video = (np.random.default_rng(4).random((49, 40, 56, 3)) * 255).astype(np.uint8)
    score = text_video_score(video, "a dog running on the beach", scorer)
    # by hand: X-CLIP forward on the 8 middle frames; cosine = logits_per_video / logit_scale
    pixels = clip_transform_uint8(video[middle_frame_indices(49)], 32)[None]
    tok = scorer.tokenizer(["a dog running on the beach"], padding="max_length", max_length=77, return_tensors="pt")
    with torch.no_grad():
        out = scorer.model(input_ids=tok.input_ids, attention_mask=tok.attention_mask, pixel_values=pixels)
    assert score == pytest.approx((out.logits_per_video[0, 0] / scorer.model.logit_scale.exp()).item(), abs=1e-5)
    assert -1.0 <= score <= 1.0
    plain = XClipTextVideo(xclip_dir, video_prompting=False)
    assert -1.0 <= text_video_score(video, "a dog", plain) <= 1.0
    # another prompt, another score (the video side is the same)
    assert text_video_score(video, "a cat sleeping", scorer) != pytest.approx(score)


def test_text_video_default_scorer_and_evaluate_videos(tiny, xclip_dir, tmp_path):
    from components.evaluate.text_video import ClipMeanPoolTextVideo, XClipTextVideo, build_text_video_scorer
    from model.config import ScoringConfig

    scorer = build_text_video_scorer(None, encoders=tiny)
    assert isinstance(scorer, ClipMeanPoolTextVideo) and scorer.plumbing_only
    with pytest.raises(Exception, match="does not exist"):
        build_text_video_scorer(ScoringConfig(text_video_path=str(tmp_path / "missing")))
    import json
    import shutil

    copy = tmp_path / "xclip"
    shutil.copytree(xclip_dir, copy)
    (copy / "preprocessor_config.json").write_text(json.dumps({"image_mean": list(IMAGENET_MEAN),
                                                               "image_std": list(IMAGENET_STD)}))
    assert XClipTextVideo(copy).mean == IMAGENET_MEAN  # the model's own normalisation when the folder has one

    enc = FakeEncoders({10: (1, 0), 20: (0, 1)}, text=(1, 0))
    samples = [{"frames": levels(*[10] * 8), "fps": 8, "prompt": "a dog"},
               {"frames": levels(*[10] * 4 + [20] * 4), "fps": 8, "prompt": "a dog"},
               {"frames": levels(*[20] * 8), "fps": 8}]  # no prompt: skipped
    summary, rows = evaluate_videos(samples, enc, metrics=["text_video", "clip_t"])
    assert [r["text_video"] for r in rows] == pytest.approx([1.0, 2 ** -0.5, None])
    assert summary["text_video"] == pytest.approx((1 + 2 ** -0.5) / 2)
    assert summary["clip_t"] == pytest.approx((1 + 0.5) / 2)  # per-frame mean: 1 and 0.5
