"""`vidcustom compare RUN_ID RUN_ID ...`: one HTML report comparing MLflow evaluate runs.

The report has, in order: warnings (runs without videos, differing data versions, ...), run metadata
(name, start time, git commit, preset, ...), the metrics with deltas against the baseline (the first run,
or --baseline), the sample videos of every run side by side (one row per sample id; a sample id only one
run has joins the row of another run's sample with the same prompt; "no videos" for a run without any),
the config.json keys that differ, the `data_version` tag of each run (highlighted where it differs from
the baseline's), and the contact sheets.

Videos are re-encoded for browsers: evaluate may have written High 4:4:4 H.264 (Chrome does not play
it) at 32x32. Each clip is upscaled by an integer factor (nearest neighbour, up to 128 px on its long
side), padded to even sizes and written as yuv420p H.264 MP4. They and the contact sheets go in a folder
beside the report, `<stem>_files/` (report.html -> report_files/), linked by relative paths; with
embed=True (`--embed`) they are data: URIs inside the one HTML file instead.

The report is logged to MLflow as artifacts of a new `compare` run in the baseline's experiment
(compare/<name>.html, compare/<stem>_files/ and compare/report_inline.html, a single-file copy the
MLflow UI can show), tagged with the compared run ids.

A small script in the page records each video's playback (readyState, time played, frames decoded, size,
error, share of lit pixels in a decoded frame) as JSON in <pre id="video-status"> and a summary ("4/4
videos playing") in the header; the tests read them from headless Chromium.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

EVAL_DIR = "evaluation"  # evaluate logs its output folder under this artifact path
VIDEO_DIRS = (f"{EVAL_DIR}/videos",)  # where evaluate's sample videos are; other runs are searched
VIDEO_EXTS = (".mp4", ".webm", ".mov", ".mkv", ".avi")
PER_SAMPLE = (f"{EVAL_DIR}/per_sample.parquet", "per_sample.json")
CONTACT_SHEET = f"{EVAL_DIR}/contact_sheet.png"
RUN_IDS_TAG = "vidcustom.compare.run_ids"
BASELINE_TAG = "vidcustom.compare.baseline"
MARKER = ".vidcustom-compare"  # marks a files folder this module wrote (and may therefore replace)
DISPLAY_SIDE = 128  # clips are upscaled by an integer factor towards this long side
# Metrics where a smaller value is the better one; every other metric counts as higher-is-better.
LOWER_IS_BETTER = re.compile(r"(wall_s$|_seconds?$|loss|fvd|fid$|lpips|mse|error|latency)", re.I)
MISSING = object()
PROGRESS_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@dataclass
class RunData:
    run_id: str
    name: str
    experiment_id: str
    experiment: str
    status: str
    lifecycle: str
    start_ms: int | None
    end_ms: int | None
    tags: dict[str, str]
    metrics: dict[str, float]
    config: dict[str, str] | None = None  # flattened config.json; None when the run has none
    videos: dict[str, Path] = field(default_factory=dict)  # sample id -> browser-playable file
    video_errors: dict[str, str] = field(default_factory=dict)  # sample id -> why it could not be shown
    samples: dict[str, dict] = field(default_factory=dict)  # sample id -> per-sample table row
    contact_sheet: Path | None = None
    video_source: str | None = None  # the artifact folder the videos came from

    @property
    def short(self) -> str:
        return self.run_id[:8]


# --------------------------------------------------------------------------------------------- loading
def _not_found(err: Exception) -> bool:
    code = getattr(err, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") or "not found" in str(err).lower()


def fetch_runs(client, run_ids: list[str], tracking_uri: str) -> list:
    """mlflow Run objects for `run_ids`; ValueError naming every id the store does not have."""
    from mlflow.exceptions import MlflowException

    runs, unknown = [], []
    for rid in run_ids:
        try:
            runs.append(client.get_run(rid))
        except MlflowException as err:
            if not _not_found(err):
                raise RuntimeError(f"cannot read MLflow run {rid} from {tracking_uri}: {err}") from None
            unknown.append(rid)
    if unknown:
        raise ValueError(f"unknown MLflow run id{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: "
                         f"not in the tracking store {tracking_uri} (pass --tracking-uri, --params or set "
                         "MLFLOW_TRACKING_URI for another store; `mlflow runs list --experiment-id ID` lists run ids)")
    return runs


def flatten_config(d: dict, prefix: str = "") -> dict[str, str]:
    """{"a": {"b": 1}} -> {"a.b": "1"}; lists and scalars as compact JSON, nothing truncated."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten_config(v, key))
        else:
            out[key] = json.dumps(v, sort_keys=True) if not isinstance(v, str) else v
    return out


