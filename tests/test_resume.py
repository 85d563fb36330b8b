"""Exact resume: a training run killed anywhere (one rank, or the whole process group) and re-run ends with a
checkpoint bit-identical to an uninterrupted run's (model, optimizer, schedule, data order and RNG restored);
two runs of the same training key never share the state directory at once."""

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from components.registry import checkpoint_sha256

REPO = Path(__file__).resolve().parents[1]
# TSF, 8 + 6 steps, a checkpoint every 3: kills land right after the stage boundary (stage 2 restarts from
# the stage-1 weights) and after a stage-2 checkpoint.
PLAN = ["train.strategy=tsf", "train.stage1_steps=8", "train.stage2_steps=6", "train.batch_size=2",
        "train.log_every=1", "train.checkpoint_every=3", "train.learning_rate=1e-3"]


def _train_in_own_session(cfg, dataset: Path, out: Path, fault: str) -> int:
    """Run the train step in a child process, so the "group" fault (rank 0 SIGKILLs the step's process and
    everything under it: torchrun and the ranks) kills a whole run, not pytest."""
    script = ("import sys; from pathlib import Path; from components.config import config_from_json; "
              "from components.train.train import run; "
              "run(Path(sys.argv[1]), Path(sys.argv[2]), config_from_json(Path(sys.argv[3]).read_text()), 'v.dir')")
    cfg_file = out.parent / "cfg.json"
    cfg_file.write_text(cfg.to_json())
    env = {**os.environ, "VIDCUSTOM_FAULT_INJECT": fault, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", script, str(dataset), str(out), str(cfg_file)], env=env, timeout=600)
    return proc.returncode


def _losses(state: Path) -> list[tuple[str, int]]:
    lines = (state / "metrics.jsonl").read_text().splitlines()
    return [(r["stage"], r["step"]) for r in map(json.loads, lines) if "event" not in r]


@pytest.mark.slow
def test_killed_anywhere_resumes_to_the_uninterrupted_checkpoint(tiny_dataset, run_config, tmp_path, monkeypatch):
    from components.train.train import run, state_key

    cfg = run_config(*PLAN)
    state = cfg.state / "train" / state_key(cfg, "v.dir")
    run(tiny_dataset, tmp_path / "reference", cfg, "v.dir")
    reference = checkpoint_sha256(tmp_path / "reference")
    expected_records = _losses(state)
    assert len(expected_records) == 14

    # Whole-group kills in stage 2 before and after its first checkpoint (resume at the stage boundary, and
    # mid-stage with the stage-2 optimizer); one rank killed mid-stage-1 is test_train's killed-rank test.
    for fault in ("group:9", "group:13"):
        shutil.rmtree(state)
        out = tmp_path / f"resumed-{fault.replace(':', '-')}"
        if fault.startswith("group"):
            assert _train_in_own_session(cfg, tiny_dataset, out, fault) != 0
        else:
            monkeypatch.setenv("VIDCUSTOM_FAULT_INJECT", fault)
            with pytest.raises(RuntimeError, match="resume"):
                run(tiny_dataset, out, cfg, "v.dir")
            monkeypatch.delenv("VIDCUSTOM_FAULT_INJECT")
        assert not (out / "vidcustom.json").exists()
        summary = run(tiny_dataset, out, cfg, "v.dir")
        assert summary["resumed_from"], fault
        assert checkpoint_sha256(out) == reference, f"killed at {fault}: the resumed checkpoint differs"
        assert _losses(state) == expected_records, "each step is logged once, in order"


@pytest.mark.slow
def test_two_runs_of_one_training_key_take_turns(tiny_dataset, run_config, tmp_path):
    """Started together with the same data and config: one trains, the other waits on the key's lock, then
    finds the training done and writes the same checkpoint; every step is logged once."""
    from components.train.train import run, state_key

    cfg = run_config("train.stage1_steps=6", "train.stage2_steps=0", "train.batch_size=2", "train.log_every=1")
    results, errors = {}, []

    def go(name):
        try:
            results[name] = run(tiny_dataset, tmp_path / name, cfg, "v.dir")
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=go, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    assert not errors and set(results) == {"a", "b"}
    assert checkpoint_sha256(tmp_path / "a") == checkpoint_sha256(tmp_path / "b")
    assert [step for _, step in _losses(cfg.state / "train" / state_key(cfg, "v.dir"))] == list(range(1, 7))


@pytest.mark.slow
def test_a_failed_checkpoint_write_resumes_from_the_previous_checkpoint(tiny_dataset, run_config, tmp_path):
    """A checkpoint write that fails part-way (here: its directory cannot be created, as on a full or
    read-only disk) fails the run clearly; the previous checkpoint is intact and the re-run resumes from it."""
    from components.train.train import run, state_key

    cfg = run_config("train.stage1_steps=8", "train.stage2_steps=0", "train.batch_size=2", "train.log_every=1",
                     "train.checkpoint_every=3")
    state = cfg.state / "train" / state_key(cfg, "v.dir")
    run(tiny_dataset, tmp_path / "reference", cfg, "v.dir")
    reference = checkpoint_sha256(tmp_path / "reference")
    stage = json.loads((state / "plan.json").read_text())[0]["name"]
    shutil.rmtree(state)
    (state / "ds").mkdir(parents=True)
    (state / "ds" / f"{stage}-6").write_text("in the way")  # the step-6 checkpoint cannot be written
    with pytest.raises(RuntimeError, match="resume"):
        run(tiny_dataset, tmp_path / "out", cfg, "v.dir")
    assert json.loads((state / "progress.json").read_text())["tag"] == f"{stage}-3"
    (state / "ds" / f"{stage}-6").unlink()
    summary = run(tiny_dataset, tmp_path / "out", cfg, "v.dir")
    assert summary["resumed_from"] == [f"{stage}@3"]
    assert checkpoint_sha256(tmp_path / "out") == reference
