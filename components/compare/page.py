"""The report's HTML page: warnings, run metadata, metrics with deltas, sample videos side by side, config
diff, data versions and contact sheets, in that order.

A small script in the page records each video's playback (readyState, time played, frames decoded, size,
error, share of lit pixels in a decoded frame) as JSON in <pre id="video-status"> and a summary ("4/4
videos playing") in the header; the tests read them from headless Chromium.
"""

from __future__ import annotations

import base64
import html
import math
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path

from components.compare.diff import MISSING, config_diff, metric_rows, sample_rows
from components.compare.runs import RunData

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
.triptych{display:flex;gap:6px;justify-content:center}.triptych figure{margin:0}.triptych video{max-width:160px}
img.identity{image-rendering:pixelated;width:128px;height:128px;border:1px solid #d0d7de}
figcaption{font-size:11px;color:#59636e}
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
    base = runs[0]
    heads = "".join(_run_head(r, i) for i, r in enumerate(runs))
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
    parts += _runs_section(runs)
    parts += _metrics_section(runs, heads)
    parts += _videos_section(runs, heads, out_dir)
    parts += _config_section(runs, heads)
    parts += _data_versions_section(runs)
    parts += _contact_sheets_section(runs, out_dir)
    parts.append('<h2 id="playback">Playback check</h2><details><summary class="small">State of every video in this '
                 "browser (readyState ≥ 2 and currentTime &gt; 0 means it plays)</summary>"
                 '<pre id="video-status">[]</pre></details>')
    parts.append(f"<script>{SCRIPT}</script></body></html>\n")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------- sections
# Each returns the section's lines; render joins them with newlines.
def _runs_section(runs: list[RunData]) -> list[str]:
    sec = ['<h2 id="runs">Runs</h2><table id="runs-table"><tr><th>#</th><th>run name</th><th>run id</th>'
           "<th>experiment</th><th>start time</th><th>duration</th><th>status</th><th>git commit</th>"
           "<th>preset</th><th>method</th><th>step</th></tr>"]
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
    return sec


def _metrics_section(runs: list[RunData], heads: str) -> list[str]:
    sec = ['<h2 id="metrics">Metrics</h2><p class="small">Delta = run − baseline (relative change in '
           'brackets). <span class="better">&nbsp;green&nbsp;</span> better, <span class="worse">&nbsp;red'
           '&nbsp;</span> worse; ▲/▼ is the direction of the change. Lower is better for metrics marked ↓ '
           "(times, losses, errors), higher for the rest.</p>"]
    mrows = metric_rows(runs)
    if not mrows:
        return sec + ['<p class="missing">No run has metrics.</p>']
    rows = []
    for row in mrows:
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
        arrow = " ↓" if row["lower_is_better"] else ""
        rows.append(("data-metric", row["metric"], f'<td><code>{_e(row["metric"])}</code>{arrow}</td>', cells))
    return sec + _run_columns_table('id="metrics-table"', "metric", heads, rows)


def _videos_section(runs: list[RunData], heads: str, out_dir: Path | None) -> list[str]:
    sec = ['<h2 id="videos">Sample videos</h2><p class="small">One row per sample id (or prompt); clips '
           "re-encoded as H.264 4:2:0, small ones upscaled with nearest neighbour. They autoplay muted and "
           "loop.</p>"]
    srows = sample_rows(runs)
    if not srows:
        return sec + ['<p class="missing">No run has sample videos.</p>']
    rows = []
    for row in srows:
        cells = []
        for r in runs:
            sid = row["cells"].get(r.run_id)
            if not r.has_videos:
                inner = '<span class="novideo">no videos</span>'
            elif sid is None:
                inner = '<span class="novideo">no video for this sample</span>'
            elif sid in r.video_errors:
                inner = ('<span class="novideo">video unreadable</span>'
                         f'<div class="small">{_e(r.video_errors[sid])}</div>')
            else:
                inner = _video(r, sid, row, out_dir)
            cells.append(f'<td data-run="{_e(r.run_id)}">{inner}</td>')
        label = f'<td class="sample"><code>{_e(row["key"])}</code><br>{_e(row["prompt"])}</td>'
        rows.append(("data-sample", row["key"], label, cells))
    return sec + _run_columns_table('class="videos" id="videos-table"', "sample", heads, rows)


def _video(r: RunData, sid: str, row: dict, out_dir: Path | None) -> str:
    """A playable clip's cell content: the clip, its sample id and prompt where they differ from the
    row's (a clip matched by prompt), its per-sample scores."""
    extra = ""
    prompt = str(r.samples.get(sid, {}).get("caption") or "")
    if sid != row["key"] or (prompt and prompt != row["prompt"]):
        extra = f'<div class="small">{_e(sid)}: {_e(prompt)}</div>'
    scores = " · ".join(f"{k.removeprefix('sprites_')} {_fmt(float(v))}"
                        for k, v in r.samples.get(sid, {}).items()
                        if k.startswith("sprites_") and isinstance(v, (int, float)))
    clip = _clip(r.videos[sid], r, sid, out_dir)
    if sid in r.identities or sid in r.no_image_videos:  # subject | with the image | image dropped
        figs = []
        if sid in r.identities:
            figs.append(f'<figure><img class="identity" src="{_src(r.identities[sid], out_dir)}" '
                        f'alt="identity image of {_e(sid)}"><figcaption>subject</figcaption></figure>')
        figs.append(f"<figure>{clip}<figcaption>with the image</figcaption></figure>")
        if sid in r.no_image_videos:
            figs.append(f'<figure>{_clip(r.no_image_videos[sid], r, sid, out_dir, "no-image")}'
                        "<figcaption>image dropped</figcaption></figure>")
        clip = f'<div class="triptych">{"".join(figs)}</div>'
    return f'{clip}{extra}<div class="small">{_e(scores)}</div>'


def _clip(path: Path, r: RunData, sid: str, out_dir: Path | None, variant: str = "image") -> str:
    return (f'<video src="{_src(path, out_dir)}" data-run="{_e(r.run_id)}" data-sample="{_e(sid)}" '
            f'data-variant="{variant}" autoplay muted loop playsinline controls preload="auto"></video>')


def _config_section(runs: list[RunData], heads: str) -> list[str]:
    crows, same = config_diff(runs)
    without = [r for r in runs if r.config is None]
    sec = ['<h2 id="config">Config diff</h2>',
           f'<p class="small">config.json of each run, flattened; {len(crows)} key'
           f'{"s" if len(crows) != 1 else ""} differ, {same} identical keys not shown.'
           + (" No config.json: " + ", ".join(f"#{runs.index(r)} {_e(r.short)}" for r in without) + "."
              if without else "") + "</p>"]
    if not crows:
        return sec
    rows = []
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
        rows.append(("data-key", row["key"], f'<td><code>{_e(row["key"])}</code></td>', cells))
    return sec + _run_columns_table('id="config-table"', "key", heads, rows)


def _data_versions_section(runs: list[RunData]) -> list[str]:
    versions = [r.tags.get("data_version") for r in runs]
    differ = len(set(versions)) > 1
    sec = ['<h2 id="data-version">Data version</h2>',
           f'<p class="{"differs" if differ else "same"}" id="data-version-verdict">'
           + ("The runs were evaluated on different data versions: metric deltas mix model and data changes."
              if differ else "All runs share one data version.") + "</p>",
           '<table id="data-version-table"><tr><th>run</th><th><code>data_version</code> tag</th><th></th></tr>']
    for i, (r, v) in enumerate(zip(runs, versions)):
        cls = "differs" if v != versions[0] else ""
        note = "baseline" if i == 0 else ("differs from baseline" if v != versions[0] else "same as baseline")
        shown = f"<code>{_e(v)}</code>" if v else '<span class="missing">not tagged</span>'
        sec.append(f'<tr data-run="{_e(r.run_id)}"><td>#{i} {_e(r.name)} <code>{_e(r.short)}</code></td>'
                   f'<td class="{cls}">{shown}</td><td class="small">{note}</td></tr>')
    sec.append("</table>")
    return sec


def _contact_sheets_section(runs: list[RunData], out_dir: Path | None) -> list[str]:
    sheets = [(i, r) for i, r in enumerate(runs) if r.contact_sheet is not None]
    if not sheets:
        return []
    return ['<h2 id="contact-sheets">Contact sheets</h2><p class="small">Per sample: identity image, then '
            "evenly spaced frames.</p><table><tr>"
            + "".join(_run_head(r, i) for i, r in sheets) + "</tr><tr>"
            + "".join(f'<td><img class="sheet" alt="contact sheet of {_e(r.short)}" '
                      f'src="{_src(r.contact_sheet, out_dir)}"></td>' for _, r in sheets) + "</tr></table>"]


# -------------------------------------------------------------------------------------------- helpers
def _run_columns_table(attrs: str, corner: str, heads: str, rows: list[tuple]) -> list[str]:
    """Lines of a table with one column per run (metrics, videos, config): a header row of `corner` and
    the run heads, then per row (row attribute, key, first cell, one cell per run)."""
    lines = [f"<table {attrs}><tr><th>{corner}</th>{heads}</tr>"]
    lines += [f'<tr {attr}="{_e(key)}">{first}' + "".join(cells) + "</tr>" for attr, key, first, cells in rows]
    lines.append("</table>")
    return lines


def _run_head(r: RunData, i: int) -> str:
    tag = '<span class="badge">baseline</span>' if i == 0 else ""
    return (f'<th data-run="{_e(r.run_id)}">#{i} {_e(r.name or "(unnamed)")}{tag}<br>'
            f'<code title="{_e(r.run_id)}">{_e(r.short)}</code></th>')


def _src(path: Path, out_dir: Path | None) -> str:
    """A file's link relative to out_dir, or a data: URI when out_dir is None (a self-contained page)."""
    if out_dir is None:
        mime = MIME.get(path.suffix.lower(), "application/octet-stream")
        return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
    return urllib.parse.quote(path.relative_to(out_dir).as_posix())


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _fmt(v: float | None) -> str:
    if v is None:
        return "—"
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4f}" if v == 0 or 1e-3 <= abs(v) < 1e5 else f"{v:.4g}"


def _fmt_delta(d: float) -> str:
    # tiny changes keep significant digits instead of rounding to +0.0000
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
