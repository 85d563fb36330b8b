"""`vidcustom compare RUN_ID RUN_ID ...`: one HTML report comparing MLflow evaluate runs.

The report has, in order: warnings (runs without videos, differing data versions, ...), run metadata
(name, start time, git commit, preset, ...), the metrics with deltas against the baseline (the first run,
or --baseline), the sample videos of every run side by side (one row per sample id; a sample id only one
run has joins the row of another run's sample with the same prompt; "no videos" for a run without any),
the config.json keys that differ, the `data_version` tag of each run (highlighted where it differs from
the baseline's), and the contact sheets.

Videos are re-encoded for browsers (yuv420p H.264, small clips upscaled; see videos.py). They and the
contact sheets go in a folder beside the report, `<stem>_files/` (report.html -> report_files/), linked by
relative paths; with embed=True (`--embed`) they are data: URIs inside the one HTML file instead.

The report is logged to MLflow as artifacts of a new `compare` run in the baseline's experiment
(compare/<name>.html, compare/<stem>_files/ and compare/report_inline.html, a single-file copy the
MLflow UI can show), tagged with the compared run ids.

This module runs the steps: runs.py loads the runs, diff.py compares them, page.py renders the HTML,
mlflow_log.py logs it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from components.compare.diff import run_warnings, sample_rows
from components.compare.mlflow_log import log_report
from components.compare.page import render
from components.compare.runs import fetch_runs, load_run

log = logging.getLogger(__name__)

MARKER = ".vidcustom-compare"  # marks a files folder this module wrote (and may therefore replace)
PROGRESS_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


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

        warnings = run_warnings(runs)
        generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        page = render(runs, tracking_uri=uri, out_dir=None if embed else output.parent, warnings=warnings,
                      generated=generated)
        output.write_text(page, encoding="utf-8")
        log.info("compare report: %s%s", output, "" if embed else f" (videos and images in {files})")

        compare_run = None
        if log_to_mlflow:
            inline = page if embed else render(runs, tracking_uri=uri, out_dir=None, warnings=warnings,
                                               generated=generated)
            compare_run = log_report(client, runs, output, None if embed else files, inline)
            log.info("logged to MLflow run %s (experiment %s), artifacts under compare/", compare_run,
                     runs[0].experiment)
    return {"report": str(output), "files": None if embed else str(files), "run_id": compare_run,
            "runs": [r.run_id for r in runs], "samples": len(sample_rows(runs)), "warnings": warnings}


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
