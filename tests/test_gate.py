"""The promotion gate refuses what it should, and says why."""

import math

import pytest

from components.register.gate import evaluate_gate


def test_floors_and_must_beat():
    m = {"sprites_identity": 0.30, "baseline_untrained/sprites_identity": 0.02, "dino_i": 0.5}
    ok, reasons = evaluate_gate(m, {"dino_i": 0.4}, {"sprites_identity": "baseline_untrained/sprites_identity"})
    assert ok and "all rules hold" in reasons[0]


def test_worse_model_is_refused_with_reasons():
    m = {"sprites_identity": 0.01, "baseline_untrained/sprites_identity": 0.02, "dino_i": 0.3}
    ok, reasons = evaluate_gate(m, {"dino_i": 0.4}, {"sprites_identity": "baseline_untrained/sprites_identity"})
    assert not ok
    assert any("dino_i: 0.3000 < floor 0.4" in r for r in reasons)
    assert any("does not beat" in r for r in reasons)


def test_missing_and_nan_metrics_fail():
    ok, reasons = evaluate_gate({"a": math.nan}, {"a": 0.0, "b": 1.0})
    assert not ok and len(reasons) == 2 and any("missing" in r for r in reasons)


def test_no_champion_yet_passes_and_says_so():
    ok, reasons = evaluate_gate({"m": 0.1}, {}, {}, None, ["m"], 0.01)
    assert ok and reasons == ["all rules hold: no regression on m: no champion yet, nothing to regress against"]


def test_regression_beyond_tolerance_is_refused_naming_metric_champion_and_tolerance():
    ok, reasons = evaluate_gate({"m": 0.40, "n": 0.9}, {}, {}, {"m": 0.5, "n": 0.1}, ["m", "n"], 0.01, champion="v3")
    assert not ok
    assert reasons == ["m: 0.4000 regresses below the champion v3's 0.5000 by 0.1000 (> tolerance 0.01)"]


def test_within_tolerance_and_at_the_boundary_pass():
    ok, reasons = evaluate_gate({"m": 0.495}, {}, {}, {"m": 0.5}, ["m"], 0.01)
    assert ok and "m 0.4950 >= champion 0.5000 - tolerance 0.01" in reasons[0]
    assert evaluate_gate({"m": 0.25}, {}, {}, {"m": 0.5}, ["m"], 0.25)[0]  # exactly champion - tolerance
    assert not evaluate_gate({"m": 0.4999}, {}, {}, {"m": 0.5}, ["m"])[0]  # default tolerance 0: any drop fails
    assert evaluate_gate({"m": 0.5}, {}, {}, {"m": 0.5}, ["m"])[0]  # equal is no regression
    # Metrics not listed in no_regression may drop freely.
    assert evaluate_gate({"m": 0.5, "k": 0.0}, {}, {}, {"m": 0.5, "k": 1.0}, ["m"])[0]


def test_champion_lacking_the_metric_or_a_nan_on_either_side_fails():
    ok, reasons = evaluate_gate({"m": 0.5}, {}, {}, {"other": 1.0}, ["m"], champion="v1")
    assert not ok and reasons == ["m: the champion v1 has no recorded m (no metric.m tag), so the no-regression "
                                  "rule cannot be checked"]
    ok, reasons = evaluate_gate({"m": 0.5}, {}, {}, {"m": math.nan}, ["m"])
    assert not ok and "not a finite number" in reasons[0]
    ok, reasons = evaluate_gate({"m": math.nan}, {}, {}, {"m": 0.5}, ["m"], 0.5)
    assert not ok and reasons == ["m: nan in the evaluation is not a finite number (no-regression rule against the "
                                  "champion)"]
    ok, reasons = evaluate_gate({}, {}, {}, {"m": 0.5}, ["m"], 0.5)
    assert not ok and "m: missing from the evaluation" in reasons[0]


def test_non_finite_values_fail_every_rule_kind():
    for bad in (math.nan, math.inf, -math.inf, "0.5", True, None):
        assert not evaluate_gate({"a": bad}, {"a": 0.0})[0], bad
        assert not evaluate_gate({"a": bad, "b": 0.0}, {}, {"a": "b"})[0], bad
        assert not evaluate_gate({"a": 1.0, "b": bad}, {}, {"a": "b"})[0], bad


def test_all_rule_kinds_together_report_every_failure():
    m = {"x": 0.1, "y": 0.2, "base": 0.3}
    ok, reasons = evaluate_gate(m, {"x": 0.5}, {"y": "base"}, {"x": 0.9, "y": 0.9}, ["x", "y"], 0.05)
    assert not ok and len(reasons) == 4
    ok, reasons = evaluate_gate({"x": 0.6, "y": 0.4, "base": 0.3}, {"x": 0.5}, {"y": "base"}, {"x": 0.6, "y": 0.42},
                                ["x", "y"], 0.05)
    assert ok and reasons[0].startswith("all rules hold: x 0.6000 >= floor 0.5; y 0.4000 > base 0.3000; ")


def test_no_rules_pass_and_bad_tolerance_is_rejected():
    assert evaluate_gate({}, {}) == (True, ["all rules hold: no rules configured"])
    for tol in (-0.1, math.nan):
        with pytest.raises(ValueError, match="tolerance"):
            evaluate_gate({}, {}, tolerance=tol)


def _effect(mean, lo, hi, key="sprites_identity"):
    return {f"image_effect/{key}": mean, f"image_effect/{key}_lo": lo, f"image_effect/{key}_hi": hi}


def test_a_model_that_ignores_the_image_is_refused_with_its_figures():
    ok, reasons = evaluate_gate(_effect(0.002, -0.003, 0.007), {}, image_effect="sprites_identity")
    assert not ok
    assert reasons == ["the subject image does not measurably matter: image effect on sprites_identity (with the "
                       "image - image dropped, paired) is +0.0020 (95 % CI -0.0030 … +0.0070), lower bound not "
                       "above 0"]
    ok, reasons = evaluate_gate(_effect(0.12, 0.08, 0.16), {}, image_effect="sprites_identity")
    assert ok and "image effect on sprites_identity +0.1200 (95 % CI +0.0800 … +0.1600)" in reasons[0]


def test_image_effect_rule_boundary_missing_and_threshold():
    assert not evaluate_gate(_effect(0.05, 0.0, 0.1), {}, image_effect="sprites_identity")[0]  # lo must be > 0
    ok, reasons = evaluate_gate({"sprites_identity": 0.5}, {}, image_effect="sprites_identity")
    assert not ok and "missing" in reasons[0] and "evaluate.baselines=true" in reasons[0]
    assert not evaluate_gate(_effect(0.05, math.nan, 0.1), {}, image_effect="sprites_identity")[0]
    assert not evaluate_gate(_effect(0.12, 0.08, 0.16), {}, image_effect="sprites_identity", min_image_effect=0.1)[0]
    assert evaluate_gate(_effect(0.12, 0.08, 0.16, "dino_i"), {}, image_effect="dino_i")[0]
    assert evaluate_gate({}, {}, image_effect=None)[0]  # rule off
