"""The validate step on a tiny hand-made dataset (conftest.make_dataset: 8 rows of 32x32x8 MP4 + PNG).

Each broken-dataset test breaks one thing and checks that the report names the sample, and that
nothing reached the DVC remote.
"""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_dataset

from components.dataset import read_manifest, write_manifest
from components.media import write_video


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("pristine") / "dataset")


@pytest.fixture
def dataset(pristine, tmp_path) -> Path:
    """A private copy each test may break."""
    return Path(shutil.copytree(pristine, tmp_path / "dataset"))


@pytest.fixture
def cfg(run_config, tmp_path):
    return run_config(f"validate.remote={tmp_path / 'remote'}")


def edit_manifest(root: Path, **cells) -> None:
    """edit_manifest(root, video={1: "../escape.mp4"}) sets row 1's video."""
    df = read_manifest(root)
    for column, changes in cells.items():
        for row, value in changes.items():
            df.loc[row, column] = value
    write_manifest(root, df)


def remote_objects(remote: Path) -> list[Path]:
    return sorted(p for p in remote.rglob("*") if p.is_file()) if remote.exists() else []


def expect_failure(dataset: Path, tmp_path: Path, cfg):
    from components.validate import ValidationFailed, run

    with pytest.raises(ValidationFailed) as info:
        run(dataset, tmp_path / "report", cfg)
    result = info.value.result
    assert not result.success and result.dvc_hash is None
    assert remote_objects(tmp_path / "remote") == [], "a failed validation must push nothing"
    assert result.report_md.is_file() and result.report_html.is_file() and result.gx_result.is_file()
    json.loads(result.gx_result.read_text())  # strict JSON even with NaN in the data
    return result, result.report_md.read_text()


def test_good_dataset_passes_is_pushed_and_pulled_back(dataset, tmp_path, cfg):
    from components.validate import run
    from components.validate.versioning import pull

    result = run(dataset, tmp_path / "report", cfg)
    assert result.success and result.n_rows == 8 and not result.failed_expectations and not result.media_failures
    assert result.dvc_hash.endswith(".dir") and len(result.dvc_hash) == 36
    assert result.remote == str(tmp_path / "remote")
    # DVC 3 remote layout: files/md5/<2 hex>/<30 hex>, the .dir listing among them.
    objects = remote_objects(tmp_path / "remote")
    # Content-addressed: one object per distinct file content (make_dataset repeats its 4 colours) + the .dir.
    distinct = {p.read_bytes() for p in dataset.rglob("*") if p.is_file()}
    assert result.uploaded == len(objects) == len(distinct) + 1
    assert all(p.relative_to(tmp_path / "remote").parts[:2] == ("files", "md5") for p in objects)
    assert (tmp_path / "remote/files/md5" / result.dvc_hash[:2] / result.dvc_hash[2:]).is_file()
    assert result.dvc_hash in result.dvc_file.read_text() and result.dvc_hash in result.report_md.read_text()
    assert "PASSED" in result.report_md.read_text() and result.data_docs.is_file()
    assert "vidcustom dataset validation: PASSED" in result.report_html.read_text()

    again = run(dataset, tmp_path / "report2", cfg)
    assert again.dvc_hash == result.dvc_hash and again.uploaded == 0  # unchanged content: nothing re-uploaded

    restored = pull(result.dvc_hash, str(tmp_path / "remote"), tmp_path / "restored")
    cmp = filecmp.dircmp(dataset, restored)
    assert not cmp.left_only and not cmp.right_only
    for path in dataset.rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (restored / path.relative_to(dataset)).read_bytes()


def test_hash_follows_content_not_location(dataset, tmp_path):
    from components.validate.versioning import content_hash

    version, nfiles, _ = content_hash(dataset)
    copy = Path(shutil.copytree(dataset, tmp_path / "elsewhere"))
    assert content_hash(copy)[0] == version and nfiles == 17
    image = copy / "identity" / "s3.png"
    data = bytearray(image.read_bytes())
    data[-1] ^= 1  # one flipped bit in one file
    image.write_bytes(bytes(data))
    assert content_hash(copy)[0] != version


