"""The register step against a real MLflow store: aliases follow the gate (floors, must-beat, no regression
against the champion), the decision and reasons land on the version and the run, and a checkpoint already
registered is reused, not duplicated."""

import json
import math

import mlflow
import pytest

from components.register.register import run
from components.registry import checkpoint_sha256

NAME = "vidcustom"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Three tiny checkpoints with different weights (seeds): content hashes differ."""
    from model.config import model_config
    from model.pipeline import SugarPipeline

    root = tmp_path_factory.mktemp("checkpoints")
    return {seed: SugarPipeline.from_config(model_config("tiny"), seed=seed).save_pretrained(
        root / f"ckpt{seed}", metadata={"training_stage": "2", "data_version": "abc.dir"}) for seed in (0, 1, 2)}


def evaluation(tmp_path, label: str, **metrics) -> str:
    d = tmp_path / f"eval-{label}"
    d.mkdir()
    # a model that uses its subject image, unless a test says otherwise
    effect = {"image_effect/sprites_identity": 0.10, "image_effect/sprites_identity_lo": 0.05,
              "image_effect/sprites_identity_hi": 0.15}
    (d / "metrics.json").write_text(json.dumps({"sprites_identity": 0.4, "baseline_untrained/sprites_motion": 0.05,
                                                **effect, **metrics}))
    return str(d)


def client_for(cfg):
    uri = cfg.tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(uri, uri)  # the registry too: an earlier test may have set another globally


def gate_json(client, version):
    run_id = client.get_model_version(NAME, version).run_id
    assert run_id, "the version is linked to the register run"
    return mlflow.artifacts.load_dict(f"runs:/{run_id}/gate.json")


def test_champion_no_regression_and_reuse(run_config, checkpoints, tmp_path):
    cfg = run_config()  # ci preset: no floors, no must_beat; no_regression [sprites_motion], tolerance 0.01
    assert cfg.register_.no_regression == ["sprites_motion"] and cfg.register_.tolerance == 0.01

    # First registration: no champion yet, so the no-regression rule passes and says so.
    r1 = run(checkpoints[0], evaluation(tmp_path, "good", sprites_motion=0.50), cfg, "abc.dir")
    assert (r1["version"], r1["aliases"], r1["champion"], r1["reused"]) == ("1", ["challenger", "champion"], True, False)
    assert r1["previous_champion"] is None and r1["checkpoint_sha256"] == checkpoint_sha256(checkpoints[0])
    assert "no champion yet" in r1["reasons"][0]
    client = client_for(cfg)
    v1 = client.get_model_version(NAME, "1")
    assert v1.tags["gate"] == "passed" and v1.tags["checkpoint_sha256"] == r1["checkpoint_sha256"]
    assert float(v1.tags["metric.sprites_motion"]) == 0.50 and v1.tags["data_version"] == "abc.dir"
    assert "Gate PASSED" in v1.description

    # A worse checkpoint: sprites_motion 0.10 below the champion, beyond the 0.01 tolerance.
    r2 = run(checkpoints[1], evaluation(tmp_path, "worse", sprites_motion=0.40), cfg, "abc.dir")
    assert (r2["version"], r2["aliases"], r2["champion"], r2["gate"]) == ("2", ["challenger"], False, "failed")
    assert r2["previous_champion"] == "1"
    (reason,) = r2["reasons"]
    assert "sprites_motion" in reason and "0.4000" in reason and "champion v1's 0.5000" in reason
    assert "tolerance 0.01" in reason
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == "2"
    v2 = client.get_model_version(NAME, "2")
    assert v2.tags["gate"] == "failed" and reason in v2.tags["gate_reasons"] and v2.tags["gate_champion"] == "1"
    assert "Gate FAILED" in v2.description and reason in v2.description
    g = gate_json(client, "2")
    assert g["passed"] is False and g["reasons"] == [reason] and g["champion_compared"]["version"] == "1"
    assert g["champion_compared"]["metrics"]["sprites_motion"] == 0.50 and g["tolerance"] == 0.01

    # Within tolerance (0.005 below the champion): passes and becomes champion.
    r3 = run(checkpoints[2], evaluation(tmp_path, "close", sprites_motion=0.495), cfg, "abc.dir")
    assert (r3["version"], r3["aliases"], r3["gate"]) == ("3", ["challenger", "champion"], "passed")
    assert "sprites_motion 0.4950 >= champion v1 0.5000 - tolerance 0.01" in r3["reasons"][0]
    assert not client.get_model_version(NAME, "1").aliases  # both aliases moved to v3

    # v1's checkpoint again (even from a copy elsewhere): no new version; gate re-applied against v3.
    import shutil

    copy = shutil.copytree(checkpoints[0], tmp_path / "elsewhere" / "ckpt")
    again = run(copy, evaluation(tmp_path, "good-again", sprites_motion=0.50), cfg, "abc.dir")
    assert (again["version"], again["reused"], again["aliases"]) == ("1", True, ["challenger", "champion"])
    assert again["previous_champion"] == "3"
    # The failed checkpoint again: reused, still refused, champion untouched.
    again2 = run(checkpoints[1], evaluation(tmp_path, "worse-again", sprites_motion=0.40), cfg, "abc.dir")
    assert (again2["version"], again2["reused"], again2["aliases"], again2["gate"]) == ("2", True, ["challenger"],
                                                                                         "failed")
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    assert sorted(str(v.version) for v in client.search_model_versions(f"name = '{NAME}'")) == ["1", "2", "3"]
    assert gate_json(client, "2")["reused"] is False  # the version keeps its original run
    runs = mlflow.search_runs(experiment_names=[cfg.mlflow.experiment])
    runs = runs[runs["tags.vidcustom.step"] == "register"]
    assert len(runs) == 5 and sorted(runs["tags.reused"]) == ["false"] * 3 + ["true"] * 2
    assert set(runs["tags.gate"]) == {"passed", "failed"}

    # The registered pyfunc carries its signature and input example.
    from mlflow.models import get_model_info

    info = get_model_info("models:/vidcustom@champion")
    assert info.signature is not None and info.saved_input_example_info is not None


def test_floors_must_beat_nan_and_champion_without_metric(run_config, checkpoints, tmp_path):
    cfg = run_config("register.gate={sprites_identity: 0.3}",
                     "register.must_beat={sprites_motion: baseline_untrained/sprites_motion}")
    # Floor broken: refused even with no champion to compare against.
    r = run(checkpoints[0], evaluation(tmp_path, "low", sprites_motion=0.5, sprites_identity=0.2), cfg)
    assert r["aliases"] == ["challenger"] and r["reasons"] == ["sprites_identity: 0.2000 < floor 0.3"]
    client = client_for(cfg)
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_model_version_by_alias(NAME, "champion")
    # must_beat broken.
    r = run(checkpoints[1], evaluation(tmp_path, "flat", sprites_motion=0.04), cfg)
    assert r["aliases"] == ["challenger"] and "does not beat baseline_untrained/sprites_motion" in r["reasons"][0]
    # NaN metric: refused, and the reason says it is not a number.
    r = run(checkpoints[2], evaluation(tmp_path, "nan", sprites_motion=math.nan), cfg)
    assert not r["passed"] and all("not a finite number" in x for x in r["reasons"]) and len(r["reasons"]) == 1
    # Everything holds: champion.
    r = run(checkpoints[0], evaluation(tmp_path, "ok", sprites_motion=0.5), cfg)
    assert (r["version"], r["reused"], r["aliases"]) == ("1", True, ["challenger", "champion"])

    # A no-regression metric the champion never recorded fails with a reason.
    cfg2 = run_config("register.no_regression=[sprites_motion, dino_i]")
    r = run(checkpoints[1], evaluation(tmp_path, "new-metric", sprites_motion=0.6, dino_i=0.9), cfg2)
    assert not r["passed"] and r["reasons"] == [
        "dino_i: the champion v1 has no recorded dino_i (no metric.dino_i tag), so the no-regression rule cannot be "
        "checked"]
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"


def test_checkpoint_hash_tracks_content_not_location(checkpoints, tmp_path):
    import shutil

    a = checkpoints[0]
    b = shutil.copytree(a, tmp_path / "b")
    assert checkpoint_sha256(a) == checkpoint_sha256(b) != checkpoint_sha256(checkpoints[1])
    weights = next(b.rglob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert checkpoint_sha256(b) != checkpoint_sha256(a)
    with pytest.raises(NotADirectoryError):
        checkpoint_sha256(tmp_path / "missing")


def test_export_reuses_the_onnx_version_of_the_same_checkpoint(run_config, checkpoints, tmp_path):
    from components.export.export import run as export

    cfg = run_config("evaluate.num_inference_steps=2")
    reg = run(checkpoints[0], evaluation(tmp_path, "good", sprites_motion=0.5), cfg, "abc.dir")
    first = export(checkpoints[0], tmp_path / "onnx1", cfg, "abc.dir", reg)
    assert (first["version"], first["reused"], first["aliases"]) == ("1", False, ["challenger", "champion"])
    again = export(checkpoints[0], tmp_path / "onnx2", cfg, "abc.dir", reg)
    assert (again["version"], again["reused"]) == ("1", True)
    client = client_for(cfg)
    v = client.get_model_version("vidcustom-onnx", "1")
    assert v.tags["checkpoint_sha256"] == reg["checkpoint_sha256"] and v.tags["format"] == "onnx"
    assert v.tags["gate"] == "passed" and v.tags["source_model"] == "vidcustom/1"
    assert float(v.tags["metric.sprites_motion"]) == 0.5
    assert [str(x.version) for x in client.search_model_versions("name = 'vidcustom-onnx'")] == ["1"]
    # What the acceleration gate accepted is what the registered sampler.json serves, and the version says so.
    runtime = json.loads((tmp_path / "onnx1" / "sampler.json").read_text())["runtime"]
    assert runtime["accelerations"][0] == "branch_plan" and v.tags["accelerations"] == ",".join(
        runtime["accelerations"]) and first["accelerations"]["accepted"] == runtime["accelerations"]


def test_find_versions_falls_back_to_filtering_client_side():
    from types import SimpleNamespace

    from components.registry import find_versions

    class Page(list):
        token = None

    class Client:  # a store that rejects tag filters
        def search_model_versions(self, flt, page_token=None):
            if "tags." in flt:
                raise ValueError("unsupported filter")
            return Page([SimpleNamespace(name="m", version="2", tags={"checkpoint_sha256": "aa"}),
                         SimpleNamespace(name="m", version="1", tags={"checkpoint_sha256": "aa", "format": "onnx"}),
                         SimpleNamespace(name="m", version="3", tags={"checkpoint_sha256": "bb"})])

    assert [v.version for v in find_versions(Client(), "m", {"checkpoint_sha256": "aa"})] == ["1", "2"]
    assert [v.version for v in find_versions(Client(), "m", {"checkpoint_sha256": "aa", "format": "onnx"})] == ["1"]


def test_champion_rerun_keeps_its_record_and_other_benchmarks_are_not_a_baseline(run_config, checkpoints, tmp_path):
    cfg = run_config()
    first = evaluation(tmp_path, "first", sprites_motion=0.50)
    (tmp_path / "eval-first" / "evaluation.json").write_text(json.dumps({"benchmark": "sprites",
                                                                         "plumbing_only": True}))
    assert run(checkpoints[0], first, cfg, "abc.dir")["champion"]

    # The champion's own checkpoint, re-evaluated worse: not compared with itself, its metric record kept.
    again = run(checkpoints[0], evaluation(tmp_path, "again", sprites_motion=0.40), cfg, "abc.dir")
    assert again["reused"] and again["champion"] and "current champion v1" in again["reasons"][0]
    v1 = client_for(cfg).get_model_version(NAME, "1")
    assert float(v1.tags["metric.sprites_motion"]) == 0.50 and v1.tags["eval.benchmark"] == "sprites"

    # A better model measured on another benchmark is not comparable with the champion: refused, with why.
    other = evaluation(tmp_path, "other", sprites_motion=0.90)
    (tmp_path / "eval-other" / "evaluation.json").write_text(json.dumps({"benchmark": "videomaker_object",
                                                                         "plumbing_only": True}))
    r = run(checkpoints[1], other, cfg, "abc.dir")
    assert not r["champion"] and r["gate"] == "failed"
    assert any("not comparable with the champion v1" in x and "benchmark=sprites" in x for x in r["reasons"])


def test_a_registration_race_keeps_the_first_version(run_config):
    """Two runs that both looked before either registered (a stale empty `existing`): the later creator
    sees the earlier version, deletes its own and reuses the earlier one."""
    from components.registry import CHECKPOINT_TAG, register_or_reuse

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input

    from components.tracking import ensure_experiment

    cfg = run_config()
    client = client_for(cfg)
    # this test's store (artifacts beside it, not in the working directory), not an earlier test's experiment
    mlflow.set_experiment(experiment_id=ensure_experiment(client, "registration-race", cfg.tracking_uri()))
    tags = {CHECKPOINT_TAG: "ab" * 32, "gate": "passed"}
    log_model = lambda: mlflow.pyfunc.log_model(name="m", python_model=Echo())  # noqa: E731
    assert register_or_reuse(client, "race", [], tags, log_model) == ("1", False)
    assert register_or_reuse(client, "race", [], tags, log_model) == ("1", True)
    assert [str(v.version) for v in client.search_model_versions("name = 'race'")] == ["1"]


@pytest.mark.slow
def test_four_concurrent_registrations_of_one_checkpoint_give_one_version(run_config, checkpoints, tmp_path):
    """Four processes (as four pipeline runs would be; threads would share diffusers' global loading state)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    cfg = run_config()
    ev = evaluation(tmp_path, "same", sprites_motion=0.50)
    (tmp_path / "cfg.json").write_text(cfg.to_json())
    script = ("import json, sys; from pathlib import Path; from components.config import config_from_json; "
              "from components.register.register import run; "
              "r = run(sys.argv[1], sys.argv[2], config_from_json(Path(sys.argv[3]).read_text()), 'abc.dir'); "
              "print('RESULT ' + json.dumps(r))")
    repo = str(Path(__file__).resolve().parents[1])
    procs = [subprocess.Popen([sys.executable, "-c", script, str(checkpoints[1]), ev, str(tmp_path / "cfg.json")],
                              env={**os.environ, "PYTHONPATH": repo}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    results = [json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:]) for out, _ in outs]
    assert {r["version"] for r in results} == {"1"} and sum(not r["reused"] for r in results) == 1
    versions = client_for(cfg).search_model_versions(f"name = '{NAME}'")
    assert [str(v.version) for v in versions] == ["1"]
    assert sorted(client_for(cfg).get_model_version(NAME, "1").aliases) == ["challenger", "champion"]
