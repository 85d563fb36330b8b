"""The promotion gate: per-metric floors from params; `champion` only when every floor holds."""

from __future__ import annotations


def evaluate_gate(metrics: dict[str, float], floors: dict[str, float]) -> tuple[bool, list[str]]:
    """Returns (passed, reasons); a floor on a metric the evaluation did not produce fails."""
    reasons = []
    for name, floor in sorted(floors.items()):
        value = metrics.get(name)
        if value is None:
            reasons.append(f"{name}: missing from the evaluation (floor {floor})")
        elif not value >= floor:  # also catches NaN
            reasons.append(f"{name}: {value:.4f} < floor {floor}")
    return not reasons, reasons or ["all floors hold: " + ", ".join(f"{k} >= {v}" for k, v in sorted(floors.items()))]
