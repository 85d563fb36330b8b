"""`vidcustom compare`: the HTML report of MLflow evaluate runs, checked as text and in headless Chromium.

Three runs are logged the way the evaluate step logs them (step_run's config.json and tags, metrics,
evaluation/videos/*.mp4, evaluation/per_sample.parquet, evaluation/contact_sheet.png): A (baseline,
High 4:4:4 clips as write_video makes by default, which Chrome does not play), B (one config key and the
data version changed, yuv420p clips) and C (no videos). The browser test loads the report from file://
and reads the playback state the page's script writes into <pre id="video-status">.

Without Chromium the browser test fails (install it: apt-get install chromium); VIDCUSTOM_SKIP_BROWSER=1
skips it for local runs.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ("heldout0000", "heldout0001")
METRICS_A = {"sprites_identity": 0.50, "sprites_motion": 0.80, "clip_t": 0.25, "eval_wall_s": 10.0}
METRICS_B = {"sprites_identity": 0.62, "sprites_motion": 0.75, "clip_t": 0.25, "eval_wall_s": 12.5}
METRICS_C = {"sprites_identity": 0.40, "sprites_motion": 0.80, "clip_t": 0.30, "eval_wall_s": 8.0}


def _clip(colour, frames: int = 8, size: int = 32, row: int = 10) -> np.ndarray:
    """A square sliding right on black."""
    video = np.zeros((frames, size, size, 3), np.uint8)
    for t in range(frames):
        video[t, row:row + 10, 2 + 2 * t:12 + 2 * t] = colour
    return video


def _evaluate_run(cfg, out: Path, data_version: str, metrics: dict, colour, pix_fmt: str | None,
                  companions: bool = False) -> str:
    """Log a run like components/evaluate/evaluate.py does; pix_fmt None = a run without videos; companions:
    also each sample's identity image and image-dropped clip (what evaluate logs since issue 10)."""
    import mlflow
    import pandas as pd

    from components.media import write_image, write_video
    from components.tracking import step_run

    out.mkdir(parents=True)
    rows = []
    for i, sid in enumerate(SAMPLES):
        clip = _clip(colour, row=6 + 8 * i)
        if pix_fmt is not None:
            write_video(out / "videos" / f"{sid}.mp4", clip, 8, pix_fmt=pix_fmt)
        if companions:
            write_image(out / "identity" / f"{sid}.png", np.full((32, 32, 3), colour, np.uint8))
            write_video(out / "videos_no_image" / f"{sid}.mp4", _clip((128, 128, 128), row=6 + 8 * i), 8,
                        pix_fmt="yuv420p")
        rows.append({"sample_id": sid, "subject_id": sid, "category": "animal",
                     "caption": f"a square number {i} slides right", "sprites_identity": metrics["sprites_identity"],
                     "sprites_motion": metrics["sprites_motion"], "sprites_attribute": 0.5})
    pd.DataFrame(rows).to_parquet(out / "per_sample.parquet", index=False)
    (out / "metrics.json").write_text(json.dumps(metrics))
    write_image(out / "contact_sheet.png", np.concatenate(list(_clip(colour)[::2]), axis=1))
    with step_run(cfg, "evaluate", data_version) as run:
        mlflow.set_tags({"plumbing_only": "true", "benchmark": "sprites"})
        mlflow.log_metrics(metrics)
        mlflow.log_artifacts(str(out), artifact_path="evaluation")
        return run.info.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(A, B, C) run ids in a sqlite store (VIDCUSTOM_HOME, as conftest's run_config sets it) and the store's
    URI; B changes evaluate.seed and the data version, C has no videos. One store for the module: creating
    an MLflow database takes seconds."""
    from components.config import load_config

    root = tmp_path_factory.mktemp("compare")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIDCUSTOM_HOME", str(root / "state"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("VIDCUSTOM_GIT_COMMIT", "0123456789abcdef0123456789abcdef01234567")

        def cfg(*overrides: str):
            return load_config(preset="ci", overrides=list(overrides))

        a = _evaluate_run(cfg(), root / "eval_a", "dvhash-aaaa", METRICS_A, (255, 40, 40), "yuv444p",
                          companions=True)
        b = _evaluate_run(cfg("evaluate.seed=7"), root / "eval_b", "dvhash-bbbb", METRICS_B, (40, 220, 40), "yuv420p")
        c = _evaluate_run(cfg(), root / "eval_c", "dvhash-aaaa", METRICS_C, (40, 40, 255), None)
        yield {"runs": (a, b, c), "uri": cfg().tracking_uri(), "root": root}


@pytest.fixture(scope="module")
def report(store) -> tuple[Path, str]:
    """`vidcustom compare A B C --output <tmp>/report.html`: (path, HTML)."""
    a, b, c = store["runs"]
    out = store["root"] / "report" / "report.html"
    code, stdout, stderr = _cli("compare", a, b, c, "--output", str(out))
    assert code == 0, stderr
    assert stdout.strip().splitlines()[-1] == str(out)  # prints the path
    return out, out.read_text()


def _cli(*argv: str) -> tuple[int, str, str]:
    import contextlib
    import io

    from pipelines.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(argv))
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
    return code, out.getvalue(), err.getvalue()


def _cell(page: str, attr: str, key: str, run_id: str) -> str:
    """The <td> of run `run_id` in the row whose `attr` is `key`."""
    row = re.search(rf'<tr {attr}="{re.escape(key)}">(.*?)</tr>', page, re.S)
    assert row, f"no row {attr}={key!r} in the report"
    cell = re.search(rf'<td[^>]*data-run="{run_id}"[^>]*>.*?</td>', row.group(1), re.S)
    assert cell, f"row {key!r} has no cell for run {run_id}"
    return cell.group(0)


def test_report_contents_and_mlflow_run(store, report):
    import av
    from mlflow import MlflowClient

    a, b, c = store["runs"]
    out, page = report

    # metrics: values and deltas vs the baseline A, coloured by better/worse (eval_wall_s: lower is better)
    for run_id, metrics in ((b, METRICS_B), (c, METRICS_C)):
        for name, value in metrics.items():
            cell = _cell(page, "data-metric", name, run_id)
            delta = float(re.search(r'data-delta="([^"]+)"', cell).group(1))
            assert delta == pytest.approx(value - METRICS_A[name], abs=1e-9), (name, run_id)
    # the reviewer sees the subject: run A's cells show its identity image and its image-dropped clip beside
    # the clip; run B (logged before evaluate kept them) shows the clip alone
    for sid in SAMPLES:
        cell_a, cell_b = _cell(page, "data-sample", sid, a), _cell(page, "data-sample", sid, b)
        assert 'class="triptych"' in cell_a and "<figcaption>image dropped</figcaption>" in cell_a
        assert re.search(r'<img class="identity" src="[^"]+_identity\.png"', cell_a)
        assert 'data-variant="no-image"' in cell_a and "triptych" not in cell_b
    assert 'class="num better"' in _cell(page, "data-metric", "sprites_identity", b)  # 0.50 -> 0.62
    assert "▲ +0.1200" in _cell(page, "data-metric", "sprites_identity", b)
    assert 'class="num worse"' in _cell(page, "data-metric", "sprites_motion", b)  # 0.80 -> 0.75
    assert 'class="num worse"' in _cell(page, "data-metric", "eval_wall_s", b)  # 10 s -> 12.5 s
    assert 'class="num better"' in _cell(page, "data-metric", "eval_wall_s", c)  # 10 s -> 8 s
    assert 'class="num same"' in _cell(page, "data-metric", "clip_t", b)
    assert "data-delta" not in _cell(page, "data-metric", "clip_t", a)  # the baseline has none

    # config diff: exactly the key B changed, highlighted in B's column
    keys = re.findall(r'<tr data-key="([^"]+)">', page)
    assert keys == ["evaluate.seed"], keys
    assert 'class="differs"><code>7</code>' in _cell(page, "data-key", "evaluate.seed", b)

    # data versions: B differs from the baseline and is highlighted; the page says so at the top
    dv = re.search(r'<table id="data-version-table">.*?</table>', page, re.S).group(0)
    dv_rows = dict(re.findall(r'<tr data-run="([^"]+)">(.*?)</tr>', dv, re.S))
    assert '<td class="differs"><code>dvhash-bbbb</code>' in dv_rows[b]
    assert '<td class=""><code>dvhash-aaaa</code>' in dv_rows[a] and '<code>dvhash-aaaa</code>' in dv_rows[c]
    assert "differs" not in dv_rows[c]
    assert 'id="data-version-verdict"' in page and "different data versions" in page
    assert "data versions differ" in page

    # metadata: run names, git commit, preset
    assert page.count("<td>evaluate</td>") >= 3 and "0123456789ab" in page and "<td>ci</td>" in page

    # videos: side by side per sample id; C says "no videos"; files beside the report, relative links
    for sid in SAMPLES:
        for run_id in (a, b):
            cell = _cell(page, "data-sample", sid, run_id)
            src = re.search(r'<video src="([^"]+)"', cell).group(1)
            assert src == f"report_files/{run_id}/{sid}.mp4"
            with av.open(str(out.parent / src)) as f:  # re-encoded: 4:2:0, 32 px upscaled x4
                ctx = f.streams.video[0].codec_context
                assert (ctx.pix_fmt, ctx.width, ctx.height) == ("yuv420p", 128, 128)
        assert "no videos" in _cell(page, "data-sample", sid, c)
    assert "a square number 1 slides right" in page
    assert (out.parent / "report_files" / a / "contact_sheet.png").is_file()

    # logged to MLflow: a compare run in the same experiment, tagged with the compared runs
    client = MlflowClient(store["uri"])
    exp = client.get_run(a).info.experiment_id
    found = client.search_runs([exp], "tags.`vidcustom.step` = 'compare'")
    assert len(found) == 1
    cmp = found[0]
    assert cmp.data.tags["vidcustom.compare.run_ids"] == ",".join((a, b, c))
    assert cmp.data.tags["vidcustom.compare.baseline"] == a
    names = {f.path for f in client.list_artifacts(cmp.info.run_id, "compare")}
    assert {"compare/report.html", "compare/report_files", "compare/report_inline.html"} <= names
    videos = {f.path for f in client.list_artifacts(cmp.info.run_id, f"compare/report_files/{a}")}
    assert f"compare/report_files/{a}/{SAMPLES[0]}.mp4" in videos


def test_baseline_embed_and_errors(store, tmp_path):
    a, b, c = store["runs"]
    # --baseline reorders; --embed writes one file with data: URIs and no folder; --no-log logs nothing
    out = tmp_path / "one.html"
    code, _, stderr = _cli("compare", a, b, "--baseline", b, "--embed", "--no-log", "--output", str(out))
    assert code == 0, stderr
    page = out.read_text()
    assert not (tmp_path / "one_files").exists()
    # 2 samples x 2 runs, plus run A's 2 image-dropped clips; run A's identity images embedded too
    assert page.count('<video src="data:video/mp4;base64,') == 6
    assert page.count('<img class="identity" src="data:image/png;base64,') == 2
    delta = float(re.search(r'data-delta="([^"]+)"', _cell(page, "data-metric", "sprites_identity", a)).group(1))
    assert delta == pytest.approx(0.50 - 0.62)

    code, _, stderr = _cli("compare", a, "nosuchrun0123", "deadbeef", "--output", str(tmp_path / "x.html"))
    assert code == 2 and "unknown MLflow run ids 'nosuchrun0123', 'deadbeef'" in stderr, stderr
    code, _, stderr = _cli("compare", a, "--output", str(tmp_path / "x.html"))
    assert code == 2 and "at least 2 distinct run ids" in stderr, stderr
    code, _, stderr = _cli("compare", a, a, "--output", str(tmp_path / "x.html"))
    assert code == 2 and "at least 2 distinct run ids" in stderr, stderr
    assert not (tmp_path / "x.html").exists()


# ---------------------------------------------------------------------------------------- headless browser
def _chromium() -> str:
    if os.environ.get("VIDCUSTOM_SKIP_BROWSER") == "1":
        pytest.skip("VIDCUSTOM_SKIP_BROWSER=1")
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("no Chromium for the report's browser check: apt-get install chromium "
                "(or set VIDCUSTOM_SKIP_BROWSER=1 to skip this test locally)")


def _chrome(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--mute-audio", "--hide-scrollbars", f"--user-data-dir={profile}",
           "--autoplay-policy=no-user-gesture-required", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}"
    return proc


def test_report_plays_in_headless_chromium(store, report, tmp_path):
    from PIL import Image

    binary = _chromium()
    a, b, c = store["runs"]
    out, _ = report
    url = out.as_uri()

    # --allow-file-access-from-files lets the page read the decoded frames (lit pixels) of file:// videos
    dom = _chrome(binary, tmp_path / "profile-dom", "--allow-file-access-from-files", "--virtual-time-budget=8000",
                  "--dump-dom", url).stdout
    assert 'id="metrics-table"' in dom and 'data-metric="sprites_identity"' in dom  # the page loaded, table there
    status_text = re.search(r'<pre id="video-status">(.*?)</pre>', dom, re.S).group(1)
    status = json.loads(html.unescape(status_text))
    print("video status from headless Chromium:")
    for s in status:
        print(f"  run {s['run'][:8]} {s['sample']}: loaded={s['loaded']} maxReadyState={s['maxReadyState']} "
              f"played={s['played']:.3f}s of {s['duration']}s maxTime={s['maxTime']:.3f} "
              f"framesDecoded={s['framesDecoded']} loops={s['loops']} size={s['videoWidth']}x{s['videoHeight']} "
              f"error={s['error']} lit={s['lit']} "
              f"(now: readyState={s['readyState']} currentTime={s['currentTime']:.3f})")
    # run A logged each sample's image-dropped clip too: subject | with the image | image dropped
    assert sorted((s["run"], s["sample"]) for s in status) == sorted(
        [(r, sid) for r in (a, b) for sid in SAMPLES] + [(a, sid) for sid in SAMPLES])
    for s in status:
        assert s["error"] is None, s
        assert s["loaded"] and s["maxReadyState"] >= 2, s  # loadeddata fired: HAVE_CURRENT_DATA, a frame decoded
        assert s["played"] > 0 and s["maxTime"] > 0, s  # the clock moved: it plays
        assert s["framesDecoded"] >= 2, s  # more than the first frame was decoded
        assert (s["videoWidth"], s["videoHeight"]) == (128, 128), s
        # a decoded frame is the square on black: 100 of 1024 pixels lit
        assert s["lit"] is not None and 0.05 < s["lit"] < 0.2, s
    summary = re.search(r'<span id="playback-summary">(.*?)</span>', dom).group(1)
    assert summary == "6/6 videos playing", summary

    shot = tmp_path / "compare.png"
    _chrome(binary, tmp_path / "profile-shot", "--allow-file-access-from-files", "--virtual-time-budget=3000",
            f"--screenshot={shot}", "--window-size=1400,1000", url)
    assert shot.is_file() and shot.stat().st_size > 0
    with Image.open(shot) as img:
        rgb = np.asarray(img.convert("RGB"))
    colours = np.unique(rgb.reshape(-1, 3), axis=0)
    assert len(colours) > 16, f"screenshot {shot} is blank ({len(colours)} colours)"
    print(f"screenshot: {shot} ({rgb.shape[1]}x{rgb.shape[0]}, {len(colours)} colours)")
    if ROOT.is_dir():
        keep = ROOT / "bench-out" / "compare_screenshot.png"
        keep.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, keep)
        print(f"screenshot copied to {keep}")
