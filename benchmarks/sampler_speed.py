"""Seconds per video, end to end (identity image uint8 -> uint8 video), of the PyTorch pipeline and the ONNX
sampler with each acceleration, on this machine; and what the export's acceleration gate says of each.

    python benchmarks/sampler_speed.py [--size tiny|20m] [--checkpoint DIR] [--steps N] [--rounds 7]

--size tiny: the checkpoint given (a trained tiny one makes the identity scores mean something), else the tiny
    model from the bundled base; --size 20m: the tiny model widened to 6 layers x 8 heads x 64 (24 M
    transformer parameters, random weights: speed does not depend on them; identity scores then do not mean much).
Variants: PyTorch with all three guidance branches (the pipeline as registered before the branch plan), PyTorch
with the plan, ONNX with three branches, ONNX with the plan, ONNX with the plan and each further acceleration,
and ONNX as the gate would serve it (the accepted ones together). Each variant runs in its own process (no
thread pool of one disturbs another); the parent runs them in interleaved rounds (one video each per round,
the order rotating) and prints the median and min over the rounds, the ratio against PyTorch with three branches
and against PyTorch with the same branch plan (what ONNX Runtime itself buys), and the CPU other processes took
meanwhile. The gate is the export step's (components/export/accelerate.py) with the export defaults of
components/config.py, on the held-out sprite cases the export uses.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PROMPT = "a red cat walks to the left on a black background"
SEED = 1234
TARGET = 3.0
WIDE = {"num_layers": 6, "num_attention_heads": 8, "attention_head_dim": 64, "time_embed_dim": 128}

# name -> (kind, options); ONNX accelerations as the sampler names them
VARIANTS = {
    "torch, 3 branches": ("torch", {"branch_plan": False}),
    "torch, branch plan": ("torch", {"branch_plan": True}),
    "onnx, 3 branches": ("onnx", {"accelerations": ()}),
    "onnx, branch plan": ("onnx", {"accelerations": ("branch_plan",)}),
    "onnx, plan, ORT spinning on": ("onnx", {"accelerations": ("branch_plan",), "allow_spinning": True}),
    "onnx, plan + io_binding": ("onnx", {"accelerations": ("branch_plan", "io_binding")}),
    "onnx, plan + int8": ("onnx", {"accelerations": ("branch_plan", "int8")}),
    "onnx, plan + fewer_steps": ("onnx", {"accelerations": ("branch_plan", "fewer_steps")}),
    "onnx, plan + step_cache": ("onnx", {"accelerations": ("branch_plan", "step_cache")}),
    "onnx, served (gate-accepted)": ("onnx", {"accelerations": None}),
}


def _worker(conn, kind: str, options: dict, checkpoint: str, onnx_dir: str, image: np.ndarray, steps: int) -> None:
    """One variant in its own process: build it, then one video per "run" message; replies seconds."""
    if kind == "torch":
        from model.pipeline import SugarPipeline

        pipe = SugarPipeline.from_pretrained(checkpoint)
        run = lambda: pipe(image, PROMPT, seed=SEED, num_inference_steps=steps, **options).frames[0]  # noqa: E731
    else:
        from components.export.sampler import OnnxSugarSampler

        options = dict(options)
        sampler = OnnxSugarSampler(onnx_dir, ("CPUExecutionProvider",), options.pop("accelerations"), **options)
        run = lambda: sampler(image, PROMPT, seed=SEED, num_inference_steps=steps)  # noqa: E731
    run()  # warm-up (first-call allocations, lazy inits)
    conn.send("ready")
    while conn.recv() == "run":
        t0 = time.perf_counter()
        video = run()
        conn.send(time.perf_counter() - t0)
        assert video.dtype == np.uint8
    conn.close()


def _busy_seconds() -> float:
    import psutil

    t = psutil.cpu_times()
    return t.user + t.system + getattr(t, "nice", 0) + getattr(t, "irq", 0) + getattr(t, "softirq", 0)


def _tree_seconds(procs) -> float:
    """CPU seconds of this process and the variants' processes."""
    import psutil

    total = 0.0
    for p in [psutil.Process(), *(psutil.Process(q.pid) for q in procs)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            pass
    return total


def _build(size: str, checkpoint: str | None, work: Path):
    from components.config import load_config
    from model.config import ModelConfig
    from model.pipeline import SugarPipeline

    if size == "tiny" and checkpoint:
        return SugarPipeline.from_pretrained(checkpoint), checkpoint
    base = load_config(preset="tiny").model  # the run preset: the bundled base's settings
    if size == "tiny":
        cfg = base
    else:  # widened: the bundled base does not fit, so random weights
        cfg = ModelConfig.model_validate({**base.model_dump(), "transformer_path": None, "transformer_sha256": None,
                                          "transformer": {**base.transformer.model_dump(), **WIDE}})
    pipe = SugarPipeline.from_config(cfg)
    pipe.save_pretrained(work / "checkpoint")
    return pipe, str(work / "checkpoint")


def _gate(onnx_dir: Path, pipe, steps: int) -> dict:
    from components.config import load_config
    from components.export.accelerate import gate_accelerations
    from components.sprites import generate, heldout_specs_for

    cfg = load_config(ROOT / "params.yaml")
    e, c = cfg.export, pipe.config
    cases = [(generate(s, c.height, c.width, c.num_frames)[0], s.caption, s) for s in heldout_specs_for(cfg, 2)]
    runtime = {"fewer_steps_fraction": e.fewer_steps_fraction, "cache_interval": e.cache_interval,
               "intra_op_threads": e.intra_op_threads, "allow_spinning": e.allow_spinning,
               "graph_optimization": e.graph_optimization}
    candidates = ["branch_plan", "io_binding", "int8", "fewer_steps", "step_cache"]
    return gate_accelerations(onnx_dir, cases, [cfg.evaluate.seed + k for k in range(3)], steps, candidates,
                              e.accel_atol, e.accel_identity_drop, runtime, ("CPUExecutionProvider",))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=("tiny", "20m"), default="tiny")
    ap.add_argument("--checkpoint", help="a trained tiny checkpoint (--size tiny)")
    ap.add_argument("--steps", type=int, default=None, help="default: the model's sampler steps")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--only", help="comma-separated variant names (default: all)")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    import torch

    from components.export.accelerate import quantize_denoiser
    from components.export.onnx_export import export_pipeline
    from components.export.runtime import physical_cores
    from components.sprites import generate, heldout_specs_for
    from components.config import load_config

    work = Path(tempfile.mkdtemp(prefix="sampler-speed-"))
    pipe, checkpoint = _build(args.size, args.checkpoint, work)
    c = pipe.config
    steps = args.steps or c.sampler.num_inference_steps
    params = sum(p.numel() for p in pipe.transformer.parameters())
    onnx_dir = export_pipeline(pipe, work / "onnx")
    quantize_denoiser(onnx_dir)  # the int8 variant runs whatever the gate decides
    gate = _gate(onnx_dir, pipe, steps)
    if not (onnx_dir / "denoiser_int8.onnx").exists():
        quantize_denoiser(onnx_dir)  # refused by the gate (and removed); timed all the same
    spec = heldout_specs_for(load_config(ROOT / "params.yaml"), 1)[0]
    image = generate(spec, c.height, c.width, c.num_frames)[0]

    names = [n for n in VARIANTS if not args.only or n in args.only.split(",")]
    ctx = mp.get_context("spawn")
    workers = {}
    for name in names:
        kind, options = VARIANTS[name]
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(child, kind, options, checkpoint, str(onnx_dir), image, steps),
                           daemon=True)
        proc.start()
        workers[name] = (proc, parent)
    for name, (_, conn) in workers.items():
        assert conn.recv() == "ready", name
    times: dict[str, list[float]] = {n: [] for n in names}
    busy0, ours0, wall0 = _busy_seconds(), _tree_seconds([p for p, _ in workers.values()]), time.perf_counter()
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]  # rotate: no variant always runs first
        for name in order:
            conn = workers[name][1]
            conn.send("run")
            times[name].append(conn.recv())
    wall = time.perf_counter() - wall0
    other = (_busy_seconds() - busy0) - (_tree_seconds([p for p, _ in workers.values()]) - ours0)
    for proc, conn in workers.values():
        conn.send("stop")
        proc.join(10)

    med = {n: statistics.median(t) for n, t in times.items()}
    served = ", ".join(gate["accepted"]) or "none"
    print(f"size {args.size}: transformer {params:,} parameters ({c.transformer.num_layers} layers x "
          f"{c.transformer.num_attention_heads} heads x {c.transformer.attention_head_dim}); {c.num_frames} frames "
          f"{c.height}x{c.width}; {steps} steps; scales {c.sampler.image_scale:g}/{c.sampler.text_scale:g}")
    print(f"cpu: {os.cpu_count()} logical, {physical_cores()} physical usable; torch threads "
          f"{torch.get_num_threads()}; ORT intra-op threads {physical_cores()}, spinning off unless named")
    print(f"rounds: {args.rounds}, interleaved, one process per variant; other processes used "
          f"{max(other, 0.0) / wall:.2f} CPU on average during the {wall:.0f} s of timing")
    print(f"served = what the gate accepted when offered all five in order: {served}\n")
    print(f"{'variant':34s} {'median s':>9s} {'min s':>8s} {'vs torch 3':>11s} {'vs torch same plan':>19s}")
    for name in names:
        kind, options = VARIANTS[name]
        ref3 = med.get("torch, 3 branches")
        same = "torch, 3 branches" if kind == "onnx" and options.get("accelerations") == () else "torch, branch plan"
        r3 = f"{ref3 / med[name]:10.2f}x" if ref3 else f"{'-':>11s}"
        rs = f"{med[same] / med[name]:18.2f}x" if kind == "onnx" and same in med else f"{'-':>19s}"
        print(f"{name:34s} {med[name]:9.4f} {min(times[name]):8.4f} {r3} {rs}")
    print("(fewer_steps and step_cache skip denoiser calls: their ratios count that, and they are lossy by design)")
    print(f"\ngate (tolerance: max |Δ| <= {gate['tolerance']['max_abs_diff']:g}, identity drop <= "
          f"{gate['tolerance']['identity_drop']:g}; reference identity {gate['reference']['identity']:.4f}; "
          f"{gate['cases']} sprite cases x {len(gate['seeds'])} seeds):")
    for d in gate["decisions"]:
        print(f"  {d['acceleration']:12s} on top of {','.join(d['on_top_of']) or '(none)':26s} max|Δ| "
              f"{d['max_abs_diff']:.3g}  identity Δ {d['identity_delta']:+.4f}  "
              f"{'accepted' if d['accepted'] else 'refused'}")
    result = {"median": med, "min": {n: min(t) for n, t in times.items()}, "gate": gate, "params": params}
    if "torch, 3 branches" in med and "onnx, served (gate-accepted)" in med:
        ratio = med["torch, 3 branches"] / med["onnx, served (gate-accepted)"]
        verdict = "reached" if ratio >= TARGET else "NOT reached"
        print(f"\n{TARGET:g}x target (served ONNX vs PyTorch with 3 branches, medians): {ratio:.2f}x, {verdict}")
        if "torch, branch plan" in med and "onnx, branch plan" in med:
            print(f"of which the branch plan (torch 3 -> torch plan): "
                  f"{med['torch, 3 branches'] / med['torch, branch plan']:.2f}x; ONNX Runtime at the same plan: "
                  f"{med['torch, branch plan'] / med['onnx, branch plan']:.2f}x")
        result["ratio"] = ratio
    return result


if __name__ == "__main__":
    main()
