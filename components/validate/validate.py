"""The validate step: GX suite over the manifest + per-sample media checks, then the DVC version.

Order matters: the report files are always written first; a failing dataset raises ValidationFailed
before anything is hashed or pushed, so a remote only ever holds validated versions.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from components.dataset import MANIFEST, read_manifest

from .media_checks import check_media
from .result import ValidationFailed, ValidationResult

__all__ = ["ValidationFailed", "ValidationResult", "run"]

if TYPE_CHECKING:
    from components.config import RunConfig

log = logging.getLogger(__name__)

GX_RESULT = "gx_result.json"
DATA_DOCS = "data_docs"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
RESULT_JSON = "validation.json"
DVC_FILE = "dataset.dvc"


def _write_reports(result: ValidationResult, gx_page: str, limit: int, report_dir: Path) -> None:
    from .report import inject_summary, render_html_summary, render_markdown

    result.report_md.write_text(render_markdown(result, limit))
    result.report_html.write_text(inject_summary(gx_page, render_html_summary(result, limit)))
    (report_dir / RESULT_JSON).write_text(json.dumps(result.to_dict(), indent=2))


def run(dataset_dir: str | Path, report_dir: str | Path, cfg: RunConfig) -> ValidationResult:
    """Validate the dataset directory, write the reports into `report_dir`, then version and push it.

    Raises ValidationFailed (after writing the reports, before any push) when a check fails, and
    dataset_versioning.RemoteError when the DVC remote cannot be used.
    """
    from .suite import render_validation_page, run_suite

    dataset_dir, report_dir = Path(dataset_dir).resolve(), Path(report_dir).resolve()
    if not dataset_dir.is_dir():
        raise FileNotFoundError(f"dataset directory {dataset_dir} does not exist (run the synthesize step first)")
    if report_dir == dataset_dir or dataset_dir in report_dir.parents:
        raise ValueError(f"report directory {report_dir} is inside the dataset {dataset_dir}: the report would "
                         "change the dataset's content hash; write it elsewhere")
    report_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(report_dir / DATA_DOCS, ignore_errors=True)  # GX adds pages; keep only this run's
    limit = cfg.validate_.max_listed_ids

    error = None
    try:
        df = read_manifest(dataset_dir)
    except FileNotFoundError:
        raise
    except Exception as err:  # pyarrow raises several types for a truncated/garbage parquet file
        import pandas as pd

        from components.dataset import MANIFEST_COLUMNS

        error = f"{dataset_dir / MANIFEST} cannot be read ({type(err).__name__}: {err}); regenerate the dataset"
        df = pd.DataFrame({c: pd.Series([], dtype=t) for c, t in MANIFEST_COLUMNS.items()})

    log.info("validating %s: %d rows", dataset_dir, len(df))
    suite_run = run_suite(df, cfg, docs_dir=report_dir / DATA_DOCS, max_ids=limit)
    media = check_media(dataset_dir, df, cfg.validate_.workers, cfg.validate_.checksums) if error is None else []
    result = ValidationResult(
        success=suite_run.success and not media and error is None, dataset_dir=dataset_dir, n_rows=len(df),
        n_expectations=len(suite_run.outcomes), failed_expectations=suite_run.failed, media_failures=media,
        gx_result=report_dir / GX_RESULT, data_docs=report_dir / DATA_DOCS / "index.html",
        report_html=report_dir / REPORT_HTML, report_md=report_dir / REPORT_MD, error=error,
    )
    result.gx_result.write_text(suite_run.to_json())
    gx_page = render_validation_page(suite_run)
    _write_reports(result, gx_page, limit, report_dir)
    if not result.success:
        raise ValidationFailed(result)

    from components.dataset_versioning import content_hash, push, write_dvc_file

    if cfg.validate_.push:
        pushed = push(dataset_dir, cfg.dvc_remote(), endpoint_url=cfg.validate_.remote_endpoint_url)
        result.dvc_hash, result.remote, result.uploaded = pushed.version, pushed.remote, pushed.uploaded
        nfiles, size = pushed.nfiles, pushed.size
        log.info("pushed %s to %s (%d new objects)", pushed.version, pushed.remote, pushed.uploaded)
    else:
        result.dvc_hash, nfiles, size = content_hash(dataset_dir)
    result.dvc_file = write_dvc_file(report_dir / DVC_FILE, result.dvc_hash, nfiles, size, result.remote,
                                     endpoint_url=cfg.validate_.remote_endpoint_url)
    _write_reports(result, gx_page, limit, report_dir)  # again, now with the version
    return result
