"""The validate step's MLflow run: the dataset version, validation counts, the synthesis filter counts
and the reports, so a reviewer sees which data a model was trained on and what was filtered out."""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def dataset_summary(dataset_dir: str | Path) -> dict:
    """The synthesize step's summary.json of a dataset ({} when absent or unreadable)."""
    try:
        return json.loads((Path(dataset_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def filter_metrics(summary: dict) -> dict[str, float]:
    """{"filter.<name>.kept": n, "filter.<name>.dropped": n} from a synthesize summary."""
    out: dict[str, float] = {}
    for name, counts in summary.get("filters", {}).items():
        for key in ("kept", "dropped"):
            if key in counts:
                out[f"filter.{name}.{key}"] = float(counts[key])
    return out


def log_validation(result, cfg) -> str | None:
    """Log one `validate` run (tagged with the data version when it passed); returns its run id.

    A tracking failure is logged as a warning, not raised: the dataset is validated and pushed
    already, its version travels on to every later step's run, and the reports are on disk.
    """
    import mlflow

    from components.tracking import step_run

    summary = dataset_summary(result.dataset_dir)
    try:
        with step_run(cfg, "validate", result.dvc_hash) as run:
            mlflow.set_tags({"validation": "passed" if result.success else "failed",
                             "dvc_remote": result.remote or "", "dataset.backend": summary.get("backend", "")})
            mlflow.log_metrics({"rows": result.n_rows, "expectations": result.n_expectations,
                                "expectations_failed": len(result.failed_expectations),
                                "media_failures": len(result.media_failures), **filter_metrics(summary)})
            for path in (result.report_html, result.report_md, result.gx_result, result.dvc_file):
                if path is not None and Path(path).is_file():
                    mlflow.log_artifact(str(path), "validation")
            if summary:
                mlflow.log_dict(summary, "validation/synthesize_summary.json")
            docs = Path(result.data_docs).parent
            if docs.is_dir():
                mlflow.log_artifacts(str(docs), "validation/data_docs")
            return run.info.run_id
    except Exception as err:  # noqa: BLE001 - tracking must not undo a validated, pushed dataset
        log.warning("validate: could not log to MLflow (%s: %s); the reports are in %s", type(err).__name__, err,
                    Path(result.report_md).parent)
        return None
