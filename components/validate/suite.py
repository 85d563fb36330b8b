"""The Great Expectations suite over the manifest: schema, value sets, ranges, path shape, checksums,
filter thresholds, category balance, split sizes and split leakage.

Every check is a table-level GX expectation evaluated by pandas in vectorised form, so a 100,000-row
manifest costs seconds, not a Python loop per row. Failing rows are mapped back to their sample_id
through GX's `unexpected_index_column_names`; the full lists stay in the GX result JSON, the
`ExpectationOutcome`s keep the counts and the first few ids for the human report.

All checks are GX core expectations but one: "a subject is in one split only" has no core form (it is a
group-by, not a row or column property), so it is a small custom column-pair expectation,
`ExpectColumnPairValuesAToDetermineB`, whose pandas metric is one vectorised groupby. Being a real GX
expectation, it lands in the GX result JSON and the Data Docs and names its failing rows like the rest.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal

from components.dataset import CATEGORIES, MANIFEST_COLUMNS, SOURCES, SPLITS

if TYPE_CHECKING:
    import pandas as pd

    from components.config import RunConfig

SUITE_NAME = "vidcustom-manifest"
# A manifest path must be relative and stay inside the dataset root: no leading "/" (or "\"), no ".."
# component anywhere. resolve_inside() in the media checks is the authoritative check (symlinks);
# this one fails fast on the whole column without touching the disk.
RELATIVE_PATH_REGEX = r"^(?![/\\])(?!(?:.*[/\\])?\.\.(?:[/\\]|$)).+$"
MD5_REGEX = r"^[0-9a-f]{32}$"  # hex md5 as components.dataset.file_md5 writes it (lower case)
SCORE_COLUMNS = ("clip_text_score", "dino_identity_score", "frame_consistency")
# score column -> (its physical lower bound, the synthesize filter threshold field that kept it)
SCORE_FLOORS = {"clip_text_score": (-1.0, "min_clip_text_score"),
                "dino_identity_score": (-1.0, "min_dino_identity_score"),
                "frame_consistency": (-1.0, "min_frame_consistency"),
                "flow_score": (0.0, "min_flow_score")}
CHECKSUM_COLUMNS = ("identity_md5", "video_md5")
# GX's pandas type check compares the dtype's scalar type: StringDtype (and pandas 3's "str") -> str;
# numpy bool and pandas' nullable "boolean" both have scalar type numpy.bool_ = np.dtype("bool").type.
_GX_TYPE = {"string": "str", "int64": "int64", "float64": "float64", "bool": "bool"}


@dataclass
class ExpectationOutcome:
    """One expectation's verdict, reduced to what a reader needs to act on it."""

    expectation: str  # GX type, e.g. "expect_column_values_to_be_unique"
    column: str | None
    description: str
    success: bool
    failed_rows: int | None = None  # None for table-level expectations (row count, column exists, ...)
    sample_ids: list[str] = field(default_factory=list)  # first failing rows' sample_ids
    observed: str | None = None  # observed value, or the error GX raised while evaluating


@dataclass
class SuiteRun:
    success: bool
    outcomes: list[ExpectationOutcome]
    result: Any  # great_expectations ExpectationSuiteValidationResult
    context: Any  # the ephemeral GX context holding the result (for Data Docs)
    timings: dict[str, float] = field(default_factory=dict)  # seconds: "suite" (GX validation), "data_docs"

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def to_json(self) -> str:
        import json

        return json.dumps(_json_safe(self.result.to_json_dict()), indent=2)