def _list_videos(client, run_id: str) -> tuple[str | None, list[str]]:
    """(folder, artifact paths) of a run's sample videos: evaluate's folder, else any video artifact."""
    for folder in VIDEO_DIRS:
        files = [f.path for f in client.list_artifacts(run_id, folder)
                 if not f.is_dir and f.path.lower().endswith(VIDEO_EXTS)]
        if files:
            return folder, sorted(files)
    found: list[str] = []

    def walk(path: str | None, depth: int) -> None:
        for f in client.list_artifacts(run_id, path):
            if f.is_dir:
                if depth < 4 and f.path.split("/")[0] != "compare":
                    walk(f.path, depth + 1)
            elif f.path.lower().endswith(VIDEO_EXTS):
                found.append(f.path)

    walk(None, 0)
    folders = sorted({str(Path(p).parent) for p in found})
    return (", ".join(folders) or None), sorted(found)


def _download(client, run_id: str, path: str, dst: Path) -> Path | None:
    """A run's artifact file downloaded under dst, or None when the run has no such artifact."""
    parent = str(Path(path).parent)
    names = {f.path for f in client.list_artifacts(run_id, None if parent == "." else parent)}
    if path not in names:
        return None
    dst.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, path, str(dst)))


def _per_sample(client, run_id: str, tmp: Path) -> dict[str, dict]:
    import pandas as pd

    for path in PER_SAMPLE:
        local = _download(client, run_id, path, tmp)
        if local is None:
            continue
        try:
            if path.endswith(".parquet"):
                table = pd.read_parquet(local)
            else:  # mlflow.log_table's layout
                raw = json.loads(local.read_text())
                table = pd.DataFrame(raw["data"], columns=raw["columns"])
        except Exception as err:  # a broken table costs the prompts, not the report
            log.warning("run %s: cannot read %s (%s)", run_id, path, err)
            continue
        key = "sample_id" if "sample_id" in table else "id" if "id" in table else None
        if key is None:
            continue
        return {str(row[key]): row for row in table.to_dict("records")}
    return {}


