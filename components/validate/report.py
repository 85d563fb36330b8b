"""The human-readable validation report: report.md, and the summary block put on top of GX's HTML page
(templates/summary.html.j2; templates/page.html.j2 wraps it when there is no GX page).

Both say which expectations failed on how many rows (with sample_ids) and which media checks failed,
naming the sample and the file, so the person who broke the data can go straight to it.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from markupsafe import Markup

if TYPE_CHECKING:
    from .result import ValidationResult

TEMPLATES = Path(__file__).parent / "templates"


def _cell(value) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def _ids(ids: list[str], total: int | None) -> str:
    text = ", ".join(ids)
    if total is not None and total > len(ids):
        text += f" … ({total} failing rows in all)"
    return text


def _media_by_check(result: ValidationResult, limit: int) -> dict[str, tuple[int, list]]:
    grouped: dict[str, list] = defaultdict(list)
    for f in result.media_failures:
        grouped[f.check].append(f)
    return {check: (len(fs), fs[:limit]) for check, fs in grouped.items()}


def overview(result: ValidationResult) -> list[tuple[str, str]]:
    n_samples = len({f.sample_id for f in result.media_failures})
    if result.dvc_hash and result.remote:
        version = f"{result.dvc_hash} (pushed to {result.remote}, {result.uploaded} new objects)"
    elif result.dvc_hash:
        version = f"{result.dvc_hash} (not pushed: validate.push is off)"
    else:
        version = "pending" if result.success else "not computed: validation failed, nothing was pushed"
    return [
        ("dataset", str(result.dataset_dir)),
        ("rows", str(result.n_rows)),
        ("expectation suite", f"{result.suite_name}: {result.n_expectations} expectations, "
                              f"{len(result.failed_expectations)} failed"),
        ("media checks", f"{len(result.media_failures)} failures in {n_samples} samples"),
        ("data version (DVC)", version),
    ]


def render_markdown(result: ValidationResult, limit: int) -> str:
    lines = [f"# Dataset validation: {'PASSED' if result.success else 'FAILED'}", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {_cell(v)} |" for k, v in overview(result)]
    lines += ["", f"Files: `{result.gx_result.name}` (Great Expectations result), `data_docs/index.html` "
                  f"(GX Data Docs), `{result.report_html.name}` (this report with the GX page)."]
    if result.error:
        lines += ["", "## Manifest unreadable", "", result.error]
    if result.failed_expectations:
        lines += ["", "## Failed expectations", "", "| expectation | column | failing rows | sample_ids | observed |",
                  "|---|---|---|---|---|"]
        for o in result.failed_expectations:
            rows = "—" if o.failed_rows is None else str(o.failed_rows)
            lines.append(f"| {_cell(o.description)} | {_cell(o.column or 'table')} | {rows} | "
                         f"{_cell(_ids(o.sample_ids, o.failed_rows))} | {_cell(o.observed)} |")
    if result.media_failures:
        lines += ["", "## Failed media checks", "", "| sample_id | check | message |", "|---|---|---|"]
        for check, (count, shown) in _media_by_check(result, limit).items():
            lines += [f"| {_cell(f.sample_id)} | {check} | {_cell(f.message)} |" for f in shown]
            if count > len(shown):
                lines.append(f"| … | {check} | {count - len(shown)} more samples fail this check |")
    if result.success:
        lines += ["", "All expectations and media checks passed."]
    return "\n".join(lines) + "\n"


def render_html_summary(result: ValidationResult, limit: int) -> str:
    """A self-contained block (inline styles only: the GX page's CSS comes from CDNs that may be offline),
    rendered from templates/summary.html.j2 with every value escaped. A plain str (not Markup), so that
    concatenating it with other HTML does not escape that HTML."""
    return str(_environment().get_template("summary.html.j2").render(
        result=result, overview=overview(result), media_by_check=_media_by_check(result, limit), ids=_ids))


def inject_summary(page: str, summary: str) -> str:
    """Put the summary block right after the GX page's <body> tag (or wrap it, for a page-less failure).
    Both are HTML already: `page` is GX's rendered validation page, `summary` render_html_summary's block."""
    match = re.search(r"<body[^>]*>", page)
    if not match:
        return _environment().get_template("page.html.j2").render(summary=Markup(summary), page=Markup(page))
    return str(page[:match.end()]) + str(summary) + str(page[match.end():])


@functools.cache
def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                              autoescape=jinja2.select_autoescape(("html", "html.j2"), default=True),
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
