"""The report's HTML page: warnings, run metadata, metrics with deltas, sample videos side by side, config
diff, data versions and contact sheets, in that order, rendered from templates/page.html.j2 (autoescaped).

A small script in the page (templates/page.js) records each video's playback (readyState, time played,
frames decoded, size, error, share of lit pixels in a decoded frame) as JSON in <pre id="video-status"> and a
summary ("4/4 videos playing") in the header; the tests read them from headless Chromium.
"""

from __future__ import annotations

import base64
import functools
import math
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path

from components.compare.diff import MISSING, config_diff, metric_rows, sample_rows
from components.compare.runs import RunData

MIME = {".mp4": "video/mp4", ".webm": "video/webm", ".png": "image/png"}
TEMPLATES = Path(__file__).parent / "templates"


def render(runs: list[RunData], *, tracking_uri: str, out_dir: Path | None, warnings: list[str],
           generated: str) -> str:
    """The report's HTML. Files are linked relative to out_dir, or embedded as data: URIs when it is None."""
    crows, same = config_diff(runs)
    versions = [r.tags.get("data_version") for r in runs]
    return _environment().get_template("page.html.j2").render(
        runs=runs, base=runs[0], tracking_uri=tracking_uri, generated=generated, warnings=warnings,
        metric_rows=metric_rows(runs), sample_rows=sample_rows(runs), config_rows=crows, config_same=same,
        versions=versions, differ=len(set(versions)) > 1, src=functools.partial(_src, out_dir=out_dir),
        scores=_scores)


@functools.cache
def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(("html", "html.j2"), default=True),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters.update(fmt=_fmt, fmt_delta=_fmt_delta, rel=_rel, time=_time, duration=_duration, repr=repr)
    env.tests["missing"] = lambda value: value is MISSING  # a config key the run's config.json lacks
    return env


def _scores(r: RunData, sid: str) -> str:
    """A sample's per-sample scores, "identity 0.5000 · motion 0.8000"."""
    return " · ".join(f"{k.removeprefix('sprites_')} {_fmt(float(v))}"
                      for k, v in r.samples.get(sid, {}).items()
                      if k.startswith("sprites_") and isinstance(v, (int, float)))


# -------------------------------------------------------------------------------------------- helpers
def _src(path: Path, out_dir: Path | None) -> str:
    """A file's link relative to out_dir, or a data: URI when out_dir is None (a self-contained page)."""
    if out_dir is None:
        mime = MIME.get(path.suffix.lower(), "application/octet-stream")
        return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
    return urllib.parse.quote(path.relative_to(out_dir).as_posix())


def _fmt(v: float | None) -> str:
    if v is None:
        return "—"
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4f}" if v == 0 or 1e-3 <= abs(v) < 1e5 else f"{v:.4g}"


def _rel(rel: float | None) -> str:
    """The relative change in brackets, " (+24.0%)"; nothing when there is none."""
    return f" ({rel:+.1%})" if rel is not None and math.isfinite(rel) else ""


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