def browser_video(src: Path, dst: Path) -> tuple[int, int, int]:
    """Re-encode a video as yuv420p H.264 MP4 that browsers play; small clips upscaled (nearest) towards
    DISPLAY_SIDE px by an integer factor, sizes padded to what yuv420p needs. (frames, height, width)."""
    import numpy as np

    from components.media import read_video, write_video

    frames, fps = read_video(src)
    k = max(1, DISPLAY_SIDE // max(frames.shape[1:3]))
    if k > 1:
        frames = frames.repeat(k, axis=1).repeat(k, axis=2)
    pad_h, pad_w = -frames.shape[1] % 4, -frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    write_video(dst, frames, max(1, round(fps or 8)), pix_fmt="yuv420p", crf=18)
    return frames.shape[0], frames.shape[1], frames.shape[2]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "_"


def load_run(client, run, media_dir: Path, tmp: Path) -> RunData:
    """Everything the report shows about one run; videos re-encoded and contact sheet copied to media_dir."""
    info, data = run.info, run.data
    try:
        experiment = client.get_experiment(info.experiment_id).name
    except Exception:  # a missing experiment name is cosmetic
        experiment = str(info.experiment_id)
    rd = RunData(run_id=info.run_id, name=info.run_name or data.tags.get("mlflow.runName", ""),
                 experiment_id=info.experiment_id, experiment=experiment, status=info.status,
                 lifecycle=info.lifecycle_stage, start_ms=info.start_time, end_ms=info.end_time,
                 tags=dict(data.tags), metrics=dict(data.metrics))
    work = tmp / _safe(info.run_id)
    cfg = _download(client, info.run_id, "config.json", work)
    if cfg is not None:
        try:
            rd.config = flatten_config(json.loads(cfg.read_text()))
        except ValueError as err:
            log.warning("run %s: config.json is not JSON (%s)", info.run_id, err)
    rd.samples = _per_sample(client, info.run_id, work)
    rd.video_source, paths = _list_videos(client, info.run_id)
    out_dir = media_dir / _safe(info.run_id)
    for path in paths:
        sid = Path(path).stem
        if sid in rd.videos:  # same stem in two folders (fallback search): keep the first
            continue
        try:
            local = Path(client.download_artifacts(info.run_id, path, str(work / "videos")))
            rd.videos[sid] = out_dir / f"{_safe(sid)}.mp4"
            browser_video(local, rd.videos[sid])
        except Exception as err:  # one broken clip costs its cell, not the report
            rd.videos.pop(sid, None)
            rd.video_errors[sid] = f"{type(err).__name__}: {err}"
            log.warning("run %s: video %s not shown: %s", info.run_id, path, err)
    sheet = _download(client, info.run_id, CONTACT_SHEET, work)
    if sheet is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        rd.contact_sheet = Path(shutil.copyfile(sheet, out_dir / "contact_sheet.png"))
    return rd


# -------------------------------------------------------------------------------------------- analysis
def metric_rows(runs: list[RunData]) -> list[dict]:
    """One row per metric: values per run, delta vs runs[0], whether the change is better or worse."""
    names = sorted({k for r in runs for k in r.metrics}, key=lambda k: ("/" in k, k))
    rows = []
    for name in names:
        base = runs[0].metrics.get(name)
        lower = bool(LOWER_IS_BETTER.search(name))
        cells = []
        for r in runs:
            v = r.metrics.get(name)
            delta = None if v is None or base is None or r is runs[0] else v - base
            if delta is None or not math.isfinite(delta):
                trend = "none"
            elif abs(delta) <= 1e-12 * max(1.0, abs(base)):
                trend = "same"
            else:
                trend = "better" if (delta < 0) == lower else "worse"
            rel = (delta / abs(base)) if delta is not None and base not in (None, 0) else None
            cells.append({"run": r.run_id, "value": v, "delta": delta, "rel": rel, "trend": trend})
        rows.append({"metric": name, "lower_is_better": lower, "cells": cells})
    return rows


def config_diff(runs: list[RunData]) -> tuple[list[dict], int]:
    """(rows for the flattened config keys whose values differ between runs, number of identical keys).
    Runs without a config.json take no part."""
    having = [r for r in runs if r.config is not None]
    keys = sorted({k for r in having for k in r.config})
    rows, same = [], 0
    for key in keys:
        values = [r.config.get(key, MISSING) if r.config is not None else None for r in runs]
        present = [v for r, v in zip(runs, values) if r.config is not None]
        if all(v == present[0] for v in present):
            same += 1
            continue
        rows.append({"key": key, "values": values})
    return rows, same


def sample_rows(runs: list[RunData]) -> list[dict]:
    """Rows of the video grid: matched by sample id, else by prompt; {"key", "prompt", "cells": {run: sid}}."""
    rows: dict[str, dict] = {}

    def prompt_of(r: RunData, sid: str) -> str:
        row = r.samples.get(sid, {})
        return str(row.get("caption") or row.get("prompt") or "")

    for r in runs:
        for sid in _natural(set(r.videos) | set(r.video_errors)):
            prompt = prompt_of(r, sid)
            key = sid if sid in rows and r.run_id not in rows[sid]["cells"] else None
            if key is None and prompt:
                key = next((k for k, row in rows.items() if row["prompt"] == prompt and r.run_id not in row["cells"]),
                           None)
            if key is None:
                key = sid if sid not in rows else f"{sid} ({r.short})"
                rows[key] = {"key": key, "prompt": prompt, "cells": {}}
            rows[key]["cells"][r.run_id] = sid
            rows[key]["prompt"] = rows[key]["prompt"] or prompt
    return list(rows.values())


def _natural(items) -> list[str]:
    return sorted(items, key=lambda s: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)])


# ------------------------------------------------------------------------------------------- rendering
def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _fmt(v: float | None) -> str:
    if v is None:
        return "—"
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4f}" if v == 0 or 1e-3 <= abs(v) < 1e5 else f"{v:.4g}"


def _fmt_delta(d: float) -> str:
    if abs(d) < 1e-3 and d != 0:
        return f"{d:+.3g}"
    return f"{d:+.4f}"


def _time(ms: int | None) -> str:
    if not ms:
        return "—"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(r: RunData) -> str:
    if not r.start_ms or not r.end_ms:
        return "—"
    s = (r.end_ms - r.start_ms) / 1000
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