@functools.cache
def custom_expectations() -> SimpleNamespace:
    """The suite's custom GX expectation, defined (and registered with GX) on first use: GX is imported lazily.

    ExpectColumnPairValuesAToDetermineB: every value of column_A occurs with one value of column_B only,
    i.e. B is a function of A. For (subject_id, split) that is "no subject in both train and val". The
    metric is one pandas groupby over the column pair; every row of an offending A value is unexpected.
    """
    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.expectations.expectation import ColumnPairMapExpectation
    from great_expectations.expectations.metrics.map_metric_provider import (ColumnPairMapMetricProvider,
                                                                              column_pair_condition_partial)

    class ColumnPairValuesADetermineB(ColumnPairMapMetricProvider):
        condition_metric_name = "column_pair_values.vidcustom_a_determines_b"
        condition_domain_keys = ("batch_id", "table", "column_A", "column_B", "row_condition", "condition_parser",
                                 "ignore_row_if")
        condition_value_keys = ()

        @column_pair_condition_partial(engine=PandasExecutionEngine)
        def _pandas(cls, column_A, column_B, **kwargs):  # noqa: N803 (GX's argument names)
            # Group by the values, not the index: the frame's index is sample_id, which may be duplicated.
            return column_B.groupby(column_A.to_numpy(), sort=False).transform("nunique").eq(1)

    class ExpectColumnPairValuesAToDetermineB(ColumnPairMapExpectation):
        """Expect each value of column_A to occur with a single value of column_B (B is a function of A)."""

        ignore_row_if: Literal["both_values_are_missing", "either_value_is_missing", "neither"] = \
            "either_value_is_missing"  # a null is the not-null expectation's finding, not this one's
        map_metric = "column_pair_values.vidcustom_a_determines_b"
        success_keys = ("column_A", "column_B", "ignore_row_if", "mostly")
        args_keys = ("column_A", "column_B")
        library_metadata = {"maturity": "experimental", "tags": ["vidcustom"], "contributors": ["vidcustom"]}

    return SimpleNamespace(ExpectColumnPairValuesAToDetermineB=ExpectColumnPairValuesAToDetermineB,
                           metric=ColumnPairValuesADetermineB)


def build_expectations(cfg: RunConfig, columns: list[str], n_rows: int) -> list:
    """The suite's expectations. Column-level ones are only added for columns that exist, so a missing
    column is reported once (by its `expect_column_to_exist`) instead of as a crash in every check.

    `n_rows` turns the share limits (category balance, val fraction) into the row counts GX checks."""
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    present = set(columns)
    m, v, s = cfg.model, cfg.validate_, cfg.synthesize
    exps: list = [gxe.ExpectColumnToExist(column=c, description=f"column {c} exists") for c in MANIFEST_COLUMNS]
    exps.append(gxe.ExpectTableRowCountToBeBetween(min_value=v.min_rows,
                                                   description=f"at least validate.min_rows={v.min_rows} rows"))

    def col(c: str | tuple[str, ...], *items) -> None:
        if all(name in present for name in ((c,) if isinstance(c, str) else c)):
            exps.extend(items)

    for c, dtype in MANIFEST_COLUMNS.items():
        # NaN counts as null in pandas, so this also catches NaN scores.
        col(c, gxe.ExpectColumnValuesToNotBeNull(column=c, description=f"{c} is never null/NaN"),
            gxe.ExpectColumnValuesToBeOfType(column=c, type_=_GX_TYPE[dtype], description=f"{c} has dtype {dtype}"))
    col("sample_id", gxe.ExpectColumnValuesToBeUnique(column="sample_id", description="sample_id is unique"))
    for c, allowed in (("source", SOURCES), ("category", CATEGORIES), ("split", SPLITS)):
        col(c, gxe.ExpectColumnValuesToBeInSet(column=c, value_set=list(allowed), description=f"{c} in {allowed}"))
    col("split", gxe.ExpectColumnDistinctValuesToContainSet(column="split", value_set=list(SPLITS),
                                                            description="both splits (train and val) are present"))
    col("caption",
        gxe.ExpectColumnValueLengthsToBeBetween(column="caption", min_value=1, max_value=v.max_caption_chars,
                                                description=f"caption has 1..{v.max_caption_chars} characters"),
        gxe.ExpectColumnValuesToMatchRegex(column="caption", regex=r"\S", description="caption is not blank"))
    for c in ("height", "width", "num_frames", "fps"):
        want = getattr(m, c)
        col(c, gxe.ExpectColumnValuesToBeInSet(column=c, value_set=[want],
                                               description=f"{c} equals the model's {c}={want} (preset {m.preset})"))
    for c in SCORE_COLUMNS:
        col(c, gxe.ExpectColumnValuesToBeBetween(column=c, min_value=-1.0, max_value=1.0,
                                                 description=f"{c} is a cosine similarity in [-1, 1]"))
    col("flow_score", gxe.ExpectColumnValuesToBeBetween(column="flow_score", min_value=0.0,
                                                        description="flow_score (mean flow magnitude) is >= 0"))
    for c, ext in (("identity_image", "png"), ("video", "mp4")):
        col(c, gxe.ExpectColumnValuesToMatchRegex(column=c, regex=RELATIVE_PATH_REGEX,
                                                  description=f"{c} is a relative path inside the dataset "
                                                              "(no leading '/', no '..')"),
            gxe.ExpectColumnValuesToMatchRegex(column=c, regex=rf"(?i)\.{ext}$", description=f"{c} is a .{ext} file"))
    for c in CHECKSUM_COLUMNS:
        col(c, gxe.ExpectColumnValuesToMatchRegex(column=c, regex=MD5_REGEX,
                                                  description=f"{c} is a hex md5 (32 lower-case hex digits)"))

    if v.check_thresholds:
        # Kept rows passed the synthesize filters: catches a manifest edited (or a filter changed) after filtering.
        # A threshold at or below the score's physical floor is already implied by the range check above.
        for c, (floor, name) in SCORE_FLOORS.items():
            threshold = getattr(s, name)
            if threshold > floor:
                col(c, gxe.ExpectColumnValuesToBeBetween(
                    column=c, min_value=threshold,
                    description=f"{c} >= synthesize.{name}={threshold:g} (the row passed the synthesize filter)"))
        if s.drop_static:
            col("static_video", gxe.ExpectColumnValuesToBeInSet(
                column="static_video", value_set=[False],
                description="static_video is False (synthesize.drop_static: VBench's static filter dropped "
                            "static clips)"))

    # Category balance: each category's row count, under a row condition, against its share of all rows.
    if v.min_category_share > 0:
        least = math.ceil(v.min_category_share * n_rows - 1e-9)
        for c in CATEGORIES:
            col("category", gxe.ExpectTableRowCountToBeBetween(
                min_value=least, row_condition=Column("category") == c,
                description=f"category {c} has at least validate.min_category_share="
                            f"{v.min_category_share:g} of the rows (>= {least} of {n_rows})"))
    # Split sizes: the val split's row count, under a row condition.
    val, most = Column("split") == "val", math.floor(v.max_val_fraction * n_rows + 1e-9)
    col("split",
        gxe.ExpectTableRowCountToBeBetween(min_value=v.min_val_rows, row_condition=val,
                                           description=f"val split has at least validate.min_val_rows="
                                                       f"{v.min_val_rows} rows"),
        gxe.ExpectTableRowCountToBeBetween(max_value=most, row_condition=val,
                                           description=f"val split has at most validate.max_val_fraction="
                                                       f"{v.max_val_fraction:g} of the rows (<= {most} of {n_rows})"))
    # Leakage: a subject's samples all in one split (custom expectation: no GX core form, see the module doc).
    col(("subject_id", "split"), custom_expectations().ExpectColumnPairValuesAToDetermineB(
        column_A="subject_id", column_B="split",
        description="each subject_id is in one split only (no train/val leakage; custom GX expectation: "
                    "one pandas groupby)"))
    return exps


