"""The promotion gate refuses a worse model: register a good checkpoint, then a deliberately worse one.

    python benchmarks/gate_refusal.py [--checkpoint DIR] [--out DIR] [--steps N] [--set section.key=value ...]

1. good: the given checkpoint, or one trained here through the project's own steps (synthesize -> train on
   the `ci` preset; --steps sets the budget);
2. worse: the same pipeline with its transformer weights re-initialised (a fresh random CogVideoX
   transformer; conditioner, codec and encoders kept);
3. both evaluated for real by the evaluate step (`components.evaluate.evaluate.run`, `ci` preset: held-out
   sprite subjects, sprites metrics + baselines), then registered in order by the register step into a
   fresh MLflow store under --out;
4. the good one's checkpoint registered once more: the version is reused, not duplicated.

Prints each version's aliases, gate decision and reasons (as stored on the model version). The gate is the
register section of the config (`ci`: no floors, no must-beat, no regression on sprites_motion beyond 0.01);
change it with --set, e.g. --set 'register.no_regression=[sprites_motion,sprites_identity]'.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def reinitialise_transformer(good: Path, out: Path, seed: int) -> Path:
    """`good` with a freshly initialised transformer (seeded), saved as a new checkpoint."""
    from model.pipeline import SugarPipeline

    pipe = SugarPipeline.from_pretrained(good)
    fresh = SugarPipeline.from_config(pipe.config, seed=seed)
    pipe.denoiser.transformer.load_state_dict(fresh.denoiser.transformer.state_dict())
    return pipe.save_pretrained(out, metadata={"training_stage": "transformer re-initialised"})


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=None, help="a trained checkpoint (default: train one here)")
    ap.add_argument("--out", type=Path, default=None, help="working directory (default: a temporary one)")
    ap.add_argument("--steps", type=int, default=200, help="training steps when training here (default: 200)")
    ap.add_argument("--reinit-seed", type=int, default=1234, help="seed of the re-initialised transformer")
    ap.add_argument("--set", action="append", default=[], help="config override, section.key=value")
    args = ap.parse_args(argv)

    out = args.out or Path(tempfile.mkdtemp(prefix="gate-refusal-"))
    out.mkdir(parents=True, exist_ok=True)
    os.environ["VIDCUSTOM_HOME"] = str(out / "state")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.setdefault("TQDM_DISABLE", "1")

    import mlflow

    from components.config import load_config
    from components.evaluate.evaluate import run as evaluate
    from components.register.register import run as register

    stage1 = int(round(args.steps * 0.6))
    cfg = load_config(preset="ci", overrides=[f"train.stage1_steps={stage1}",
                                              f"train.stage2_steps={args.steps - stage1}",
                                              "mlflow.experiment=gate-refusal", *args.set])
    t0 = time.time()
    good = args.checkpoint
    if good is None:
        from components.synthesize.synthesize import run as synthesize
        from components.train.train import run as train

        synthesize(out / "data", cfg)
        train(out / "data", out / "good", cfg)
        good = out / "good"
    worse = reinitialise_transformer(good, out / "worse", args.reinit_seed)

    results = {}
    for label, ckpt in (("good", good), ("worse", worse), ("good again", good)):
        ev = out / f"eval-{label.split()[0]}"
        if not (ev / "metrics.json").is_file():
            evaluate(ckpt, ev, cfg)
        results[label] = register(ckpt, ev, cfg)
    wall = time.time() - t0

    client = mlflow.MlflowClient()
    name = cfg.register_.model_name
    rc = cfg.register_
    print(f"gate: floors={rc.gate} must_beat={rc.must_beat} no_regression={rc.no_regression} "
          f"tolerance={rc.tolerance}")
    for label, r in results.items():
        m = json.loads((out / f"eval-{label.split()[0]}" / "metrics.json").read_text())
        print(f"\n[{label}] {name} v{r['version']} reused={r['reused']} sha256={r['checkpoint_sha256'][:12]} "
              f"compared with champion: {r['previous_champion'] or 'none'}")
        print("  metrics: " + ", ".join(f"{k}={m[k]:.4f}" for k in sorted(m)
                                        if k.startswith(("sprites_", "baseline_untrained/"))))
        print(f"  returned: gate={r['gate']} aliases={r['aliases']}")
        for reason in r["reasons"]:
            print(f"    - {reason}")
    print("\nregistry now:")
    for v in sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version)):
        v = client.get_model_version(name, v.version)  # search results may lack aliases
        print(f"  v{v.version}: aliases={sorted(v.aliases)} gate={v.tags['gate']} "
              f"training_stage={v.tags.get('training_stage')}")
        print(f"    gate_reasons: {v.tags['gate_reasons']}")
    print(f"\nwall time {wall:.0f} s; MLflow store {cfg.tracking_uri()}")
    return results


if __name__ == "__main__":
    main()
