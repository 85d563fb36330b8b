"""One training rank: `python -m torch.distributed.run --nproc_per_node N -m components.train.worker ...`.

A generic stage loop over a customization method (model/methods: `model.method` picks it). Every rank
builds the method's pipeline (seeded), encodes the data with its frozen encoders outside the engine, then
runs the stage plan; each stage gets a fresh DeepSpeed engine over its trainable parameters (TSF freezes
the first blocks). The method makes each batch and its loss; the loop owns data order, stages,
checkpoints (every `checkpoint_every` steps, with every random stream, so resume is exact) and logging:
rank 0 writes metrics.jsonl and, when given a run, logs the loss to MLflow as it goes (live_metrics.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import torch

from components.config import config_from_json
from components.train.data import load_training_set
from components.train.ds_config import deepspeed_config
from components.train.live_metrics import LiveMetrics
from components.train.plan import stage_plan
from model.methods import get_method


def _init_distributed(build_shm_comm: bool):
    import deepspeed

    if not build_shm_comm:
        # The shm op only accelerates intra-node inference collectives; skip its JIT build.
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    return deepspeed


def _batch(data, n: int, p: float, gen: torch.Generator) -> torch.Tensor:
    """Indices of n samples, each synthetic with probability p, else real."""
    real, synth = data.pool(False), data.pool(True)
    for needed, pool, name in ((p < 1, real, "real"), (p > 0, synth, "synthetic")):
        if needed and len(pool) == 0:
            raise ValueError(f"the stage draws {name} samples (synthetic_p={p}) and the training split has none; "
                             "adjust synthesize.synthetic_fraction or train.mix_p / train.strategy")
    pick_synth = torch.rand(n, generator=gen) < p
    idx = torch.empty(n, dtype=torch.long)
    for mask, pool in ((pick_synth, synth), (~pick_synth, real)):
        if mask.any():
            idx[mask] = pool[torch.randint(len(pool), (int(mask.sum()),), generator=gen)]
    return idx


def _fault_point() -> tuple[str, int] | None:
    """VIDCUSTOM_FAULT_INJECT="RANK:STEP" kills that rank after that global step; "group:STEP" has rank 0
    SIGKILL the whole step there: the process that launched training and everything under it, as a node
    loss or a deleted pod would. For resilience drills and tests."""
    spec = os.environ.get("VIDCUSTOM_FAULT_INJECT")
    if not spec:
        return None
    who, step = spec.split(":")
    return who, int(step)


def _inject_fault(fault: tuple[str, int] | None, rank: int, global_step: int) -> None:
    if fault is None or fault[1] != global_step:
        return
    if fault[0] == str(rank):
        os._exit(13)  # a killed rank: no cleanup, like an OOM kill
    if fault[0] == "group" and rank == 0:
        import psutil

        step = psutil.Process(int(os.environ["VIDCUSTOM_TRAIN_LAUNCHER_PID"]))
        for proc in [step, *step.children(recursive=True)]:
            proc.send_signal(signal.SIGKILL)  # this rank among them


def _rng_file(state: Path, tag: str, rank: int) -> Path:
    return state / "ds" / tag / f"rng_rank{rank}.json"


def _save_rng(path: Path, gen: torch.Generator, rng: np.random.Generator) -> None:
    """This rank's random streams (data order, condition dropout, diffusion noise), as JSON: resume restores
    them rather than re-seeding, so a resumed run draws exactly what an uninterrupted one would."""
    blob = {"torch": gen.get_state().tolist(), "torch_global": torch.get_rng_state().tolist(),
            "numpy": rng.bit_generator.state}
    tmp = path.with_suffix(".part")
    tmp.write_text(json.dumps(blob))
    os.replace(tmp, path)


def _load_rng(path: Path, gen: torch.Generator, rng: np.random.Generator) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the checkpoint it belongs to is incomplete; delete "
                                f"{path.parents[2]} to train from scratch")
    blob = json.loads(path.read_text())
    gen.set_state(torch.tensor(blob["torch"], dtype=torch.uint8))
    torch.set_rng_state(torch.tensor(blob["torch_global"], dtype=torch.uint8))
    rng.bit_generator.state = blob["numpy"]


def _write_progress(progress_file: Path, progress: dict) -> None:
    tmp = progress_file.with_suffix(".part")
    tmp.write_text(json.dumps(progress))
    os.replace(tmp, progress_file)


def _keep_metrics_until(metrics_file: Path, stage: str, step: int) -> None:
    """Drop the records a resumed run will write again (logged after the checkpoint it resumes from), so
    metrics.jsonl holds each step once."""
    if not metrics_file.is_file():
        return
    kept = []
    for line in metrics_file.read_text().splitlines():
        r = json.loads(line) if line.strip() else None
        if r is not None and not (r.get("stage") == stage and "event" not in r and r["step"] > step):
            kept.append(line)
    tmp = metrics_file.with_suffix(".part")
    tmp.write_text("".join(k + "\n" for k in kept))
    os.replace(tmp, metrics_file)


def train(cfg, dataset: Path, output: Path, state: Path, metadata: dict, live: LiveMetrics | None = None) -> None:
    deepspeed = _init_distributed(cfg.train.build_shm_comm)
    import torch.distributed as dist

    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if torch.cuda.is_available() else None
    tc = cfg.train
    method = get_method(cfg.model)
    pipe = method.build(tc.seed)
    data = load_training_set(dataset, method, pipe)
    model = method.trainable(pipe)
    plan = stage_plan(tc, len(method.blocks(pipe)))
    progress_file, metrics_file = state / "progress.json", state / "metrics.jsonl"
    progress = json.loads(progress_file.read_text()) if progress_file.is_file() else {"stage": 0, "step": 0}
    if rank == 0:
        (state / "plan.json").write_text(json.dumps([s.as_dict() for s in plan], indent=2))
    done_weights = state / "stage_weights.safetensors"
    if progress["stage"] > 0:
        if not done_weights.is_file():
            raise FileNotFoundError(f"{progress_file} says stage {progress['stage']} was reached but {done_weights} is "
                                    f"missing; delete {state} to train from scratch")
        from safetensors.torch import load_file

        model.load_state_dict(load_file(done_weights))
    fault = _fault_point()
    for si, stage in enumerate(plan):
        if si < progress["stage"]:
            continue
        params = method.set_trainable(pipe, stage.frozen_blocks)
        opt = torch.optim.AdamW(params, lr=tc.learning_rate, weight_decay=tc.weight_decay)
        warmup = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / max(1, tc.warmup_steps)))
        engine, _, _, _ = deepspeed.initialize(model=model, optimizer=opt, lr_scheduler=warmup,
                                               config=deepspeed_config(tc, world))
        start = 0
        gen = torch.Generator().manual_seed(tc.seed * 1000 + rank * 100 + si * 10)
        torch.manual_seed(tc.seed * 1000 + rank * 100 + si * 10 + 1)  # anything drawing from the global stream
        rng = np.random.default_rng([tc.seed, rank, si])  # the diffusion noise (model/noise.py)
        if progress["stage"] == si and (progress["step"] > 0 or si > 0):  # resuming, mid-stage or at its start
            if progress["step"] > 0:
                tag = progress.get("tag", stage.name)
                _, client = engine.load_checkpoint(str(state / "ds"), tag=tag)
                start = int((client or {}).get("step", 0))
                _load_rng(_rng_file(state, tag, rank), gen, rng)
            if rank == 0:
                _keep_metrics_until(metrics_file, stage.name, start)
                with metrics_file.open("a") as f:
                    f.write(json.dumps({"event": "resume", "stage": stage.name, "step": start}) + "\n")
        dist.barrier()  # rank 0 rewrites metrics.jsonl above
        bar = None
        if rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=stage.steps, initial=start, desc=f"train {stage.name}", unit="step")
        t0 = time.time()
        for step in range(start, stage.steps):
            idx = _batch(data, tc.batch_size, stage.synthetic_p, gen)
            batch = method.prepare_batch(pipe, data.rows(idx), gen, rng)
            loss = method.compute_loss(engine, batch.to(device, torch.bfloat16 if tc.bf16 else None))
            engine.backward(loss)
            engine.step()
            global_step = sum(s.steps for s in plan[:si]) + step + 1
            _inject_fault(fault, rank, global_step)
            mean = loss.detach().clone()
            dist.all_reduce(mean)
            mean = mean.item() / world
            if not math.isfinite(mean):
                raise FloatingPointError(f"loss became {mean} at {stage.name} step {step + 1}; lower "
                                         "train.learning_rate or check the data (the last saved state is kept)")
            if rank == 0:
                bar.update(1)
                bar.set_postfix(loss=f"{mean:.4f}")
                if (step + 1) % tc.log_every == 0 or step + 1 == stage.steps:
                    record = {"stage": stage.name, "step": step + 1, "loss": mean,
                              "steps_per_s": (step + 1 - start) / (time.time() - t0), "timestamp": time.time()}
                    with metrics_file.open("a") as f:
                        f.write(json.dumps(record) + "\n")
                    if live is not None:
                        live.log(record, global_step)
            if (step + 1) % tc.checkpoint_every == 0 and step + 1 < stage.steps:
                # A new tag per checkpoint: the one progress.json points at stays whole until the next is
                # complete on every rank, so a kill or a full disk mid-write resumes from the previous one.
                tag = f"{stage.name}-{step + 1}"
                engine.save_checkpoint(str(state / "ds"), tag=tag, client_state={"step": step + 1})
                _save_rng(_rng_file(state, tag, rank), gen, rng)
                dist.barrier()
                if rank == 0:
                    old = json.loads(progress_file.read_text()).get("tag") if progress_file.is_file() else None
                    _write_progress(progress_file, {"stage": si, "step": step + 1, "tag": tag})
                    if old and old != tag:
                        shutil.rmtree(state / "ds" / old, ignore_errors=True)
        if bar is not None:
            bar.close()
        # Unhook this engine from the parameters: the next stage's engine shares them, and a stale engine's
        # gradient hooks would keep filling its never-flushed ZeRO bucket until it overflows.
        engine.destroy()
        if rank == 0:
            from safetensors.torch import save_file

            # Weights first (atomically), then the progress that points at them: a crash between the two
            # only repeats the last few steps, never loads a half-written file.
            tmp = done_weights.with_suffix(".part")
            save_file({k: v.float().contiguous() for k, v in model.state_dict().items()}, tmp)
            os.replace(tmp, done_weights)
            _write_progress(progress_file, {"stage": si + 1, "step": 0})
            shutil.rmtree(state / "ds", ignore_errors=True)  # the stage's checkpoints are superseded
        dist.barrier()
    if rank == 0:
        method.save(pipe, output, {**metadata, "training_stage": plan[-1].name if plan else "untrained",
                                   "stage_plan": [s.as_dict() for s in plan]})
    dist.barrier()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config-file", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--state", required=True)
    ap.add_argument("--metadata", default="{}")
    ap.add_argument("--mlflow-uri", help="the store of the step's run: rank 0 logs the loss there as it goes")
    ap.add_argument("--mlflow-run", help="the step's MLflow run id")
    a = ap.parse_args()
    cfg = config_from_json(Path(a.config_file).read_text())
    live = None
    if a.mlflow_uri and a.mlflow_run and int(os.environ.get("RANK", "0")) == 0:
        live = LiveMetrics(a.mlflow_uri, a.mlflow_run)
    try:
        train(cfg, Path(a.dataset), Path(a.output), Path(a.state), json.loads(a.metadata), live)
    finally:
        if live is not None:
            live.close()


if __name__ == "__main__":
    main()
