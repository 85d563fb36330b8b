"""Paired effects: numerics against the textbook formula, and the cases with too little data."""

import math

import numpy as np
from scipy import stats

from components.evaluate.paired import paired_effect


def test_paired_effect_matches_the_student_t_formula():
    rng = np.random.default_rng(0)
    base = rng.normal(0.3, 0.2, 40)  # shared per-sample variation: cancels in the paired difference
    a, b = base + 0.05 + rng.normal(0, 0.01, 40), base
    e = paired_effect(a, b)
    d = a - b
    half = stats.t.ppf(0.975, 39) * d.std(ddof=1) / math.sqrt(40)
    assert e.n == 40 and math.isclose(e.mean, d.mean()) and math.isclose(e.lo, d.mean() - half)
    assert math.isclose(e.hi, d.mean() + half) and e.excludes_zero()
    # unpaired, the same data would not show the effect: the shared variation dominates
    assert 1.96 * math.sqrt(a.var(ddof=1) / 40 + b.var(ddof=1) / 40) > 0.05 > e.hi - e.mean
    assert e.metrics("image_effect/x") == {"image_effect/x": e.mean, "image_effect/x_lo": e.lo,
                                           "image_effect/x_hi": e.hi}


def test_no_effect_includes_zero_and_nan_pairs_are_skipped():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, 50)
    e = paired_effect(a, a[::-1])
    assert e.lo < 0 < e.hi and not e.excludes_zero()
    e = paired_effect([1.0, np.nan, 3.0, 2.0], [0.5, 0.2, np.nan, 1.0])  # two complete pairs
    assert e.n == 2 and math.isclose(e.mean, 0.75)
    one = paired_effect([1.0], [0.0])
    assert one.n == 1 and one.lo == -math.inf and not one.excludes_zero()
    assert paired_effect([], []).n == 0
