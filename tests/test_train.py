"""Training: stage plans, a falling loss under 2-rank DeepSpeed ZeRO-2, TSF freezing, and the checkpoint format."""

import json

import pytest
import torch
from safetensors.torch import load_file

from components.config import TrainConfig
from components.train.ds_config import deepspeed_config
from components.train.plan import stage_plan


def test_stage_plans():
    tsf = stage_plan(TrainConfig(strategy="tsf", stage1_steps=10, stage2_steps=5, mix_p=0.4), num_blocks=4)
    assert [(s.name, s.steps, s.synthetic_p, s.frozen_blocks) for s in tsf] == [("stage1", 10, 0.0, 0),
                                                                                ("stage2", 5, 0.4, 2)]
    ts = stage_plan(TrainConfig(strategy="ts"), num_blocks=4)
    assert ts[1].frozen_blocks == 0 and ts[0].synthetic_p == 0
    mix = stage_plan(TrainConfig(strategy="mix", stage1_steps=3, stage2_steps=4, mix_p=1.0), num_blocks=4)
    assert [(s.steps, s.synthetic_p) for s in mix] == [(7, 1.0)]


def test_deepspeed_config_comes_from_the_typed_config():
    ds = deepspeed_config(TrainConfig(batch_size=3, zero_stage=2), world_size=2)
    assert ds["train_batch_size"] == 6 and ds["zero_optimization"]["stage"] == 2


def _blocks(state: dict, i: int) -> dict:
    return {k: v for k, v in state.items() if k.startswith(f"transformer_blocks.{i}.")}


@pytest.mark.slow
def test_tsf_training_two_ranks(tiny_dataset, run_config, tmp_path, monkeypatch):
    """Stage 1 alone, then stage 1 + TSF stage 2 from the same seed: the frozen first half is bit-identical
    to the stage-1 result, the second half changed; the loss falls; the checkpoint has the DESIGN layout;
    rank 0 logged the loss to MLflow while training (the step had nothing left to add), each step once."""
    import mlflow

    from components.train import live_metrics
    from components.train.train import run

    after_training = []
    points = live_metrics.metric_points
    monkeypatch.setattr(live_metrics, "metric_points", lambda *a: after_training.append(a) or points(*a))

    # A small ZeRO bucket: a stage-1 engine left hooked on the parameters overflows it within stage 2's steps.
    common = ["train.stage1_steps=12", "train.batch_size=4", "train.log_every=2", "train.checkpoint_every=5",
              "train.learning_rate=1e-3", "train.reduce_bucket_size=200000"]
    s1 = run(tiny_dataset, tmp_path / "s1", run_config(*common, "train.stage2_steps=0"), "v1.dir")
    s2 = run(tiny_dataset, tmp_path / "s2", run_config(*common, "train.stage2_steps=6"), "v1.dir")
    w1 = load_file(tmp_path / "s1" / "transformer" / "diffusion_pytorch_model.safetensors")
    w2 = load_file(tmp_path / "s2" / "transformer" / "diffusion_pytorch_model.safetensors")
    for i in (0, 1):  # tiny has 4 blocks; TSF freezes the first half
        assert all(torch.equal(w1[k], w2[k]) for k in _blocks(w1, i)), f"frozen block {i} changed"
    for i in (2, 3):
        assert any(not torch.equal(w1[k], w2[k]) for k in _blocks(w1, i)), f"block {i} did not train"
    assert s1["final_loss"] < s1["first_loss"]
    meta = json.loads((tmp_path / "s2" / "vidcustom.json").read_text())
    assert meta["data_version"] == "v1.dir" and meta["training_stage"] == "stage2"
    assert [s["frozen_blocks"] for s in meta["stage_plan"]] == [0, 2]
    assert s2["steps"] == 18
    history = mlflow.MlflowClient(mlflow.get_tracking_uri()).get_metric_history(s2["run_id"], "loss")
    assert sorted(m.step for m in history) == [2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert after_training == [], "the worker logged every point live"


@pytest.mark.slow
def test_killed_rank_fails_clearly_and_rerun_resumes(tiny_dataset, run_config, tmp_path, monkeypatch):
    from components.train.train import run

    cfg = run_config("train.stage1_steps=10", "train.stage2_steps=0", "train.batch_size=2", "train.log_every=1",
                     "train.checkpoint_every=4")
    monkeypatch.setenv("VIDCUSTOM_FAULT_INJECT", "1:6")  # rank 1 dies after step 6; last save at step 4
    with pytest.raises(RuntimeError, match="resume"):
        run(tiny_dataset, tmp_path / "ck", cfg, "v.dir")
    assert not (tmp_path / "ck" / "vidcustom.json").exists()
    monkeypatch.delenv("VIDCUSTOM_FAULT_INJECT")
    summary = run(tiny_dataset, tmp_path / "ck", cfg, "v.dir")
    assert summary["resumed_from"] == ["stage1@4"]
    assert (tmp_path / "ck" / "vidcustom.json").is_file() and summary["steps"] == 10


def test_live_metrics_reach_the_run_and_a_dead_server_never_blocks_training(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from components.train.live_metrics import LiveMetrics
    from components.tracking import ensure_experiment, init_sqlite_store

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    init_sqlite_store(uri)
    client = MlflowClient(uri)
    run_id = client.create_run(ensure_experiment(client, "vidcustom", uri)).info.run_id
    live = LiveMetrics(uri, run_id)
    for step in (1, 2, 3):
        live.log({"stage": "stage1", "loss": 1.0 / step, "timestamp": 1000.0 + step}, step)
    live.close()
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss/stage1")] == [(1, 1.0), (2, 0.5),
                                                                                             (3, 1 / 3)]
    assert live.failed is None

    # The train step bounds MLflow's HTTP retries for its ranks (tracking/failover.bound_http); likewise here.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    dead = LiveMetrics("http://127.0.0.1:9", "0" * 32)  # nothing listens on port 9 (discard)
    dead.log({"stage": "stage1", "loss": 1.0, "timestamp": 1.0}, 1)
    dead.close()
    assert dead.failed is not None
    dead.log({"stage": "stage1", "loss": 1.0, "timestamp": 2.0}, 2)  # ignored once failed: no queue, no wait
    assert dead._queue.empty()
