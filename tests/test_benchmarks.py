"""The mechanism-proof benchmark script runs end to end at a toy budget and is resumable (numbers not asserted:
they live in docs/sugar_mechanism.md, produced by the full budget)."""

import importlib.util
import json

import mlflow
import pytest

from conftest import ROOT


def _load():
    spec = importlib.util.spec_from_file_location("sugar_mechanism", ROOT / "benchmarks" / "sugar_mechanism.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_sugar_mechanism_benchmark_runs_logs_to_one_experiment_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("VIDCUSTOM_HOME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    bench = _load()
    argv = ["--out", str(tmp_path / "bench"), "--steps", "6", "--subjects", "12", "--samples-per-subject", "2",
            "--eval-samples", "3", "--only", "b_tsf,b_tsf/image_dropped,a_tsf", "--set", "train.checkpoint_every=50"]
    results = bench.main(argv)
    assert list(results) == ["b_tsf", "b_tsf/image_dropped", "a_tsf"]
    for r in results.values():
        assert set(r["mean"]) == {"identity", "motion", "attribute"}
        assert all(len(v) == 3 for v in r["per_sample"].values())
    assert results["b_tsf/image_dropped"]["settings"]["use_image"] is False
    table = (tmp_path / "bench" / "table.md").read_text()
    assert "| (b) image vs image dropped | b_tsf | b_tsf/image_dropped |" in table
    assert "| design (b) vs (a) |" in table

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'bench' / 'state' / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["sugar-mechanism"])
    steps = runs["tags.vidcustom.step"].value_counts().to_dict()
    assert steps == {"train": 2, "benchmark": 3}
    assert set(runs["tags.evaluation"].dropna()) == {"b_tsf", "b_tsf/image_dropped", "a_tsf"}
    train_runs = runs[runs["tags.vidcustom.step"] == "train"]
    assert set(train_runs["tags.stage_plan"]) == {"stage1(p=0.0,frozen=0) -> stage2(p=0.5,frozen=2)"}

    # A second invocation reuses checkpoints and results: no new MLflow run.
    (result_file,) = (tmp_path / "bench" / "results").glob("b_tsf-*/b_tsf.json")
    before = json.loads(result_file.read_text())
    again = bench.main(argv)
    assert again["b_tsf"]["per_sample"] == before["per_sample"]
    assert len(mlflow.search_runs(experiment_names=["sugar-mechanism"])) == len(runs)
