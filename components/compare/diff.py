"""What differs between loaded runs: metric deltas against the baseline (runs[0]), the config keys that
differ, sample videos matched across runs, and the warnings the report opens with."""

from __future__ import annotations

import math
import re

from components.compare.runs import VIDEO_DIRS, RunData

# Metrics where a smaller value is the better one; every other metric counts as higher-is-better.
LOWER_IS_BETTER = re.compile(r"(wall_s$|_seconds?$|loss|fvd|fid$|lpips|mse|error|latency)", re.I)
MISSING = object()  # a config key the run's config.json lacks (None is a value a config can hold)


def metric_rows(runs: list[RunData]) -> list[dict]:
    """One row per metric: values per run, delta vs runs[0], whether the change is better or worse."""
    # plain metric names first, then namespaced ones ("val/loss")
    names = sorted({k for r in runs for k in r.metrics}, key=lambda k: ("/" in k, k))
    rows = []
    for name in names:
        base = runs[0].metrics.get(name)
        lower = bool(LOWER_IS_BETTER.search(name))
        cells = []
        for r in runs:
            v = r.metrics.get(name)
            delta = None if v is None or base is None or r is runs[0] else v - base
            if delta is None or not math.isfinite(delta):
                trend = "none"
            elif abs(delta) <= 1e-12 * max(1.0, abs(base)):  # float noise, not a change
                trend = "same"
            else:
                trend = "better" if (delta < 0) == lower else "worse"
            rel = (delta / abs(base)) if delta is not None and base not in (None, 0) else None
            cells.append({"run": r.run_id, "value": v, "delta": delta, "rel": rel, "trend": trend})
        rows.append({"metric": name, "lower_is_better": lower, "cells": cells})
    return rows


def config_diff(runs: list[RunData]) -> tuple[list[dict], int]:
    """(rows for the flattened config keys whose values differ between runs, number of identical keys).
    Runs without a config.json take no part."""
    having = [r for r in runs if r.config is not None]
    keys = sorted({k for r in having for k in r.config})
    rows, same = [], 0
    for key in keys:
        values = [r.config.get(key, MISSING) if r.config is not None else None for r in runs]
        present = [v for r, v in zip(runs, values) if r.config is not None]
        if all(v == present[0] for v in present):
            same += 1
            continue
        rows.append({"key": key, "values": values})
    return rows, same


def sample_rows(runs: list[RunData]) -> list[dict]:
    """Rows of the video grid: matched by sample id, else by prompt; {"key", "prompt", "cells": {run: sid}}."""
    rows: dict[str, dict] = {}

    def prompt_of(r: RunData, sid: str) -> str:
        row = r.samples.get(sid, {})
        return str(row.get("caption") or row.get("prompt") or "")

    for r in runs:
        for sid in _natural(set(r.videos) | set(r.video_errors)):
            prompt = prompt_of(r, sid)
            key = sid if sid in rows and r.run_id not in rows[sid]["cells"] else None
            if key is None and prompt:
                key = next((k for k, row in rows.items() if row["prompt"] == prompt and r.run_id not in row["cells"]),
                           None)
            if key is None:
                key = sid if sid not in rows else f"{sid} ({r.short})"
                rows[key] = {"key": key, "prompt": prompt, "cells": {}}
            rows[key]["cells"][r.run_id] = sid
            rows[key]["prompt"] = rows[key]["prompt"] or prompt
    return list(rows.values())


def _natural(items) -> list[str]:
    """Sorted with digit runs compared as numbers: sample2 before sample10."""
    return sorted(items, key=lambda s: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)])


def run_warnings(runs: list[RunData]) -> list[str]:
    """What makes the comparison doubtful: missing videos, config or metrics, runs that are not active
    evaluate runs, differing data versions or experiments."""
    warnings = []
    for i, r in enumerate(runs):
        label = f"run #{i} {r.short} ({r.name})"
        if not r.has_videos:
            warnings.append(f"{label} has no sample videos (looked in {', '.join(VIDEO_DIRS)} and the rest "
                            "of its artifacts)")
        if r.video_errors:
            warnings.append(f"{label}: {len(r.video_errors)} video(s) could not be decoded")
        if r.config is None:
            warnings.append(f"{label} has no config.json")
        if not r.metrics:
            warnings.append(f"{label} has no metrics")
        step = r.tags.get("vidcustom.step")
        if step and step != "evaluate":
            warnings.append(f"{label} is a {step!r} run, not an evaluate run")
        if r.lifecycle != "active":
            warnings.append(f"{label} is {r.lifecycle}")
    versions = [r.tags.get("data_version") or "(not tagged)" for r in runs]
    if len(set(versions)) > 1:
        warnings.append("data versions differ (" + ", ".join(f"#{i} {v}" for i, v in enumerate(versions))
                        + "): metric deltas mix model and data changes")
    if len({r.experiment_id for r in runs}) > 1:
        names = sorted({r.experiment for r in runs})
        warnings.append(f"the runs come from different experiments: {', '.join(names)}")
    return warnings
