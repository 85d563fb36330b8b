"""SUGAR mechanism proof on the sprites benchmark (issue 3; table in docs/sugar_mechanism.md).

Trains tiny SUGAR models on CPU for a fixed step budget through the project's own steps (synthesize ->
validate -> DeepSpeed train), samples them on held-out sprite subjects and prompts under several sampling
settings, and scores identity / motion / attribute against the sprites ground truth. Every training and
every evaluation is an MLflow run in one experiment (default `sugar-mechanism`), so the table can be
rebuilt and compared in the MLflow UI.

The data leave the subject's colour out of the captions (`synthesize.caption_colour=false`), so colour,
shape and texture all reach the model only through the identity image: identity then measures the image
pathway, which is what the comparisons are about.

Resumable: a finished training (checkpoint with vidcustom.json) or evaluation (results/*.json) is reused;
re-run the same command after an interruption. Example (the documented run):

    python benchmarks/sugar_mechanism.py --out bench-out/sugar-mechanism
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# name -> run-config overrides on top of the benchmark base. b_tsf is the paper's final model.
VARIANTS: dict[str, list[str]] = {
    "b_tsf": [],
    "a_tsf": ["model.attention_design=a"],
    "e_tsf": ["model.attention_design=e"],
    "b_mix1": ["train.strategy=mix", "train.mix_p=1.0"],
}
# Sampling for every evaluation but the guidance sweep: image guidance 3, no text guidance.
BASE = {"image_scale": 3.0, "text_scale": 1.0}
GUIDED_TEXT_SCALE = 7.5
IMAGE_SCALES = (1.0, 2.5, 5.0, 7.5)
EARLY_DROP = 0.3


def sampling_studies(variant: str) -> list[tuple[str, str, dict]]:
    """Image vs image dropped, early DINO drop, and the image-guidance sweep at s_T = 7.5 on one model."""
    return [
        (variant, variant, BASE),
        (f"{variant}/image_dropped", variant, {**BASE, "use_image": False}),
        (f"{variant}/early_drop", variant, {**BASE, "early_dino_drop": EARLY_DROP}),
        *[(f"{variant}/sI={s}_sT={GUIDED_TEXT_SCALE}", variant, {"image_scale": s, "text_scale": GUIDED_TEXT_SCALE})
          for s in IMAGE_SCALES],
    ]


# (evaluation name, variant, sampling keyword arguments of SugarPipeline.__call__)
EVALS: list[tuple[str, str, dict]] = [
    *sampling_studies("b_tsf"),
    ("a_tsf", "a_tsf", BASE),
    *sampling_studies("e_tsf"),
    ("b_mix1", "b_mix1", BASE),
]


def comparisons(variant: str) -> list[tuple[str, str, str]]:
    return [(f"({variant[0]}) image vs image dropped", variant, f"{variant}/image_dropped"),
            (f"({variant[0]}) early DINO drop on vs off", f"{variant}/early_drop", variant),
            (f"({variant[0]}) s_I=7.5 vs s_I=1 at s_T={GUIDED_TEXT_SCALE}", f"{variant}/sI=7.5_sT={GUIDED_TEXT_SCALE}",
             f"{variant}/sI=1.0_sT={GUIDED_TEXT_SCALE}")]


# (label, evaluation A, evaluation B): paired differences A - B reported with 95 % intervals.
COMPARISONS = [
    *comparisons("b_tsf"), *comparisons("e_tsf"),
    ("design (b) vs (a)", "b_tsf", "a_tsf"),
    ("design (e) vs (a)", "e_tsf", "a_tsf"),
    ("design (b) vs (e)", "b_tsf", "e_tsf"),
    ("TSF vs Mix(p=1), design (b)", "b_tsf", "b_mix1"),
]
SCORES = ("identity", "motion", "attribute")
log = logging.getLogger("sugar_mechanism")


def base_overrides(args) -> list[str]:
    total = args.steps
    stage1 = int(round(total * 0.6))
    return [
        f"state_dir={args.out / 'state'}", f"mlflow.experiment={args.experiment}",
        f"synthesize.num_subjects={args.subjects}", f"synthesize.samples_per_subject={args.samples_per_subject}",
        "synthesize.caption_colour=false", f"synthesize.subject_size=[{args.subject_size[0]},{args.subject_size[1]}]",
        "validate.push=false",
        f"train.stage1_steps={stage1}", f"train.stage2_steps={total - stage1}",
        f"evaluate.num_samples={args.eval_samples}", *args.set,
    ]


def load(args, variant: str):
    from components.config import load_config

    return load_config(None, base_overrides(args) + VARIANTS[variant], preset="tiny")


def prepare_data(args) -> tuple[Path, str]:
    from components.synthesize.synthesize import run as synthesize
    from components.validate.validate import run as validate

    cfg = load(args, "b_tsf")
    data = args.out / "data"
    synthesize(data, cfg)
    result = validate(data, args.out / "validation", cfg)
    return data, result.dvc_hash


def train(args, variant: str, data: Path, version: str) -> Path:
    from components.train.train import run as train_run
    from components.train.train import state_key

    cfg = load(args, variant)
    # Keyed by the training config, so a changed budget or option never reuses a stale model.
    ckpt = args.out / "checkpoints" / f"{variant}-{state_key(cfg, version)}"
    if (ckpt / "vidcustom.json").is_file():
        log.info("%s: reusing the trained checkpoint %s", variant, ckpt)
        return ckpt
    t0 = time.time()
    summary = train_run(data, ckpt, cfg, version)
    log.info("%s: trained %d steps in %.0f s, loss %.3f -> %.3f", variant, summary["steps"], time.time() - t0,
             summary["first_loss"], summary["final_loss"])
    return ckpt


def evaluate(args, name: str, variant: str, ckpt: Path, kwargs: dict, version: str) -> dict:
    import mlflow

    from components.evaluate.evaluate import generate_videos, sprites_table
    from components.sprites import heldout_specs_for
    from components.tracking import step_run
    from model.pipeline import SugarPipeline

    path = args.out / "results" / ckpt.name / (name.replace("/", "__") + ".json")
    if path.is_file():
        return json.loads(path.read_text())
    cfg = load(args, variant)
    t0 = time.time()
    pipe = SugarPipeline.from_pretrained(ckpt)
    specs = heldout_specs_for(cfg, cfg.evaluate.num_samples)
    _, videos = generate_videos(pipe, specs, cfg, **kwargs)
    rows = sprites_table(videos, specs)
    sampler = pipe.config.sampler
    settings = {"image_scale": sampler.image_scale, "text_scale": sampler.text_scale,
                "early_dino_drop": sampler.early_dino_drop, "use_image": True, **kwargs}
    result = {"name": name, "variant": variant, "settings": settings, "wall_s": round(time.time() - t0, 1),
              "per_sample": {k: [r[k] for r in rows] for k in SCORES},
              "mean": {k: float(np.mean([r[k] for r in rows])) for k in SCORES}}
    with step_run(cfg, "benchmark", version) as run:
        mlflow.set_tags({"benchmark": "sugar-mechanism", "evaluation": name, "variant": variant,
                         "strategy": cfg.train.strategy})
        mlflow.log_params({f"sampling.{k}": v for k, v in settings.items()})
        mlflow.log_metrics({f"sprites_{k}": v for k, v in result["mean"].items()})
        mlflow.log_dict(result, "result.json")
        result["run_id"] = run.info.run_id
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    log.info("%s: %s (%.0f s)", name, {k: round(v, 3) for k, v in result["mean"].items()}, result["wall_s"])
    return result


def mean_ci(x) -> tuple[float, float]:
    """Mean and the half-width of its normal 95 % interval."""
    x = np.asarray(x, dtype=float)
    return float(x.mean()), float(1.96 * x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0


def table(results: dict[str, dict]) -> str:
    lines = ["| evaluation | s_I | s_T | early DINO drop | image | identity | motion | attribute |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        s = r["settings"]
        cells = [f"{m:.3f} ± {h:.3f}" for m, h in (mean_ci(r["per_sample"][k]) for k in SCORES)]
        lines.append(f"| {name} | {s['image_scale']:g} | {s['text_scale']:g} | {s['early_dino_drop']:g} | "
                     f"{'yes' if s['use_image'] else 'dropped'} | " + " | ".join(cells) + " |")
    lines += ["", "Paired differences A - B on the same held-out samples and noise (mean ± 95 % interval):", "",
              "| comparison | A | B | Δ identity | Δ motion | Δ attribute |", "|---|---|---|---|---|---|"]
    for label, a, b in COMPARISONS:
        if a in results and b in results:
            cells = [f"{m:+.3f} ± {h:.3f}" for m, h in
                     (mean_ci(np.subtract(results[a]["per_sample"][k], results[b]["per_sample"][k])) for k in SCORES)]
            lines.append(f"| {label} | {a} | {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("bench-out/sugar-mechanism"),
                   help="working directory: data, checkpoints, results, MLflow store (default: %(default)s)")
    p.add_argument("--steps", type=int, default=3200, help="training steps per model, 60 %% stage 1 (default: 3200)")
    p.add_argument("--subjects", type=int, default=300, help="training subjects (default: 300)")
    p.add_argument("--samples-per-subject", type=int, default=4, help="(default: 4)")
    p.add_argument("--subject-size", type=float, nargs=2, default=(0.5, 0.65), metavar=("MIN", "MAX"),
                   help="subject box side as a fraction of the frame (default: 0.5 0.65; the data default is "
                        "0.31-0.44): larger subjects make identity a larger share of the pixels")
    p.add_argument("--eval-samples", type=int, default=96, help="held-out subject x prompt pairs (default: 96)")
    p.add_argument("--experiment", default="sugar-mechanism", help="MLflow experiment (default: %(default)s)")
    p.add_argument("--only", default=None, help="comma-separated evaluation names to run (default: all)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="extra run-config override for every model, repeatable")
    return p.parse_args(argv)


def main(argv=None) -> dict[str, dict]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    args.out = args.out.resolve()
    evals = [e for e in EVALS if args.only is None or e[0] in args.only.split(",")]
    t0 = time.time()
    data, version = prepare_data(args)
    results, ckpts = {}, {}
    for name, variant, kwargs in evals:
        if variant not in ckpts:
            ckpts[variant] = train(args, variant, data, version)
        results[name] = evaluate(args, name, variant, ckpts[variant], kwargs, version)
    text = table(results)
    wall = time.time() - t0
    (args.out / "table.md").write_text(text + f"\n\nWall time of this invocation: {wall / 60:.1f} min\n")
    print(text)
    print(f"\nwall time {wall / 60:.1f} min; data version {version}; table in {args.out / 'table.md'}")
    return results


if __name__ == "__main__":
    main()
