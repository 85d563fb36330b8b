"""The validate step's result types: ValidationResult (the Validation result contract) and ValidationFailed.

Kept apart from .validate (which runs the checks) and .report (which renders a result) so that neither
has to import the other.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from .media_checks import MediaFailure
from .suite import SUITE_NAME, ExpectationOutcome


@dataclass
class ValidationResult:
    """The Validation result contract (DESIGN.md). Paths point into the report directory."""

    success: bool
    dataset_dir: Path
    n_rows: int
    n_expectations: int
    failed_expectations: list[ExpectationOutcome]
    media_failures: list[MediaFailure]
    gx_result: Path  # Great Expectations ExpectationSuiteValidationResult, JSON
    data_docs: Path  # GX Data Docs site index (built by GX's SiteBuilder)
    report_html: Path  # one self-contained page: our summary + GX's rendered validation page (KFP HTML artifact)
    report_md: Path
    suite_name: str = SUITE_NAME
    dvc_hash: str | None = None  # "<md5>.dir" once validated (and pushed when validate.push)
    remote: str | None = None  # where it was pushed; None when validate.push is off
    uploaded: int | None = None  # objects sent to the remote by this run (0: content was already there)
    dvc_file: Path | None = None
    error: str | None = None  # the manifest could not be read at all

    def summary(self) -> str:
        head = (f"dataset {self.dataset_dir} ({self.n_rows} rows) {'passed' if self.success else 'FAILED'} "
                f"validation: {len(self.failed_expectations)} of {self.n_expectations} expectations failed, "
                f"{len(self.media_failures)} media check failures")
        lines = [head]
        if self.error:
            lines.append(f"  manifest: {self.error}")
        for o in self.failed_expectations:
            rows = "" if o.failed_rows is None else f" on {o.failed_rows} rows"
            ids = f" (e.g. {', '.join(o.sample_ids[:5])})" if o.sample_ids else ""
            obs = f" [{o.observed}]" if o.observed and not o.sample_ids else ""
            lines.append(f"  - {o.description}{rows}{ids}{obs}")
        for f in self.media_failures[:10]:
            lines.append(f"  - {f.sample_id}: {f.check}: {f.message}")
        if len(self.media_failures) > 10:
            lines.append(f"  - ... {len(self.media_failures) - 10} more media failures")
        if self.dvc_hash:
            lines.append(f"  version {self.dvc_hash}" + (f" pushed to {self.remote}" if self.remote else ""))
        lines.append(f"  report: {self.report_md}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["media_failures"] = [f._asdict() for f in self.media_failures]
        return json.loads(json.dumps(d, default=str))  # Paths -> str


class ValidationFailed(ValueError):
    """The dataset failed validation; `result` holds the details, the report files are already written."""

    def __init__(self, result: ValidationResult):
        super().__init__(result.summary())
        self.result = result