def _quiet_gx() -> None:
    # GX sends usage analytics unless told not to (no network here, and none wanted in a cluster), and logs
    # at INFO/WARNING about its stores; our report is the interface, not its log lines.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.ERROR)


def _context(docs_dir: Path | None):
    import great_expectations as gx
    from great_expectations.data_context.types.base import (DataContextConfig, InMemoryStoreBackendDefaults,
                                                            ProgressBarsConfig)

    sites = {}
    if docs_dir is not None:
        sites["vidcustom"] = {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),  # no tqdm bars in pipeline logs
        data_docs_sites=sites,
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def run_suite(df: pd.DataFrame, cfg: RunConfig, docs_dir: str | Path | None = None,
              max_ids: int | None = None) -> SuiteRun:
    """Validate the manifest dataframe; with `docs_dir`, also build GX Data Docs (index.html) there."""
    start = time.perf_counter()
    _quiet_gx()
    import great_expectations as gx

    max_ids = max_ids or cfg.validate_.max_listed_ids
    docs_dir = Path(docs_dir).resolve() if docs_dir is not None else None
    context = _context(docs_dir)
    batch = (context.data_sources.add_pandas("dataset").add_dataframe_asset("manifest")
             .add_batch_definition_whole_dataframe("manifest"))
    # One store write for the whole suite (add_expectation one by one re-serialises it each time).
    expectations = build_expectations(cfg, list(df.columns), len(df))
    suite = context.suites.add(gx.ExpectationSuite(name=SUITE_NAME, expectations=expectations))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=SUITE_NAME, data=batch, suite=suite))
    # Failing rows are named by sample_id through a named index. GX builds its index list with one pandas
    # lookup per failing row for `unexpected_index_column_names` on a plain column (20 s for 500k failing
    # cells); a named index with `exclude_unexpected_values` is a plain list copy.
    # The offending values themselves are looked up afterwards for the listed rows only (_examples).
    result_format: dict[str, Any] = {"result_format": "COMPLETE", "exclude_unexpected_values": True,
                                     "return_unexpected_index_query": False}
    if "sample_id" in df.columns:
        frame = df.set_index("sample_id", drop=False)
        result_format["unexpected_index_column_names"] = ["sample_id"]
    else:  # the row number names a row instead
        frame = df.reset_index(drop=True)
    result = definition.run(batch_parameters={"dataframe": frame}, result_format=result_format)
    timings: dict[str, float] = {}
    if docs_dir is not None:
        docs_start = time.perf_counter()
        context.build_data_docs()
        timings["data_docs"] = time.perf_counter() - docs_start

    # Report in the suite's order (GX groups results by column), matched on the expectation id.
    by_id = {r.expectation_config.id: r for r in result.results}
    outcomes = [_outcome(by_id[e.id], e.description, max_ids, frame) for e in suite.expectations if e.id in by_id]
    timings["suite"] = time.perf_counter() - start - timings.get("data_docs", 0.0)
    return SuiteRun(success=bool(result.success), outcomes=outcomes, result=result, context=context,
                    timings=timings)


