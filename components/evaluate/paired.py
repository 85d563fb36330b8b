"""Paired effects: the same held-out samples and the same initial noise, scored with and without a change.

The difference is taken per sample, so the shared variation (subject, prompt, noise) cancels and the
interval is that of the mean difference: mean ± t(0.975, n-1) · sd / √n (Student t; n counts the samples
where both sides were scored).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairedEffect:
    mean: float
    lo: float
    hi: float
    n: int

    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0

    def metrics(self, name: str) -> dict[str, float]:
        """{name: mean, name_lo: lower bound, name_hi: upper bound} (MLflow metric names)."""
        return {name: self.mean, f"{name}_lo": self.lo, f"{name}_hi": self.hi}

    def __str__(self) -> str:
        return f"{self.mean:+.4f} (95 % CI {self.lo:+.4f} … {self.hi:+.4f}, n={self.n})"


def paired_effect(with_change, without_change, confidence: float = 0.95) -> PairedEffect:
    """Mean of with_change - without_change over the samples where both are finite, with its interval.

    With fewer than two pairs the interval is unbounded (nothing is known about the spread).
    """
    from scipy import stats

    a, b = np.asarray(with_change, np.float64), np.asarray(without_change, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must match: {a.shape} vs {b.shape}")
    d = (a - b)[np.isfinite(a) & np.isfinite(b)]
    n = len(d)
    if n == 0:
        return PairedEffect(float("nan"), float("nan"), float("nan"), 0)
    mean = float(d.mean())
    if n < 2:
        return PairedEffect(mean, float("-inf"), float("inf"), n)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * d.std(ddof=1) / np.sqrt(n))
    return PairedEffect(mean, mean - half, mean + half, n)