SECTION_ORDER = ("runs", "metrics", "videos", "config diff", "data versions", "contact sheets")
MIME = {".mp4": "video/mp4", ".webm": "video/webm", ".png": "image/png"}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.sub{color:#59636e;margin-bottom:12px}code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
table{border-collapse:collapse;margin:4px 0}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;font-size:11px;padding:0 6px;border-radius:8px;background:#ddf4ff;color:#0969da;
margin-left:4px}
.better{background:#dafbe1;color:#116329}.worse{background:#ffebe9;color:#a40e26}.same{color:#59636e}
.delta{display:block;font-size:12px}.differs{background:#fff8c5;font-weight:600}
.missing{color:#8c959f;font-style:italic}
.warn{background:#fff8c5;border:1px solid #d4a72c;padding:8px 12px;border-radius:6px}
.warn ul{margin:0;padding-left:18px}.videos td{text-align:center}.videos td.sample{text-align:left;max-width:260px}
video,img.sheet{image-rendering:pixelated;background:#000;max-width:320px}img.sheet{max-width:480px}
.novideo{display:inline-block;padding:40px 16px;color:#8c959f;border:1px dashed #d0d7de}
.small{font-size:12px;color:#59636e}pre#video-status{font-size:11px;white-space:pre-wrap;max-height:240px;overflow:auto}
"""

# Records each video's playback as JSON in <pre id="video-status"> (the browser test reads it): the state
# now (readyState, currentTime) and what was seen since the page loaded: the highest readyState, whether
# `loadeddata` fired, seconds played (the `played` ranges), frames decoded, loops, and the share of lit
# pixels of a decoded frame (only where the page may read frames: file:// needs --allow-file-access-from-files).
SCRIPT = """
(function(){
const vids=Array.from(document.querySelectorAll('video'));
const seen=vids.map(()=>({loaded:false,maxReadyState:0,maxTime:0,loops:0,lit:null}));
function lit(v){try{if(!v.videoWidth||v.readyState<2)return null;const c=document.createElement('canvas');
c.width=v.videoWidth;c.height=v.videoHeight;const g=c.getContext('2d');g.drawImage(v,0,0);
const d=g.getImageData(0,0,c.width,c.height).data;let n=0;
for(let i=0;i<d.length;i+=4){if(Math.max(d[i],d[i+1],d[i+2])>40)n++;}return n/(d.length/4);}catch(e){return null;}}
function played(v){let t=0;for(let i=0;i<v.played.length;i++)t+=v.played.end(i)-v.played.start(i);return t;}
function report(){
 const s=vids.map((v,i)=>{const o=seen[i];o.maxReadyState=Math.max(o.maxReadyState,v.readyState);
  o.maxTime=Math.max(o.maxTime,v.currentTime);const l=lit(v);if(l!==null)o.lit=l;
  const q=v.getVideoPlaybackQuality?v.getVideoPlaybackQuality():null;
  return {run:v.dataset.run,sample:v.dataset.sample,readyState:v.readyState,currentTime:v.currentTime,
  duration:isFinite(v.duration)?v.duration:null,videoWidth:v.videoWidth,videoHeight:v.videoHeight,paused:v.paused,
  error:v.error?v.error.code:null,loaded:o.loaded,maxReadyState:o.maxReadyState,maxTime:o.maxTime,played:played(v),
  framesDecoded:q?q.totalVideoFrames:null,loops:o.loops,lit:o.lit};});
 document.getElementById('video-status').textContent=JSON.stringify(s,null,1);
 const ok=s.filter(x=>x.loaded&&x.played>0&&x.error===null).length;
 document.getElementById('playback-summary').textContent=vids.length?(ok+'/'+vids.length+' videos playing'):'no videos';
}
vids.forEach((v,i)=>{v.addEventListener('loadeddata',()=>{seen[i].loaded=true;report();});
 v.addEventListener('seeked',()=>{seen[i].loops++;});
 ['timeupdate','playing','error'].forEach(ev=>v.addEventListener(ev,report));
 if(v.readyState>=2)seen[i].loaded=true;const p=v.play();if(p&&p.catch)p.catch(()=>{});});
report();setInterval(report,250);
})();
"""


def render(runs: list[RunData], *, tracking_uri: str, out_dir: Path | None, warnings: list[str],
           generated: str) -> str:
    """The report's HTML. Files are linked relative to out_dir, or embedded as data: URIs when it is None."""

    def src(path: Path) -> str:
        if out_dir is None:
            mime = MIME.get(path.suffix.lower(), "application/octet-stream")
            return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
        return urllib.parse.quote(path.relative_to(out_dir).as_posix())

    base = runs[0]

    def run_head(r: RunData, i: int) -> str:
        tag = '<span class="badge">baseline</span>' if i == 0 else ""
        return (f'<th data-run="{_e(r.run_id)}">#{i} {_e(r.name or "(unnamed)")}{tag}<br>'
                f'<code title="{_e(r.run_id)}">{_e(r.short)}</code></th>')

    heads = "".join(run_head(r, i) for i, r in enumerate(runs))
    parts = [f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>vidcustom compare: {_e(", ".join(r.short for r in runs))}</title><style>{CSS}</style></head><body>
<h1>vidcustom compare: {len(runs)} runs</h1>
<div class="sub">Baseline <code>{_e(base.run_id)}</code> ({_e(base.name)}) &middot; generated {_e(generated)} &middot;
tracking store <code>{_e(tracking_uri)}</code> &middot; <span id="playback-summary">videos need JavaScript for the
playback check</span></div>"""]
    if warnings:
        parts.append('<div class="warn" id="warnings"><ul>' + "".join(f"<li>{_e(w)}</li>" for w in warnings)
                     + "</ul></div>")

    sections: dict[str, list[str]] = {}
    # --- runs
    sec = sections["runs"] = []
    sec.append('<h2 id="runs">Runs</h2><table id="runs-table"><tr><th>#</th><th>run name</th><th>run id</th>'
               "<th>experiment</th><th>start time</th><th>duration</th><th>status</th><th>git commit</th>"
               "<th>preset</th><th>method</th><th>step</th></tr>")
    for i, r in enumerate(runs):
        commit = r.tags.get("git_commit", "")
        sec.append(
            f'<tr data-run="{_e(r.run_id)}"><td>{i}{" (baseline)" if i == 0 else ""}</td><td>{_e(r.name)}</td>'
            f"<td><code>{_e(r.run_id)}</code></td><td>{_e(r.experiment)}</td><td>{_time(r.start_ms)}</td>"
            f"<td>{_duration(r)}</td><td>{_e(r.status)}{'' if r.lifecycle == 'active' else f' ({_e(r.lifecycle)})'}"
            f'</td><td><code title="{_e(commit)}">{_e(commit[:12]) or "—"}</code></td>'
            f"<td>{_e(r.tags.get('preset', '—'))}</td><td>{_e(r.tags.get('method', '—'))}</td>"
            f"<td>{_e(r.tags.get('vidcustom.step', '—'))}</td></tr>")
    sec.append("</table>")

    # --- metrics
    sec = sections["metrics"] = []
    mrows = metric_rows(runs)
    sec.append('<h2 id="metrics">Metrics</h2><p class="small">Delta = run − baseline (relative change in '
               'brackets). <span class="better">&nbsp;green&nbsp;</span> better, <span class="worse">&nbsp;red'
               '&nbsp;</span> worse; ▲/▼ is the direction of the change. Lower is better for metrics marked ↓ '
               "(times, losses, errors), higher for the rest.</p>")
    if not mrows:
        sec.append('<p class="missing">No run has metrics.</p>')
    else:
        sec.append(f'<table id="metrics-table"><tr><th>metric</th>{heads}</tr>')
        for row in mrows:
            arrow = " ↓" if row["lower_is_better"] else ""
            cells = []
            for c in row["cells"]:
                attrs = f'data-run="{_e(c["run"])}" data-value="{"" if c["value"] is None else repr(c["value"])}"'
                if c["delta"] is None:
                    cells.append(f'<td class="num" {attrs}>{_fmt(c["value"])}</td>')
                    continue
                up = "▲" if c["delta"] > 0 else "▼" if c["delta"] < 0 else "="
                rel = f" ({c['rel']:+.1%})" if c["rel"] is not None and math.isfinite(c["rel"]) else ""
                cells.append(f'<td class="num {c["trend"]}" {attrs} data-delta="{c["delta"]!r}">{_fmt(c["value"])}'
                             f'<span class="delta">{up} {_fmt_delta(c["delta"])}{rel}</span></td>')
            sec.append(f'<tr data-metric="{_e(row["metric"])}"><td><code>{_e(row["metric"])}</code>{arrow}</td>'
                       + "".join(cells) + "</tr>")
        sec.append("</table>")

    # --- videos
    sec = sections["videos"] = []
    srows = sample_rows(runs)
    sec.append('<h2 id="videos">Sample videos</h2><p class="small">One row per sample id (or prompt); clips '
               "re-encoded as H.264 4:2:0, small ones upscaled with nearest neighbour. They autoplay muted and "
               "loop.</p>")
    if not srows:
        sec.append('<p class="missing">No run has sample videos.</p>')
    else:
        sec.append(f'<table class="videos" id="videos-table"><tr><th>sample</th>{heads}</tr>')
        for row in srows:
            cells = []
            for r in runs:
                sid = row["cells"].get(r.run_id)
                if not r.videos and not r.video_errors:
                    cells.append(f'<td data-run="{_e(r.run_id)}"><span class="novideo">no videos</span></td>')
                elif sid is None:
                    cells.append(f'<td data-run="{_e(r.run_id)}"><span class="novideo">no video for this sample'
                                 "</span></td>")
                elif sid in r.video_errors:
                    cells.append(f'<td data-run="{_e(r.run_id)}"><span class="novideo">video unreadable</span>'
                                 f'<div class="small">{_e(r.video_errors[sid])}</div></td>')
                else:
                    extra = ""
                    prompt = str(r.samples.get(sid, {}).get("caption") or "")
                    if sid != row["key"] or (prompt and prompt != row["prompt"]):
                        extra = f'<div class="small">{_e(sid)}: {_e(prompt)}</div>'
                    scores = " · ".join(f"{k.removeprefix('sprites_')} {_fmt(float(v))}"
                                        for k, v in r.samples.get(sid, {}).items()
                                        if k.startswith("sprites_") and isinstance(v, (int, float)))
                    cells.append(
                        f'<td data-run="{_e(r.run_id)}"><video src="{src(r.videos[sid])}" data-run="{_e(r.run_id)}" '
                        f'data-sample="{_e(sid)}" autoplay muted loop playsinline controls preload="auto"></video>'
                        f'{extra}<div class="small">{_e(scores)}</div></td>')
            sec.append(f'<tr data-sample="{_e(row["key"])}"><td class="sample"><code>{_e(row["key"])}</code><br>'
                       f'{_e(row["prompt"])}</td>' + "".join(cells) + "</tr>")
        sec.append("</table>")

    # --- config diff
    sec = sections["config diff"] = []
    crows, same = config_diff(runs)
    without = [r for r in runs if r.config is None]
    sec.append('<h2 id="config">Config diff</h2>')
    sec.append(f'<p class="small">config.json of each run, flattened; {len(crows)} key'
               f'{"s" if len(crows) != 1 else ""} differ, {same} identical keys not shown.'
               + (" No config.json: " + ", ".join(f"#{runs.index(r)} {_e(r.short)}" for r in without) + "."
                  if without else "") + "</p>")
    if crows:
        sec.append(f'<table id="config-table"><tr><th>key</th>{heads}</tr>')
        for row in crows:
            cells = []
            for i, (r, v) in enumerate(zip(runs, row["values"])):
                at = f'data-run="{_e(r.run_id)}"'
                if r.config is None:
                    cells.append(f'<td {at} class="missing">no config.json</td>')
                elif v is MISSING:
                    cls = "missing differs" if i > 0 and row["values"][0] is not MISSING else "missing"
                    cells.append(f'<td {at} class="{cls}">absent</td>')
                else:
                    cls = "differs" if i > 0 and v != row["values"][0] else ""
                    cells.append(f'<td {at} class="{cls}"><code>{_e(v)}</code></td>')
            sec.append(f'<tr data-key="{_e(row["key"])}"><td><code>{_e(row["key"])}</code></td>' + "".join(cells)
                       + "</tr>")
        sec.append("</table>")

    # --- data versions
    sec = sections["data versions"] = []
    versions = [r.tags.get("data_version") for r in runs]
    differ = len(set(versions)) > 1
    sec.append('<h2 id="data-version">Data version</h2>')
    sec.append(f'<p class="{"differs" if differ else "same"}" id="data-version-verdict">'
               + ("The runs were evaluated on different data versions: metric deltas mix model and data changes."
                  if differ else "All runs share one data version.") + "</p>")
    sec.append('<table id="data-version-table"><tr><th>run</th><th><code>data_version</code> tag</th><th></th></tr>')
    for i, (r, v) in enumerate(zip(runs, versions)):
        cls = "differs" if v != versions[0] else ""
        note = "baseline" if i == 0 else ("differs from baseline" if v != versions[0] else "same as baseline")
        shown = f"<code>{_e(v)}</code>" if v else '<span class="missing">not tagged</span>'
        sec.append(f'<tr data-run="{_e(r.run_id)}"><td>#{i} {_e(r.name)} <code>{_e(r.short)}</code></td>'
                   f'<td class="{cls}">{shown}</td><td class="small">{note}</td></tr>')
    sec.append("</table>")

    # --- contact sheets
    sec = sections["contact sheets"] = []
    sheets = [(i, r) for i, r in enumerate(runs) if r.contact_sheet is not None]
    if sheets:
        sec.append('<h2 id="contact-sheets">Contact sheets</h2><p class="small">Per sample: identity image, then '
                   "evenly spaced frames.</p><table><tr>"
                   + "".join(run_head(r, i) for i, r in sheets) + "</tr><tr>"
                   + "".join(f'<td><img class="sheet" alt="contact sheet of {_e(r.short)}" '
                             f'src="{src(r.contact_sheet)}"></td>' for _, r in sheets) + "</tr></table>")

    parts.extend(x for name in SECTION_ORDER for x in sections[name])
    parts.append('<h2 id="playback">Playback check</h2><details><summary class="small">State of every video in this '
                 "browser (readyState ≥ 2 and currentTime &gt; 0 means it plays)</summary>"
                 '<pre id="video-status">[]</pre></details>')
    parts.append(f"<script>{SCRIPT}</script></body></html>\n")
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------- driver
def files_dir_for(output: Path) -> Path:
    return output.with_name(f"{output.stem}_files")


def _prepare_files_dir(path: Path) -> None:
    if path.exists():
        if not (path / MARKER).is_file() and any(path.iterdir()):
            raise ValueError(f"{path} exists and was not written by `vidcustom compare`; remove it or pick another "
                             "--output")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("written by vidcustom compare; replaced on the next report with this name\n")


def _reachable(uri: str) -> None:
    """Fail at once, naming the server, when a remote tracking server does not answer (MLflow's own client
    would retry for minutes)."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=10):
            return
    except OSError as err:
        raise RuntimeError(f"MLflow tracking server {uri} is unreachable ({err}); start it or pass --tracking-uri "
                           "for the store that holds the runs") from None


def _order(run_ids: list[str], baseline: str | None) -> list[str]:
    ids = list(dict.fromkeys(r.strip() for r in run_ids if r.strip()))
    if baseline:
        ids = [baseline] + [r for r in ids if r != baseline]
    if len(ids) < 2:
        raise ValueError(f"compare needs at least 2 distinct run ids, got {len(ids)} ({', '.join(ids) or 'none'}); "
                         "pass the evaluate runs to compare, e.g. `vidcustom compare RUN_A RUN_B`")
    return ids


def compare(run_ids: list[str], output: str | Path = "compare_report.html", *, baseline: str | None = None,
            tracking_uri: str | None = None, embed: bool = False, log_to_mlflow: bool = True) -> dict:
    """Write the comparison report of `run_ids` (the first, or `baseline`, is the baseline) and log it to
    MLflow. {"report", "files", "run_id" (the compare run, None when not logged), "runs", "warnings"}."""
    import mlflow
    from mlflow import MlflowClient

    ids = _order(run_ids, baseline)
    output = Path(output).resolve()
    if output.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"--output {output} must end in .html")
    uri = tracking_uri or mlflow.get_tracking_uri()
    _reachable(uri)
    client = MlflowClient(tracking_uri=uri)
    with _no_progress_bars():
        return _compare(ids, uri, client, output, embed, log_to_mlflow)


@contextmanager
def _no_progress_bars():
    """MLflow draws a progress bar per artifact download; dozens of them bury the report's path."""
    old = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = old


def _compare(ids: list[str], uri: str, client, output: Path, embed: bool, log_to_mlflow: bool) -> dict:
    mruns = fetch_runs(client, ids, uri)
    output.parent.mkdir(parents=True, exist_ok=True)
    files = files_dir_for(output)
    with tempfile.TemporaryDirectory(prefix="vidcustom-compare-") as tmpname:
        tmp = Path(tmpname)
        media = tmp / "media" if embed else files
        if not embed:
            _prepare_files_dir(files)
        runs = [load_run(client, r, media, tmp / "download") for r in mruns]

        warnings = []
        for i, r in enumerate(runs):
            label = f"run #{i} {r.short} ({r.name})"
            if not r.videos and not r.video_errors:
                warnings.append(f"{label} has no sample videos (looked in {', '.join(VIDEO_DIRS)} and the rest "
                                "of its artifacts)")
            if r.video_errors:
                warnings.append(f"{label}: {len(r.video_errors)} video(s) could not be decoded")
            if r.config is None:
                warnings.append(f"{label} has no config.json")
            if not r.metrics:
                warnings.append(f"{label} has no metrics")
            step = r.tags.get("vidcustom.step")
            if step and step != "evaluate":
                warnings.append(f"{label} is a {step!r} run, not an evaluate run")
            if r.lifecycle != "active":
                warnings.append(f"{label} is {r.lifecycle}")
        versions = [r.tags.get("data_version") or "(not tagged)" for r in runs]
        if len(set(versions)) > 1:
            warnings.append("data versions differ (" + ", ".join(f"#{i} {v}" for i, v in enumerate(versions))
                            + "): metric deltas mix model and data changes")
        if len({r.experiment_id for r in runs}) > 1:
            names = sorted({r.experiment for r in runs})
            warnings.append(f"the runs come from different experiments: {', '.join(names)}")
        generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        page = render(runs, tracking_uri=uri, out_dir=None if embed else output.parent, warnings=warnings,
                      generated=generated)
        output.write_text(page, encoding="utf-8")
        log.info("compare report: %s%s", output, "" if embed else f" (videos and images in {files})")

        compare_run = None
        if log_to_mlflow:
            inline = page if embed else render(runs, tracking_uri=uri, out_dir=None, warnings=warnings,
                                               generated=generated)
            compare_run = _log(client, runs, output, None if embed else files, inline)
            log.info("logged to MLflow run %s (experiment %s), artifacts under compare/", compare_run,
                     runs[0].experiment)
    return {"report": str(output), "files": None if embed else str(files), "run_id": compare_run,
            "runs": [r.run_id for r in runs], "samples": len(sample_rows(runs)), "warnings": warnings}


def _log(client, runs: list[RunData], output: Path, files: Path | None, inline: str) -> str:
    from components.tracking import git_commit

    ids = [r.run_id for r in runs]
    tags = {"vidcustom.step": "compare", RUN_IDS_TAG: ",".join(ids), BASELINE_TAG: ids[0],
            "git_commit": git_commit(),
            "mlflow.note.content": "Comparison report of runs " + ", ".join(ids) + f" (baseline {ids[0]}); open "
            "compare/report_inline.html, or download compare/ and open " + output.name}
    for tag in ("preset", "method", "data_version"):
        if runs[0].tags.get(tag):
            tags[f"baseline.{tag}"] = runs[0].tags[tag]
    run = client.create_run(runs[0].experiment_id, run_name="compare", tags=tags, start_time=int(time.time() * 1000))
    rid = run.info.run_id
    try:
        client.log_artifact(rid, str(output), "compare")
        if files is not None:
            client.log_artifacts(rid, str(files), f"compare/{files.name}")
        client.log_text(rid, inline, "compare/report_inline.html")
    except Exception:
        client.set_terminated(rid, "FAILED")
        raise
    client.set_terminated(rid, "FINISHED")
    return rid


# -------------------------------------------------------------------------------------------------- CLI
def add_args(parser) -> None:
    """The `vidcustom compare` / `python -m components.compare` arguments."""
    from components.cli import add_config_args

    parser.add_argument("run_ids", nargs="+", metavar="RUN_ID",
                        help="MLflow run ids of evaluate runs; the first is the baseline unless --baseline")
    parser.add_argument("--output", "-o", default="compare_report.html",
                        help="the HTML report (default: compare_report.html); its videos and images go in a folder "
                             "beside it named <stem>_files/ (report.html -> report_files/), linked relatively")
    parser.add_argument("--baseline", default=None, metavar="RUN_ID",
                        help="the run deltas are measured against (default: the first RUN_ID); added when not "
                             "among the RUN_IDs")
    parser.add_argument("--embed", action="store_true",
                        help="embed videos and images as data: URIs: one self-contained file, no folder")
    parser.add_argument("--no-log", action="store_true", help="do not log the report to MLflow")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store of the runs (default: mlflow.tracking_uri of --params/--preset, "
                             "$MLFLOW_TRACKING_URI, else the local store in the state dir)")
    add_config_args(parser)


def run_args(args) -> dict:
    """Run `compare` for parsed `add_args` arguments; prints the report's path."""
    from components.cli import config_from_args

    uri = args.tracking_uri or config_from_args(args).tracking_uri()
    result = compare(args.run_ids, args.output, baseline=args.baseline, tracking_uri=uri, embed=args.embed,
                     log_to_mlflow=not args.no_log)
    for w in result["warnings"]:
        log.warning("%s", w)
    if result["run_id"]:
        log.info("MLflow compare run: %s", result["run_id"])
    print(result["report"])
    return result
