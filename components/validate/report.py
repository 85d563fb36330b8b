"""The human-readable validation report: report.md, and the summary block put on top of GX's HTML page.

Both say which expectations failed on how many rows (with sample_ids) and which media checks failed,
naming the sample and the file, so the person who broke the data can go straight to it.
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .validate import ValidationResult


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
    """A self-contained block (inline styles only: the GX page's CSS comes from CDNs that may be offline)."""
    e = html.escape
    colour = "#1a7f37" if result.success else "#cf222e"
    verdict = "PASSED" if result.success else "FAILED"
    td = 'style="border:1px solid #ccc;padding:2px 6px;vertical-align:top"'
    parts = [f'<div style="font-family:sans-serif;margin:1em;padding:1em;border:2px solid {colour}">',
             f'<h2 style="color:{colour}">vidcustom dataset validation: {verdict}</h2>',
             '<table style="border-collapse:collapse">']
    parts += [f"<tr><th {td}>{e(k)}</th><td {td}>{e(v)}</td></tr>" for k, v in overview(result)]
    parts.append("</table>")
    if result.error:
        parts.append(f"<h3>Manifest unreadable</h3><p>{e(result.error)}</p>")
    if result.failed_expectations:
        names = ("expectation", "column", "failing rows", "sample_ids", "observed")
        heads = "".join(f"<th {td}>{h}</th>" for h in names)
        parts.append(f'<h3>Failed expectations</h3><table style="border-collapse:collapse"><tr>{heads}</tr>')
        for o in result.failed_expectations:
            rows = "—" if o.failed_rows is None else o.failed_rows
            cells = (o.description, o.column or "table", rows, _ids(o.sample_ids, o.failed_rows), o.observed or "")
            parts.append("<tr>" + "".join(f"<td {td}>{e(str(c))}</td>" for c in cells) + "</tr>")
        parts.append("</table>")
    if result.media_failures:
        heads = "".join(f"<th {td}>{h}</th>" for h in ("sample_id", "check", "message"))
        parts.append(f'<h3>Failed media checks</h3><table style="border-collapse:collapse"><tr>{heads}</tr>')
        for check, (count, shown) in _media_by_check(result, limit).items():
            parts += [f"<tr><td {td}>{e(f.sample_id)}</td><td {td}>{e(check)}</td><td {td}>{e(f.message)}</td></tr>"
                      for f in shown]
            if count > len(shown):
                parts.append(f"<tr><td {td}>…</td><td {td}>{e(check)}</td><td {td}>{count - len(shown)} more samples"
                             "</td></tr>")
        parts.append("</table>")
    parts.append("<p>The Great Expectations result for the manifest follows.</p></div>")
    return "\n".join(parts)


def inject_summary(page: str, summary: str) -> str:
    """Put the summary block right after the GX page's <body> tag (or wrap it, for a page-less failure)."""
    match = re.search(r"<body[^>]*>", page)
    if not match:
        return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>vidcustom validation</title></head>" \
               f"<body>{summary}{page}</body></html>"
    return page[:match.end()] + summary + page[match.end():]
