"""Shared data filters: VBench's static filter to its definition, options, dropped jobs, masks, checksums."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.config import load_config  # noqa: E402
from components.dataset import MANIFEST, file_md5  # noqa: E402
from components.optical_flow import STATIC_TOP_FRACTION, is_static, static_filter, static_params, top_magnitude  # noqa: E402
from components import sprites as S  # noqa: E402
from components.synthesize.backend import SampleError  # noqa: E402
from components.synthesize.filters import static_scores  # noqa: E402
from components.synthesize.synthesize import read_masks, run  # noqa: E402

SMALL = ["synthesize.num_subjects=4", "synthesize.samples_per_subject=3", "synthesize.shard_size=4",
         "synthesize.workers=1", "synthesize.val_fraction=0.25"]


def test_static_params_match_vbench_formulas():
    assert static_params(32, 32, 8) == (3.0 * 32 / 256, 1)  # round(2*8/16) = 1
    assert static_params(480, 720, 49) == (5.625, 6)  # 3*480/256; round(6.125)
    assert static_params(512, 512, 16) == (6.0, 2)


def test_is_static_counts_and_end_pairs_as_vbench():
    thres, count_num = 1.0, 2
    # count_num pairs above thres are allowed; one more is motion (VBench: `count > count_num`)
    assert is_static([2.0, 2.0, 0.1, 0.1], [0.0, 0.0], thres, count_num)
    assert not is_static([2.0, 2.0, 2.0, 0.1], [0.0, 0.0], thres, count_num)
    # the first<->last pairs may move up to thres*count_num*2 = 4
    assert is_static([0.1] * 4, [4.0, 3.9], thres, count_num)
    assert not is_static([0.1] * 4, [0.1, 4.01], thres, count_num)


def test_top_two_percent_magnitude():
    flow = np.zeros((10, 10, 2))
    flow[0, 0] = (3.0, 4.0)  # magnitude 5; int(0.02 * 100) = 2 -> mean of 5 and the next largest (0)
    flow[0, 1] = (0.0, 1.0)
    assert top_magnitude(flow, STATIC_TOP_FRACTION) == pytest.approx(3.0)
    assert top_magnitude(np.zeros((4, 4, 2)), STATIC_TOP_FRACTION) == 0.0  # fewer than 50 pixels: still the top one


def test_static_filter_on_videos(tmp_path):
    from components.media import read_video, write_video

    spec = S.sample_spec(0, S.training_subjects(0, 1)[0], 0, 0, synthetic=False)
    frames, _ = S.render(spec, 32, 32, 8)
    assert static_scores(np.repeat(frames[:1], 8, axis=0)) == (True, 0.0)
    # a still clip stays still through the codec and sensor-like noise (its noise is not amplified)
    big, _ = S.render(spec, 96, 96, 8)
    write_video(tmp_path / "still.mp4", np.repeat(big[:1], 8, axis=0), 8, pix_fmt="yuv420p", crf=28)
    assert static_scores(read_video(tmp_path / "still.mp4")[0])[0] is True
    noisy = np.clip(120 + np.random.default_rng(0).normal(0, 1.0, (8, 64, 64, 3)), 0, 255).astype(np.uint8)
    assert static_scores(noisy)[0] is True
    moving, score = static_scores(frames)
    assert not moving and score > 0.3
    assert static_scores(frames[:1]) == (True, 0.0)

    class Fixed:  # a flow estimator reporting a constant flow: checks the pairs VBench looks at
        def __init__(self, mag):
            self.mag = mag

        def __call__(self, a, b):
            f = np.zeros(a.shape[:2] + (2,), np.float32)
            f[..., 0] = self.mag
            return f

    thres, _ = static_params(32, 32, 8)
    assert static_filter(frames, Fixed(thres * 0.99)) == (True, pytest.approx(thres * 0.99))
    assert static_filter(frames, Fixed(thres * 1.01))[0] is False


def test_config_refuses_bad_motions_changes_and_raft_without_weights():
    with pytest.raises(ValueError, match="synthesize.motions"):
        load_config(overrides=["synthesize.motions=[dance]"])
    with pytest.raises(ValueError, match="synthesize.changes"):
        load_config(overrides=["synthesize.changes={hat: 1}"])
    with pytest.raises(ValueError, match="raft_weights"):
        load_config(overrides=["synthesize.flow=raft"])
    from components.optical_flow import RaftFlow, build_flow_estimator

    with pytest.raises(NotImplementedError, match="nothing is downloaded"):
        build_flow_estimator("raft")
    with pytest.raises((NotImplementedError, Exception), match="torchvision|does not exist"):
        RaftFlow("/nonexistent/raft.pth")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("filters") / "ds"
    return root, run(root, load_config(overrides=SMALL))


def test_masks_checksums_and_static_column_are_written(small):
    root, summary = small
    df = pd.read_parquet(root / MANIFEST)
    assert summary["filters"]["static_video"] == {"enabled": True, "kept": 12, "dropped": 0}
    assert df.static_video.dtype == bool and not df.static_video.any()
    truth = [json.loads(line) for line in (root / "ground_truth.jsonl").read_text().splitlines()]
    for row, gt in zip(df.itertuples(), truth):
        assert file_md5(root / row.video) == row.video_md5 and file_md5(root / row.identity_image) == row.identity_md5
        spec = S.spec_from_dict({k: v for k, v in gt.items() if k != "mask"})
        assert (read_masks(root / gt["mask"], 8) == S.render(spec, 32, 32, 8)[1]).all()


def test_a_failing_job_is_dropped_with_its_reason_and_loses_nothing_else(small, tmp_path, monkeypatch):
    from components.synthesize import sprites_backend

    original = sprites_backend.SpritesBackend.generate

    def flaky(self, job):
        if job["sample_id"] == "sub0001-001":
            raise SampleError("sub0001-001: source clip is corrupt (test)")
        return original(self, job)

    monkeypatch.setattr(sprites_backend.SpritesBackend, "generate", flaky)
    root, _ = small
    summary = run(tmp_path / "ds", load_config(overrides=SMALL))
    assert summary["filters"]["generate"] == {"kept": 11, "dropped": 1}
    assert summary["failed_jobs"] == [{"sample_id": "sub0001-001", "error": "sub0001-001: source clip is corrupt "
                                                                            "(test)"}]
    df = pd.read_parquet(tmp_path / "ds" / MANIFEST)
    full = pd.read_parquet(root / MANIFEST)
    assert list(df.sample_id) == [i for i in full.sample_id if i != "sub0001-001"]
    assert json.loads((tmp_path / "ds" / "summary.json").read_text())["failed_jobs"][0]["sample_id"] == "sub0001-001"


def test_drop_static_switch(small, tmp_path, monkeypatch):
    import components.synthesize.filters as F

    monkeypatch.setattr(F, "static_scores", lambda frames, est=None: (True, 0.0))  # every clip judged static
    summary = run(tmp_path / "a", load_config(overrides=SMALL))
    assert summary["samples_kept"] == 0 and summary["filters"]["static_video"]["dropped"] == 12
    kept = run(tmp_path / "a", load_config(overrides=[*SMALL, "synthesize.drop_static=false"]))
    assert kept["samples_kept"] == 12 and kept["shards_generated"] == 0  # re-filtered, not regenerated
