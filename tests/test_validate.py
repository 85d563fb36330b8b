"""The validate step on a tiny hand-made dataset (conftest.make_dataset: 8 rows of 32x32x8 MP4 + PNG).

Each broken-dataset test breaks one thing and checks that the report names the sample (or the category,
or the split), and that nothing reached the DVC remote.
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
from components.media import read_image, write_image, write_video


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
    from components.dataset_versioning import pull

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
    from components.dataset_versioning import content_hash

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
    from components.dataset_versioning import push, write_dvc_file

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
    assert [(f.sample_id, f.check) for f in result.media_failures] == [("s5", "video.checksum"),
                                                                       ("s5", "video.decode")]
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
    assert [(f.sample_id, f.check) for f in result.media_failures] == [("s3", "video.checksum"),
                                                                       ("s3", "video.num_frames")]
    assert "decodes to 6 frames, manifest says 8" in report


def test_table_level_rules_and_summary(dataset, tmp_path, run_config):
    """Too few rows, one split missing, a caption too long and a wrong category, in one run."""
    edit_manifest(dataset, split={6: "train", 7: "train"}, caption={0: "x" * 400}, category={1: "robot"})
    cfg = run_config("validate.min_rows=9", f"validate.remote={tmp_path / 'remote'}")
    result, _ = expect_failure(dataset, tmp_path, cfg)
    failed = {o.description: o for o in result.failed_expectations}
    assert set(failed) == {"at least validate.min_rows=9 rows", "both splits (train and val) are present",
                           "val split has at least validate.min_val_rows=1 rows",
                           "caption has 1..300 characters", "category in ('animal', 'active_object', 'static_object')"}
    assert failed["val split has at least validate.min_val_rows=1 rows"].observed == "0 of 8 rows (0.0%)"
    assert failed["caption has 1..300 characters"].sample_ids == ["s0"]
    assert failed["category in ('animal', 'active_object', 'static_object')"].observed == "e.g. ['robot']"
    summary = str(result.summary())
    assert "FAILED" in summary and "(e.g. s1)" in summary and str(result.report_md) in summary


def test_push_off_still_versions(dataset, tmp_path, run_config):
    from components.validate import run

    result = run(dataset, tmp_path / "report", run_config("validate.push=false", f"validate.remote={tmp_path}/r"))
    assert result.dvc_hash.endswith(".dir") and result.remote is None and not (tmp_path / "r").exists()


def test_unusable_remote_is_named(dataset, tmp_path):
    from components.dataset_versioning import RemoteError, pull, push

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(RemoteError, match="a-file"):
        push(dataset, str(blocker))
    # No S3 here (no plugin, or no endpoint/credentials since dvc-s3 came in): either way the remote is named.
    with pytest.raises(RemoteError, match="s3://bucket/remote"):
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
    manifest = dsl.Artifact(uri=str(tmp_path / "manifest"))
    version = validate.python_func(config_json=cfg.to_json(), dataset=dsl.Dataset(uri=str(dataset)), report=report,
                                   manifest=manifest)
    assert version.endswith(".dir") and report.metadata["dvc_hash"] == version
    assert "PASSED" in (tmp_path / "report.html").read_text()

    edit_manifest(dataset, flow_score={0: -0.5})
    monkeypatch.setattr(sys, "argv", ["validate", str(dataset), str(tmp_path / "cli-report"),
                                      "--preset", "ci", "--set", f"validate.remote={tmp_path / 'remote'}"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "flow_score (mean flow magnitude) is >= 0 on 1 rows (e.g. s0)" in capsys.readouterr().err


@pytest.mark.timeout(600)  # a hang guard only: the suite's speed is measured by benchmarks/validate_scale.py
def test_suite_scales_to_100k_rows(pristine, run_config):
    """The table-level suite handles 100,000 rows with scattered faults, ids intact."""
    import pandas as pd

    from components.validate.suite import run_suite

    base = read_manifest(pristine)
    df = base.loc[np.arange(100_000) % len(base)].reset_index(drop=True)
    df["sample_id"] = pd.array([f"r{i}" for i in range(len(df))], dtype="string")
    df.loc[[10, 50_000, 99_999], "frame_consistency"] = 1.5
    df.loc[::1000, "video"] = "/abs/path.mp4"  # 100 rows
    suite_run = run_suite(df, run_config())
    failed = {o.column: o for o in suite_run.failed}
    assert set(failed) == {"frame_consistency", "video"}
    assert failed["frame_consistency"].sample_ids == ["r10", "r50000", "r99999"]
    assert failed["video"].failed_rows == 100 and failed["video"].sample_ids[:2] == ["r0", "r1000"]


# ------------------------------------------------------------------------------- the suite's newer checks
def suite_on(df, cfg):
    from components.validate.suite import run_suite

    return run_suite(df, cfg)


def failed_by_description(result) -> dict:
    return {o.description: o for o in result.failed_expectations}


def test_score_below_its_filter_threshold_fails(dataset, tmp_path, run_config):
    edit_manifest(dataset, clip_text_score={3: 0.1}, flow_score={6: 0.2})
    cfg = run_config("synthesize.min_clip_text_score=0.25", "synthesize.min_flow_score=0.5",
                     f"validate.remote={tmp_path / 'remote'}")
    result, report = expect_failure(dataset, tmp_path, cfg)
    failed = failed_by_description(result)
    assert set(failed) == {"clip_text_score >= synthesize.min_clip_text_score=0.25 (the row passed the synthesize "
                           "filter)", "flow_score >= synthesize.min_flow_score=0.5 (the row passed the synthesize "
                           "filter)"}
    clip = failed["clip_text_score >= synthesize.min_clip_text_score=0.25 (the row passed the synthesize filter)"]
    assert clip.failed_rows == 1 and clip.sample_ids == ["s3"] and clip.observed == "e.g. [0.1]"
    assert [o.sample_ids for o in failed.values() if o.column == "flow_score"] == [["s6"]]
    assert "| s3 |" in report and not result.media_failures

    # validate.check_thresholds=false leaves the filter to the synthesize step.
    off = suite_on(read_manifest(dataset), run_config("synthesize.min_clip_text_score=0.25",
                                                      "synthesize.min_flow_score=0.5",
                                                      "validate.check_thresholds=false"))
    assert off.success and not any("synthesize.min_" in o.description for o in off.outcomes)


def test_threshold_at_the_scores_floor_adds_no_duplicate_check(pristine, run_config):
    """The default thresholds (-1 for cosines, 0 for flow) are implied by the range checks: no second check."""
    run = suite_on(read_manifest(pristine), run_config())
    assert run.success and not any("synthesize.min_" in o.description for o in run.outcomes)
    assert any(o.description.startswith("static_video is False") for o in run.outcomes)


def test_static_video_kept_fails_unless_static_clips_are_kept(dataset, tmp_path, cfg, run_config):
    edit_manifest(dataset, static_video={5: True})
    result, report = expect_failure(dataset, tmp_path, cfg)
    (rule,) = result.failed_expectations
    assert rule.column == "static_video" and rule.sample_ids == ["s5"] and rule.observed == "e.g. [True]"
    assert "static_video is False" in report
    assert suite_on(read_manifest(dataset), run_config("synthesize.drop_static=false")).success


def test_category_under_its_share_fails_naming_the_category(dataset, tmp_path, run_config):
    # make_dataset cycles the categories: 3 animal / 3 active_object / 2 static_object; one static row -> animal.
    edit_manifest(dataset, category={5: "animal"})
    cfg = run_config("validate.min_category_share=0.25", f"validate.remote={tmp_path / 'remote'}")
    result, report = expect_failure(dataset, tmp_path, cfg)
    (rule,) = result.failed_expectations
    assert rule.expectation == "expect_table_row_count_to_be_between" and rule.column == "category"
    assert rule.description == ("category static_object has at least validate.min_category_share=0.25 of the rows "
                                "(>= 2 of 8)")
    assert rule.observed == "1 of 8 rows (12.5%)" and "category static_object" in report

    # A category missing altogether fails at the default share too; min_category_share=0 turns the check off.
    edit_manifest(dataset, category={2: "animal"})
    missing = suite_on(read_manifest(dataset), run_config())
    assert [o.observed for o in missing.failed] == ["0 of 8 rows (0.0%)"]
    assert "static_object" in missing.failed[0].description
    off = suite_on(read_manifest(dataset), run_config("validate.min_category_share=0"))
    assert off.success and not any(o.description.startswith("category ") and "share" in o.description
                                   for o in off.outcomes)


def test_val_split_too_large_fails(dataset, tmp_path, run_config):
    cfg = run_config("validate.max_val_fraction=0.2", f"validate.remote={tmp_path / 'remote'}")
    result, report = expect_failure(dataset, tmp_path, cfg)
    (rule,) = result.failed_expectations
    assert rule.column == "split" and rule.observed == "2 of 8 rows (25.0%)"
    assert rule.description == "val split has at most validate.max_val_fraction=0.2 of the rows (<= 1 of 8)"
    assert "val split has at most" in report


@pytest.mark.parametrize("how", ["empty", "too_few"])
def test_val_split_empty_or_too_small_fails(dataset, tmp_path, run_config, how):
    overrides = [f"validate.remote={tmp_path / 'remote'}"]
    if how == "empty":
        edit_manifest(dataset, split={6: "train", 7: "train"})
    else:
        overrides.append("validate.min_val_rows=3")
    result, _ = expect_failure(dataset, tmp_path, run_config(*overrides))
    failed = failed_by_description(result)
    want = "val split has at least validate.min_val_rows=%d rows" % (1 if how == "empty" else 3)
    assert failed[want].observed == ("0 of 8 rows (0.0%)" if how == "empty" else "2 of 8 rows (25.0%)")
    expected = {want} | ({"both splits (train and val) are present"} if how == "empty" else set())
    assert set(failed) == expected


def test_subject_in_both_splits_fails_naming_its_rows(dataset, tmp_path, cfg):
    edit_manifest(dataset, subject_id={6: "subj0"})  # val row s6 now shares subj0 with train rows s0, s1
    result, report = expect_failure(dataset, tmp_path, cfg)
    (rule,) = result.failed_expectations
    assert rule.expectation == "expect_column_pair_values_a_to_determine_b" and rule.column == "subject_id"
    assert rule.failed_rows == 3 and rule.sample_ids == ["s0", "s1", "s6"] and rule.observed == "e.g. ['subj0']"
    assert "each subject_id is in one split only" in report
    # In the GX result JSON (and so in the Data Docs), like every core expectation.
    gx = json.loads(result.gx_result.read_text())
    (leak,) = [r for r in gx["results"] if r["expectation_config"]["type"] == rule.expectation]
    assert leak["success"] is False and leak["result"]["unexpected_count"] == 3
    (page,) = result.data_docs.parent.glob("validations/**/*.html")
    assert "each subject_id is in one split only" in page.read_text()


def test_malformed_md5_fails_in_the_suite_and_the_media_checks(dataset, tmp_path, cfg):
    edit_manifest(dataset, video_md5={2: "XYZ"}, identity_md5={7: "D41D8CD98F00B204E9800998ECF8427E"})
    result, report = expect_failure(dataset, tmp_path, cfg)
    failed = {o.column: o for o in result.failed_expectations}
    assert set(failed) == {"video_md5", "identity_md5"}
    assert failed["video_md5"].sample_ids == ["s2"] and failed["video_md5"].observed == "e.g. ['XYZ']"
    assert failed["identity_md5"].sample_ids == ["s7"]  # upper case is not how file_md5 writes it
    assert "video_md5 is a hex md5 (32 lower-case hex digits)" in report
    assert ("s2", "video.checksum") in [(f.sample_id, f.check) for f in result.media_failures]


def test_rewritten_file_fails_its_checksum_naming_both_hashes(dataset, tmp_path, cfg, run_config):
    from components.dataset import file_md5

    image = dataset / "identity" / "s4.png"
    before = file_md5(image)
    pixels = read_image(image).copy()
    pixels[0, 0] = (254, 254, 254)  # same size, still a valid PNG: only the checksum can tell
    write_image(image, pixels)
    after = file_md5(image)
    assert after != before
    result, report = expect_failure(dataset, tmp_path, cfg)
    assert not result.failed_expectations
    (failure,) = result.media_failures
    assert (failure.sample_id, failure.check) == ("s4", "identity_image.checksum")
    assert before in failure.message and after in failure.message and "identity/s4.png" in failure.message
    assert "| s4 | identity_image.checksum |" in report

    from components.validate import run

    off = run(dataset, tmp_path / "report-off", run_config("validate.checksums=false", "validate.push=false"))
    assert off.success and not off.media_failures


def test_checksum_columns_missing_skip_media_checks_with_a_finding(pristine, tmp_path):
    from components.validate.media_checks import check_media

    df = read_manifest(pristine).drop(columns=["video_md5"])
    (failure,) = check_media(pristine, df, workers=1, checksums=True)
    assert failure.check == "manifest.columns" and "video_md5" in failure.message
    assert check_media(pristine, df, workers=1, checksums=False) == []


def test_captions_too_long_empty_or_blank_fail(dataset, tmp_path, cfg):
    edit_manifest(dataset, caption={0: "x" * 301, 3: "", 5: " \t "})
    result, report = expect_failure(dataset, tmp_path, cfg)
    failed = failed_by_description(result)
    assert set(failed) == {"caption has 1..300 characters", "caption is not blank"}
    assert failed["caption has 1..300 characters"].sample_ids == ["s0", "s3"]
    assert failed["caption is not blank"].sample_ids == ["s3", "s5"]


@pytest.mark.parametrize("column,path", [("video", "/etc/s2.mp4"), ("video", "videos/../../escape.mp4"),
                                         ("identity_image", "..\\escape.png"), ("identity_image", "../s2.png")])
def test_path_traversal_fails_in_the_suite(pristine, run_config, column, path):
    df = read_manifest(pristine)
    df.loc[2, column] = path
    (rule,) = suite_on(df, run_config()).failed
    assert rule.column == column and rule.sample_ids == ["s2"] and "relative path inside" in rule.description


def test_static_video_dtype_is_checked(pristine, run_config):
    import pandas as pd

    df = read_manifest(pristine)
    assert suite_on(df.astype({"static_video": "boolean"}), run_config()).success  # nullable bool is a bool
    df["static_video"] = df["static_video"].map({False: "no", True: "yes"}).astype("string")
    failed = {o.description: o for o in suite_on(df, run_config()).failed}
    assert failed["static_video has dtype bool"].observed == "str"
    assert pd.api.types.is_string_dtype(df["static_video"])


def test_benchmark_manifest_passes_and_its_faults_are_found(run_config):
    """benchmarks/validate_scale.py's synthetic manifest is a valid one, and each injected fault kind fails."""
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("validate_scale", ROOT / "benchmarks" / "validate_scale.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cfg = run_config()
    df = bench.synthetic_manifest(3000, cfg)
    clean = suite_on(df, cfg)
    assert clean.success, [o.description for o in clean.failed]
    bench.inject_faults(df, 4)
    failed = {o.column for o in suite_on(df, cfg).failed}
    assert failed == {"frame_consistency", "static_video", "video_md5", "identity_image", "sample_id", "subject_id"}
