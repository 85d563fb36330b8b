"""The promotion gate from params: per-metric floors and metrics that must beat another metric of the same
evaluation (e.g. the trained model vs its untrained initialisation); `champion` only when all hold."""

from __future__ import annotations


def evaluate_gate(metrics: dict[str, float], floors: dict[str, float],
                  must_beat: dict[str, str] | None = None) -> tuple[bool, list[str]]:
    """Returns (passed, reasons); a rule on a metric the evaluation did not produce fails."""
    reasons = []
    for name, other in sorted((must_beat or {}).items()):
        a, b = metrics.get(name), metrics.get(other)
        if a is None or b is None:
            reasons.append(f"{name} vs {other}: missing from the evaluation")
        elif not a > b:
            reasons.append(f"{name}: {a:.4f} does not beat {other} = {b:.4f}")
    for name, floor in sorted(floors.items()):
        value = metrics.get(name)
        if value is None:
            reasons.append(f"{name}: missing from the evaluation (floor {floor})")
        elif not value >= floor:  # also catches NaN
            reasons.append(f"{name}: {value:.4f} < floor {floor}")
    rules = [f"{k} >= {v}" for k, v in sorted(floors.items())]
    rules += [f"{k} > {v} ({metrics[k]:.4f} > {metrics[v]:.4f})" for k, v in sorted((must_beat or {}).items())]
    return not reasons, reasons or ["all rules hold: " + ", ".join(rules)]