def _outcome(r, description: str, max_ids: int, frame: pd.DataFrame) -> ExpectationOutcome:
    cfg = r.expectation_config
    res = r.result or {}
    condition = cfg.kwargs.get("row_condition")
    # The column a reader looks at: the checked one, column_A of a pair, or the one a row count is conditioned on.
    column = cfg.kwargs.get("column") or cfg.kwargs.get("column_A") or _condition_column(condition)
    ids = _failing_ids(res.get("unexpected_index_list") or [], max_ids)
    observed = res.get("observed_value")
    if res.get("partial_missing_list"):
        observed = f"missing {res['partial_missing_list']}"
    elif ids and column in frame.columns:
        observed = f"e.g. {_examples(frame, column, ids)}"
    elif condition and isinstance(observed, (int, float)) and len(frame):  # a row count under a condition
        observed = f"{observed} of {len(frame)} rows ({observed / len(frame):.1%})"
    error = _exception_message(r.exception_info)
    return ExpectationOutcome(
        expectation=cfg.type, column=column, description=description or cfg.type,
        success=bool(r.success), failed_rows=res.get("unexpected_count"), sample_ids=ids,
        observed=f"error: {error}" if error else (None if observed is None else str(observed)),
    )


def _condition_column(condition) -> str | None:
    # A row condition as GX serialises it: {"column": {"name": ...}, "operator": ..., "parameter": ...}.
    if isinstance(condition, dict) and isinstance(condition.get("column"), dict):
        return condition["column"].get("name")
    name = getattr(getattr(condition, "column", None), "name", None)
    return name if isinstance(name, str) else None


def _failing_ids(index_list: list, max_ids: int) -> list[str]:
    # Named index + exclude_unexpected_values gives [{"sample_id": [id, ...]}]; a plain index gives row numbers.
    if index_list and isinstance(index_list[0], dict):
        raw = [i for d in index_list for i in d.get("sample_id", [])]
    else:
        raw = [f"row {i}" for i in index_list]
    return [str(i) for i in dict.fromkeys(raw)][:max_ids]  # duplicated ids listed once


def _examples(frame: pd.DataFrame, column: str, ids: list[str], k: int = 5) -> list:
    """A few distinct offending values of `column`, looked up for the listed rows only."""
    if frame.index.name == "sample_id":
        values = frame.loc[frame.index.isin(ids), column]
    else:
        values = frame[column].iloc[[int(i.split()[1]) for i in ids]]
    return list(dict.fromkeys(values.head(100).astype(object).tolist()))[:k]


def _exception_message(info) -> str | None:
    # GX 1.x reports either one flat {"raised_exception", "exception_message"} dict or one per failed metric.
    if not info:
        return None
    items = [info] if "raised_exception" in info else list(info.values())
    msgs = [i.get("exception_message") for i in items if isinstance(i, dict) and i.get("raised_exception")]
    return "; ".join(m for m in msgs if m) or None


def _json_safe(obj):
    # GX results carry numpy scalars and NaN (a NaN score is itself a finding); strict JSON has neither.
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else str(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def render_validation_page(suite_run: SuiteRun) -> str:
    """The validation result as one HTML page, rendered by GX's own Data Docs renderer and view."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    return DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(suite_run.result))
