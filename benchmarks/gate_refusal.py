"""The promotion gate refuses what it must: a model that ignores the subject image, and a worse model.

    python benchmarks/gate_refusal.py [--params params.yaml] [--checkpoint DIR] [--out DIR] [--set k=v ...]

Everything runs through the project's own steps with the config of --params (default: the demo's
params.yaml, so its gate: the image effect must exclude zero, identity must beat the untrained model):
1. good: the given checkpoint, or one trained here (synthesize -> train, the demo's budget);
2. image ignored: trained the same way with the image pathway disabled in training
   (`model.conditioning.drop_dino=1`, `drop_clip=1`: every sample sees the null image), so the image
   cannot matter; the gate must refuse it with the image-effect reason;
3. worse: the good checkpoint with its transformer re-initialised (a fresh random CogVideoX transformer);
4. each evaluated for real by the evaluate step (held-out sprite subjects, with the image and with it
   dropped on the same noise, and the untrained baseline), then registered in that order into a fresh
   MLflow store under --out; finally the good checkpoint once more: its version is reused, not duplicated.

Prints each version's aliases, gate decision and reasons (as stored on the model version).
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
    # every CogVideoX weight re-initialised, SUGAR's conditioner kept
    pipe.denoiser.load_state_dict({**fresh.denoiser.state_dict(), **pipe.denoiser.conditioner.state_dict(
        prefix="conditioner.")})
    return pipe.save_pretrained(out, metadata={"training_stage": "transformer re-initialised"})


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=None, help="a trained checkpoint (default: train one here)")
    ap.add_argument("--out", type=Path, default=None, help="working directory (default: a temporary one)")
    ap.add_argument("--params", default=str(Path(__file__).resolve().parents[1] / "params.yaml"),
                    help="run config (default: the demo's params.yaml)")
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

    cfg = load_config(args.params, overrides=["mlflow.experiment=gate-refusal", *args.set])
    blind = load_config(args.params, overrides=["mlflow.experiment=gate-refusal", *args.set,
                                                "model.conditioning.drop_dino=1", "model.conditioning.drop_clip=1"])
    t0 = time.time()
    from components.synthesize.synthesize import run as synthesize
    from components.train.train import run as train

    good = args.checkpoint
    if good is None or not (out / "ignored").is_dir():
        synthesize(out / "data", cfg)
    if good is None:
        if not (out / "good").is_dir():
            train(out / "data", out / "good", cfg)
        good = out / "good"
    if not (out / "ignored").is_dir():
        train(out / "data", out / "ignored", blind)
    worse = reinitialise_transformer(good, out / "worse", args.reinit_seed)

    results = {}
    for label, ckpt in (("good", good), ("ignored", out / "ignored"), ("worse", worse), ("good again", good)):
        ev = out / f"eval-{label.split()[0]}"
        if not (ev / "metrics.json").is_file():
            evaluate(ckpt, ev, cfg)
        results[label] = register(ckpt, ev, cfg)
    wall = time.time() - t0

    client = mlflow.MlflowClient()
    name = cfg.register_.model_name
    rc = cfg.register_
    print(f"gate: floors={rc.gate} must_beat={rc.must_beat} no_regression={rc.no_regression} "
          f"tolerance={rc.tolerance} image_effect={rc.image_effect} (lower bound > {rc.min_image_effect})")
    for label, r in results.items():
        m = json.loads((out / f"eval-{label.split()[0]}" / "metrics.json").read_text())
        print(f"\n[{label}] {name} v{r['version']} reused={r['reused']} sha256={r['checkpoint_sha256'][:12]} "
              f"compared with champion: {r['previous_champion'] or 'none'}")
        print("  metrics: " + ", ".join(f"{k}={m[k]:.4f}" for k in sorted(m)
                                        if k.startswith(("sprites_identity", "sprites_motion", "baseline_untrained/",
                                                         "image_effect/sprites_identity", "ablation_no_image/"))
                                        and "identity_" not in k.split("/")[-1]))
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
