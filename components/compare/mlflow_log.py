"""A written report logged to MLflow as a new `compare` run in the baseline's experiment, tagged with the
compared run ids."""

from __future__ import annotations

import time
from pathlib import Path

from components.compare.runs import RunData

RUN_IDS_TAG = "vidcustom.compare.run_ids"
BASELINE_TAG = "vidcustom.compare.baseline"


def log_report(client, runs: list[RunData], output: Path, files: Path | None, inline: str) -> str:
    """Log the report (compare/<name>.html), its files folder (compare/<stem>_files/, None when embedded)
    and `inline`, a single-file copy the MLflow UI can show (compare/report_inline.html). The run's id."""
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
    except Exception:  # a half-logged report must not look like a finished one
        client.set_terminated(rid, "FAILED")
        raise
    client.set_terminated(rid, "FINISHED")
    return rid
