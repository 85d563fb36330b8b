"""The promotion gate from params, as one pure function: `champion` only when every rule holds.

Rules:
- floors: `metric >= floor` (register.gate);
- must_beat: `metric > other metric of the same evaluation` (e.g. the trained model vs its untrained
  initialisation; register.must_beat);
- image effect: the subject image must matter. The evaluation's paired effect of the image on
  `image_effect` (identity with the image minus identity with it dropped, same samples and noise) must
  have the lower bound of its 95 % interval above `min_image_effect` (register.image_effect,
  register.min_image_effect); a model that ignores the image is never champion, and the reason gives
  the figures;
- no regression: for each metric in register.no_regression, `metric >= champion's metric - tolerance`,
  the champion being the version that holds the `champion` alias now (its metrics come from its
  `metric.<name>` version tags). With no champion yet the rule holds and says so; a champion that did not
  record the metric fails the rule (the comparison cannot be made, so nothing is promoted blindly).

A rule on a metric the evaluation did not produce, or that is not a finite number (NaN, inf), fails.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping


def _number(value) -> float | None:
    """A finite float, or None for missing / non-numeric / NaN / inf."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _bad(name: str, value, where: str = "the evaluation") -> str:
    if value is None:
        return f"{name}: missing from {where}"
    return f"{name}: {value!r} in {where} is not a finite number"


def evaluate_gate(metrics: Mapping[str, float], floors: Mapping[str, float],
                  must_beat: Mapping[str, str] | None = None, champion_metrics: Mapping[str, float] | None = None,
                  no_regression: Iterable[str] = (), tolerance: float = 0.0,
                  champion: str | None = None, image_effect: str | None = None,
                  min_image_effect: float = 0.0) -> tuple[bool, list[str]]:
    """Returns (passed, reasons).

    Failed: one reason per broken rule, naming the metric, its value and the bound it missed.
    Passed: a single reason, `all rules hold: ...`, listing every rule checked with its numbers.
    `champion` only labels the champion in the reasons (e.g. "v3"); `champion_metrics=None` means there
    is no champion yet.
    """
    tol = _number(tolerance)
    if tol is None or tol < 0:
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r} (register.tolerance)")
    label = f"champion {champion}" if champion else "champion"
    failed: list[str] = []
    held: list[str] = []

    for name, floor in sorted(floors.items()):
        value = _number(metrics.get(name))
        if value is None:
            failed.append(_bad(name, metrics.get(name)) + f" (floor {floor})")
        elif value >= floor:
            held.append(f"{name} {value:.4f} >= floor {floor}")
        else:
            failed.append(f"{name}: {value:.4f} < floor {floor}")

    for name, other in sorted((must_beat or {}).items()):
        a, b = _number(metrics.get(name)), _number(metrics.get(other))
        if a is None or b is None:
            bad = (name, metrics.get(name)) if a is None else (other, metrics.get(other))
            failed.append(f"{name} vs {other}: " + _bad(*bad))
        elif a > b:
            held.append(f"{name} {a:.4f} > {other} {b:.4f}")
        else:
            failed.append(f"{name}: {a:.4f} does not beat {other} = {b:.4f}")

    if image_effect:
        key = f"image_effect/{image_effect}"
        mean, lo, hi = (_number(metrics.get(key + sfx)) for sfx in ("", "_lo", "_hi"))
        if mean is None or lo is None or hi is None:
            failed.append(f"image effect on {image_effect}: {key}{{,_lo,_hi}} missing from the evaluation or not "
                          "finite (evaluate with evaluate.baselines=true)")
        else:
            figures = f"{mean:+.4f} (95 % CI {lo:+.4f} … {hi:+.4f})"
            if lo > min_image_effect:
                held.append(f"image effect on {image_effect} {figures}: lower bound > {min_image_effect:g}")
            else:
                failed.append(f"the subject image does not measurably matter: image effect on {image_effect} "
                              f"(with the image - image dropped, paired) is {figures}, lower bound not above "
                              f"{min_image_effect:g}")

    names = sorted(set(no_regression))
    if names and champion_metrics is None:
        held.append(f"no regression on {', '.join(names)}: no champion yet, nothing to regress against")
    for name in names if champion_metrics is not None else ():
        new = _number(metrics.get(name))
        if new is None:
            failed.append(_bad(name, metrics.get(name)) + f" (no-regression rule against the {label})")
            continue
        if name not in champion_metrics:
            failed.append(f"{name}: the {label} has no recorded {name} (no metric.{name} tag), so the no-regression "
                          f"rule cannot be checked")
            continue
        old = _number(champion_metrics[name])
        if old is None:
            failed.append(f"{name}: the {label}'s {name} = {champion_metrics[name]!r} is not a finite number, so the "
                          f"no-regression rule cannot be checked")
        elif new >= old - tol:
            held.append(f"{name} {new:.4f} >= {label} {old:.4f} - tolerance {tol:g}")
        else:
            failed.append(f"{name}: {new:.4f} regresses below the {label}'s {old:.4f} by {old - new:.4f} "
                          f"(> tolerance {tol:g})")

    if failed:
        return False, failed
    return True, ["all rules hold: " + ("; ".join(held) if held else "no rules configured")]