def test_hash_and_remote_are_what_dvc_itself_uses(dataset, tmp_path):
    """`dvc add` computes the same version, and `dvc pull` of our dataset.dvc restores from our remote."""
    from components.validate.versioning import push, write_dvc_file

    pushed = push(dataset, str(tmp_path / "remote"))
    repo = tmp_path / "repo"
    repo.mkdir()

    def dvc(*args):
        subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, check=True, capture_output=True)

    dvc("init", "--no-scm", "-q")
    shutil.copytree(dataset, repo / "dataset")
    dvc("add", "dataset", "-q")
    assert f"md5: {pushed.version}" in (repo / "dataset.dvc").read_text()

    shutil.rmtree(repo / "dataset")
    shutil.rmtree(repo / ".dvc" / "cache")
    write_dvc_file(repo / "dataset.dvc", pushed.version, pushed.nfiles, pushed.size, pushed.remote)
    dvc("remote", "add", "-d", "ours", pushed.remote)
    dvc("pull", "-q", "dataset.dvc")
    assert not filecmp.dircmp(dataset, repo / "dataset").diff_files
    assert sorted(p.name for p in (repo / "dataset").rglob("*")) == sorted(p.name for p in dataset.rglob("*"))


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_video_fails_naming_the_sample(dataset, tmp_path, cfg, damage):
    video = dataset / "videos" / "s5.mp4"
    data = video.read_bytes()
    video.write_bytes(b"\x00garbage" * 200 if damage == "garbage" else data[: len(data) // 2])
    result, report = expect_failure(dataset, tmp_path, cfg)
    assert [(f.sample_id, f.check) for f in result.media_failures] == [("s5", "video.decode")]
    assert "| s5 | video.decode |" in report and "videos/s5.mp4" in report
    assert not result.failed_expectations  # the manifest itself is fine


def test_path_escaping_the_dataset_fails_naming_the_sample(dataset, tmp_path, cfg):
    edit_manifest(dataset, video={2: "../escape.mp4"})
    result, report = expect_failure(dataset, tmp_path, cfg)
    (path_rule,) = [o for o in result.failed_expectations if o.column == "video"]
    assert path_rule.failed_rows == 1 and path_rule.sample_ids == ["s2"]
    assert ("s2", "video.path") in [(f.sample_id, f.check) for f in result.media_failures]
    assert "s2" in report and "../escape.mp4" in report


def test_nan_score_fails(dataset, tmp_path, cfg):
    edit_manifest(dataset, dino_identity_score={4: np.nan})
    result, report = expect_failure(dataset, tmp_path, cfg)
    (rule,) = result.failed_expectations
    assert rule.expectation == "expect_column_values_to_not_be_null" and rule.column == "dino_identity_score"
    assert rule.failed_rows == 1 and rule.sample_ids == ["s4"]
    assert "dino_identity_score is never null/NaN | dino_identity_score | 1 | s4" in report


def test_duplicated_sample_id_fails(dataset, tmp_path, cfg):
    edit_manifest(dataset, sample_id={6: "s1"})
    result, report = expect_failure(dataset, tmp_path, cfg)
    (rule,) = result.failed_expectations
    assert rule.expectation == "expect_column_values_to_be_unique" and rule.failed_rows == 2
    assert rule.sample_ids == ["s1"] and "sample_id is unique" in report


def test_wrong_frame_count_fails(dataset, tmp_path, cfg):
    write_video(dataset / "videos" / "s3.mp4", np.zeros((6, 32, 32, 3), np.uint8), fps=8)  # manifest says 8
    result, report = expect_failure(dataset, tmp_path, cfg)
    assert [(f.sample_id, f.check) for f in result.media_failures] == [("s3", "video.num_frames")]
    assert "decodes to 6 frames, manifest says 8" in report


def test_table_level_rules_and_summary(dataset, tmp_path, run_config):
    """Too few rows, one split missing, a caption too long and a wrong category, in one run."""
    edit_manifest(dataset, split={6: "train", 7: "train"}, caption={0: "x" * 400}, category={1: "robot"})
    cfg = run_config("validate.min_rows=9", f"validate.remote={tmp_path / 'remote'}")
    result, _ = expect_failure(dataset, tmp_path, cfg)
    failed = {o.description: o for o in result.failed_expectations}
    assert set(failed) == {"at least validate.min_rows=9 rows", "both splits (train and val) are present",
                           "caption has 1..300 characters", "category in ('animal', 'active_object', 'static_object')"}
    assert failed["caption has 1..300 characters"].sample_ids == ["s0"]
    assert failed["category in ('animal', 'active_object', 'static_object')"].observed == "e.g. ['robot']"
    summary = str(result.summary())
    assert "FAILED" in summary and "(e.g. s1)" in summary and str(result.report_md) in summary


def test_push_off_still_versions(dataset, tmp_path, run_config):
    from components.validate import run

    result = run(dataset, tmp_path / "report", run_config("validate.push=false", f"validate.remote={tmp_path}/r"))
    assert result.dvc_hash.endswith(".dir") and result.remote is None and not (tmp_path / "r").exists()


def test_unusable_remote_is_named(dataset, tmp_path):
    from components.validate.versioning import RemoteError, pull, push

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(RemoteError, match="a-file"):
        push(dataset, str(blocker))
    with pytest.raises(RemoteError, match="dvc-s3"):  # plugin not installed here; the message says which
        push(dataset, "s3://bucket/remote")
    push(dataset, str(tmp_path / "remote"))
    with pytest.raises(RemoteError, match="not in DVC remote"):
        pull("0" * 32, str(tmp_path / "remote"), tmp_path / "out")
    with pytest.raises(RemoteError, match="does not exist"):
        pull("0" * 32, str(tmp_path / "nowhere"), tmp_path / "out")


def test_cli_exit_code_and_kfp_component(dataset, tmp_path, cfg, monkeypatch, capsys):
    from kfp import compiler, dsl

    from components.validate.__main__ import main
    from components.validate.component import validate

    compiler.Compiler().compile(validate, str(tmp_path / "validate.yaml"))
    assert "system.HTML" in (tmp_path / "validate.yaml").read_text()

    # The component's own function, as KFP would call it in the container.
    report = dsl.HTML(uri=str(tmp_path / "report.html"))
    version = validate.python_func(config_json=cfg.to_json(), dataset=dsl.Dataset(uri=str(dataset)), report=report)
    assert version.endswith(".dir") and report.metadata["dvc_hash"] == version
    assert "PASSED" in (tmp_path / "report.html").read_text()

    edit_manifest(dataset, flow_score={0: -0.5})
    monkeypatch.setattr(sys, "argv", ["validate", str(dataset), str(tmp_path / "cli-report"),
                                      "--preset", "ci", "--set", f"validate.remote={tmp_path / 'remote'}"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "flow_score (mean flow magnitude) is >= 0 on 1 rows (e.g. s0)" in capsys.readouterr().err


def test_suite_scales_to_100k_rows(pristine, run_config):
    """The table-level suite is vectorised: 100,000 rows with scattered faults in seconds, ids intact."""
    import time

    import pandas as pd

    from components.validate.suite import run_suite

    base = read_manifest(pristine)
    df = base.loc[np.arange(100_000) % len(base)].reset_index(drop=True)
    df["sample_id"] = pd.array([f"r{i}" for i in range(len(df))], dtype="string")
    df.loc[[10, 50_000, 99_999], "frame_consistency"] = 1.5
    df.loc[::1000, "video"] = "/abs/path.mp4"  # 100 rows
    start = time.perf_counter()
    suite_run = run_suite(df, run_config())
    elapsed = time.perf_counter() - start
    failed = {o.column: o for o in suite_run.failed}
    assert set(failed) == {"frame_consistency", "video"}
    assert failed["frame_consistency"].sample_ids == ["r10", "r50000", "r99999"]
    assert failed["video"].failed_rows == 100 and failed["video"].sample_ids[:2] == ["r0", "r1000"]
    assert elapsed < 30, f"suite took {elapsed:.1f}s on 100k rows"
