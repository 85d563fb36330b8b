"""Video files: colour fidelity, clear errors, and bytes that depend on the frames alone."""

import hashlib

import numpy as np
import pytest

from components.media import MediaError, read_video, write_video


def _frames():
    f = np.zeros((8, 32, 32, 3), np.uint8)
    for t in range(8):
        f[t, 8:20, 2 + 2 * t:14 + 2 * t] = (220, 30, 30)
        for x in range(4, 28, 4):  # 2-pixel stripes on even columns: 4:2:0 chroma keeps them
            f[t, 22:30, x:x + 2] = (30, 200, 240)
    return f


@pytest.mark.parametrize("fmt,max_mean_err", [("yuv444p", 1.0), ("yuv420p", 3.0)])
def test_round_trip_keeps_colours(tmp_path, fmt, max_mean_err):
    write_video(tmp_path / "v.mp4", _frames(), 8, pix_fmt=fmt)
    video, fps = read_video(tmp_path / "v.mp4")
    assert video.shape == (8, 32, 32, 3) and fps == 8
    assert np.abs(video.astype(int) - _frames()).mean() < max_mean_err


def test_same_frames_give_the_same_bytes_whatever_the_heap(tmp_path):
    digests = set()
    for i in range(6):
        junk = [np.random.default_rng(i * 7 + k).integers(0, 255, 4096 * (k + 1), dtype=np.uint8) for k in range(40)]
        del junk  # leaves different garbage where the encoder allocates next
        write_video(tmp_path / f"{i}.mp4", _frames(), 8)
        digests.add(hashlib.md5((tmp_path / f"{i}.mp4").read_bytes()).hexdigest())
    assert len(digests) == 1


def test_broken_files_are_named(tmp_path):
    with pytest.raises(MediaError, match="missing"):
        read_video(tmp_path / "none.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        read_video(tmp_path / "empty.mp4")
    write_video(tmp_path / "v.mp4", _frames(), 8)
    (tmp_path / "cut.mp4").write_bytes((tmp_path / "v.mp4").read_bytes()[:300])
    with pytest.raises(MediaError, match="cut.mp4"):
        read_video(tmp_path / "cut.mp4")
    with pytest.raises(MediaError, match="uint8"):
        write_video(tmp_path / "x.mp4", _frames().astype(float), 8)
