"""The promotion gate refuses what it should, and says why."""

import math

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
