"""Evaluate step: generate videos for held-out sprite subjects and prompts, score them, log to MLflow.

Outputs (DESIGN.md): metrics.json, per_sample.parquet, videos/*.mp4 and contact_sheet.png.
Sprites track: identity / motion / attribute against the procedural ground truth. Paper track: VBench
subject and background consistency and dynamic degree, CLIP-T and DINO-I, with the configured judges
(tiny random judges => tagged plumbing-only). With `evaluate.baselines`, the same prompts are also run
on the untrained model (the trainer's exact initialisation) and with the image condition dropped.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from components import sprites
from components.config import RunConfig

log = logging.getLogger(__name__)
SPRITES = ("identity", "identity_shape", "identity_colour", "identity_texture", "motion", "attribute")
# The paired image effect (with image - image dropped, same samples and noise) is reported for these; the
# gate reads the first one that the benchmark produced (register.image_effect=auto).
IMAGE_EFFECT_METRICS = ("sprites_identity", "dino_i")
# METHOD_NOTES §3, each to its reference's preprocessing and aggregation (components/evaluate/metrics.py).
PAPER_METRICS = ("dino_i", "clip_i", "clip_t", "text_video", "dynamic_degree", "subject_consistency",
                 "background_consistency", "temporal_consistency")


def generate_videos(pipe, specs, cfg: RunConfig, **kw) -> tuple[np.ndarray, np.ndarray]:
    m = pipe.config
    idents = np.stack([sprites.generate(s, m.height, m.width, m.num_frames)[0] for s in specs])
    return idents, generate_for_cases(pipe, idents, [s.caption for s in specs], cfg, **kw)


def sprites_table(videos: np.ndarray, specs) -> list[dict]:
    return [sprites.sprites_scores(v, s) for v, s in zip(videos, specs)]


def _mean(rows: list[dict], key: str) -> float:
    """Mean over the samples where `key` applies (identity parts are NaN where the caption changes them)."""
    values = np.array([r[key] for r in rows], np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def image_effects(with_image: list[dict], no_image: list[dict], keys) -> tuple[dict[str, float], dict[str, str]]:
    """Paired effect of the subject image per key: metrics `image_effect/<key>{,_lo,_hi}` and readable lines."""
    from components.evaluate.paired import paired_effect

    metrics, lines = {}, {}
    for key in keys:
        effect = paired_effect([r[key] for r in with_image], [r[key] for r in no_image])
        if effect.n:
            metrics.update(effect.metrics(f"image_effect/{key}"))
            lines[key] = str(effect)
    return metrics, lines


def image_cases(bench, cfg: RunConfig, height: int, width: int) -> tuple[list[dict], np.ndarray, list[np.ndarray]]:
    """A subject-image benchmark's first `evaluate.num_samples` cases, the model's identity inputs (resized to
    (height, width), aspect kept, padded with white) and the original reference images for CLIP-I / DINO-I."""
    from components.evaluate.benchmarks import expand
    from components.preprocess import decode_image, fit
    from components.storage import local_path

    if not cfg.evaluate.benchmark_images:
        raise ValueError(f"evaluate.benchmark={bench.name!r} needs evaluate.benchmark_images: the folder of its "
                         "subject images (e.g. DreamBench's dataset/)")
    root = local_path(cfg.evaluate.benchmark_images, what="benchmark images")
    cases = expand(bench, root, limit=cfg.evaluate.num_samples)
    references = [decode_image(c.image) for c in cases]  # the served preprocessing (components/preprocess.py)
    idents = np.stack([fit(r, height, width) for r in references])
    rows = [{"sample_id": c.case_id, "subject_id": c.subject_id, "category": c.category, "caption": c.prompt}
            for c in cases]
    return rows, idents, references


def _sheet_labels(cases: list[dict], rows: list[dict] | None) -> list[str] | None:
    """Per contact-sheet row: the identity score with the image and with it dropped, when both are known."""
    if not rows or "sprites_identity_no_image" not in cases[0]:
        return None
    return [f"identity {r['identity']:.2f}\ndropped  {c['sprites_identity_no_image']:.2f}" for c, r in zip(cases, rows)]


def generate_for_cases(pipe, idents: np.ndarray, prompts: list[str], cfg: RunConfig, **kw) -> np.ndarray:
    """Videos (N, T, H, W, 3) for N identity images and prompts, in batches of evaluate.batch_size."""
    bs, out = cfg.evaluate.batch_size, []
    for i in range(0, len(prompts), bs):
        out.append(pipe(idents[i:i + bs], prompts[i:i + bs], seed=cfg.evaluate.seed + i,
                        num_inference_steps=cfg.evaluate.num_inference_steps, **kw).frames)
    return np.concatenate(out)


def guidance_sweep(pipe, specs, cfg: RunConfig) -> dict:
    """Sprites scores at each image guidance scale of `evaluate.guidance_sweep` (text scale as configured):
    {"scales": [...], "metrics": {"sprites_identity": [...], ...}}."""
    scales = [float(s) for s in cfg.evaluate.guidance_sweep]
    series: dict[str, list[float]] = {f"sprites_{k}": [] for k in SPRITES}
    for scale in scales:
        _, videos = generate_videos(pipe, specs, cfg, image_scale=scale)
        rows = sprites_table(videos, specs)
        for k in SPRITES:
            series[f"sprites_{k}"].append(_mean(rows, k))
    return {"scales": scales, "metrics": series}


def run(checkpoint_dir: str | Path, output_dir: str | Path, cfg: RunConfig, data_version: str | None = None) -> dict:
    import mlflow
    import pandas as pd

    from components.evaluate.benchmarks import load_benchmark
    from components.evaluate.metric_suite import evaluate_videos
    from components.evaluate.text_video import build_text_video_scorer
    from components.optical_flow import build_flow_estimator
    from components.media import write_image, write_video
    from components.tracking import model_tags, step_run
    from model.pipeline import SugarPipeline
    from model.scoring import ScoringEncoders

    from .artifacts import contact_sheet, sweep_figure, write_gif

    out = Path(output_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    (out / "gifs").mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    bench = load_benchmark(cfg.evaluate.benchmark)
    pipe = SugarPipeline.from_pretrained(checkpoint_dir)
    judges = ScoringEncoders(cfg.scoring)
    if bench.kind == "sprites":
        specs = sprites.heldout_specs_for(cfg, cfg.evaluate.num_samples)
        cases = [{"sample_id": s.sample_id, "subject_id": s.subject.subject_id, "category": s.subject.category,
                  "caption": s.caption} for s in specs]
        idents, videos = generate_videos(pipe, specs, cfg)
        rows = sprites_table(videos, specs)
        metrics = {f"sprites_{k}": _mean(rows, k) for k in SPRITES}
    else:  # a subject-image benchmark (SUGAR's DreamBench protocol, VideoMaker's lists): paper metrics only
        specs, rows, metrics = None, None, {}
        cases, idents, references = image_cases(bench, cfg, pipe.config.height, pipe.config.width)
        videos = generate_for_cases(pipe, idents, [c["caption"] for c in cases], cfg)
    if bench.kind == "sprites":
        references = list(idents)

    # CLIP-I / DINO-I compare against the original reference image, not the model's resized input (§3.6).
    samples = [{"id": c["sample_id"], "frames": v, "fps": pipe.config.fps, "prompt": c["caption"], "references": r}
               for c, v, r in zip(cases, videos, references)]
    paper_rows: list[dict] = [{} for _ in cases]
    scorer = None
    if cfg.evaluate.paper_metrics:
        scorer = build_text_video_scorer(cfg.scoring, encoders=judges)
        flow = build_flow_estimator(cfg.evaluate.flow, cfg.evaluate.raft_weights)
        paper, paper_rows = evaluate_videos(samples, judges, metrics=PAPER_METRICS, text_video_scorer=scorer,
                                            estimator=flow)
        metrics.update(paper)
    no_image = None
    if cfg.evaluate.baselines:
        # The image-dropped ablation: same cases, same noise; the paired difference is the image's effect.
        no_image = generate_for_cases(pipe, idents, [c["caption"] for c in cases], cfg, use_image=False)
        if specs is not None:
            dropped_rows = sprites_table(no_image, specs)
            for k in SPRITES:
                metrics[f"ablation_no_image/sprites_{k}"] = _mean(dropped_rows, k)
            pairs = [{f"sprites_{k}": r[k] for k in SPRITES} for r in rows]
            dropped = [{f"sprites_{k}": r[k] for k in SPRITES} for r in dropped_rows]
        else:  # a subject-image benchmark: the effect on DINO-I against the reference image
            _, dropped = evaluate_videos([{**s, "frames": v} for s, v in zip(samples, no_image)], judges,
                                         metrics=("dino_i",))
            pairs = paper_rows if cfg.evaluate.paper_metrics else evaluate_videos(samples, judges,
                                                                                 metrics=("dino_i",))[1]
            metrics["ablation_no_image/dino_i"] = float(np.mean([r["dino_i"] for r in dropped]))
        keys = [k for k in pairs[0] if k in IMAGE_EFFECT_METRICS or k.startswith("sprites_identity")]
        effects, effect_lines = image_effects(pairs, dropped, keys)
        metrics.update(effects)
        for c, d in zip(cases, dropped):
            c.update({f"{k}_no_image": d[k] for k in keys})
        for key, line in effect_lines.items():
            log.info("image effect on %s: %s", key, line)
        if specs is not None:
            untrained = SugarPipeline.from_config(pipe.config, seed=pipe.metadata.get("init_seed", 0))
            _, raw = generate_videos(untrained, specs, cfg)
            for k in SPRITES:
                metrics[f"baseline_untrained/sprites_{k}"] = _mean(sprites_table(raw, specs), k)
    sweep = guidance_sweep(pipe, specs, cfg) if cfg.evaluate.guidance_sweep and specs is not None else {}
    metrics["eval_wall_s"] = round(time.time() - t0, 1)

    table = pd.DataFrame([{**c, **({f"sprites_{k}": r[k] for k in SPRITES} if r else {}),
                           **{k: v for k, v in pr.items() if k != "id"}}
                          for c, r, pr in zip(cases, rows or [None] * len(cases), paper_rows)])
    table.to_parquet(out / "per_sample.parquet", index=False)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    # What the metrics were measured on: register refuses to compare a champion measured another way.
    (out / "evaluation.json").write_text(json.dumps({
        "benchmark": bench.name, "num_samples": len(cases), "plumbing_only": bool(judges.plumbing_only),
        "text_video_model": scorer.name if scorer is not None else "none",
        "dynamic_degree_flow": cfg.evaluate.flow,
        "identity_metric": next((k for k in IMAGE_EFFECT_METRICS if f"image_effect/{k}" in metrics), None)},
        indent=2))
    for i, (c, v) in enumerate(list(zip(cases, videos))[: cfg.evaluate.num_sample_videos]):
        write_video(out / "videos" / f"{c['sample_id']}.mp4", v, pipe.config.fps, pix_fmt="yuv420p", crf=18)
        write_gif(out / "gifs" / f"{c['sample_id']}.gif", v, pipe.config.fps)
        write_image(out / "identity" / f"{c['sample_id']}.png", idents[i])
        if no_image is not None:  # the reviewer sees what the image changed, sample by sample
            write_video(out / "videos_no_image" / f"{c['sample_id']}.mp4", no_image[i], pipe.config.fps,
                        pix_fmt="yuv420p", crf=18)
    contact_sheet(idents, videos, out / "contact_sheet.png", no_image=no_image, labels=_sheet_labels(cases, rows))
    if sweep:
        (out / "guidance_sweep.json").write_text(json.dumps(sweep, indent=2))

    with step_run(cfg, "evaluate", data_version, model=model_tags(pipe.config)) as run:
        mlflow.set_tags({"plumbing_only": str(judges.plumbing_only).lower(), "benchmark": bench.name,
                         "text_video_model": scorer.name if scorer is not None else "none",
                         "dynamic_degree_flow": cfg.evaluate.flow, "num_samples": str(len(cases)),
                         "checkpoint_training_stage": str(pipe.metadata.get("training_stage"))})
        if judges.plumbing_only:
            mlflow.set_tag("note", "paper-track metrics use tiny random judges: they prove the plumbing only")
        mlflow.log_metrics(metrics)
        mlflow.log_table(table.astype({"dynamic_degree": "float"} if "dynamic_degree" in table else {}),
                         "per_sample.json")
        mlflow.log_artifacts(str(out), artifact_path="evaluation")
        if sweep:
            for i in range(len(sweep["scales"])):  # step = position in the sweep; the scales are a param
                mlflow.log_metrics({f"sweep/{k}": v[i] for k, v in sweep["metrics"].items()}, step=i)
            mlflow.log_param("sweep.image_scales", ",".join(f"{s:g}" for s in sweep["scales"]))
            fig = sweep_figure(sweep["scales"], sweep["metrics"])
            mlflow.log_figure(fig, "evaluation/guidance_sweep.png")
        metrics_run = run.info.run_id
    log.info("evaluation: %s", json.dumps(metrics))
    return {"metrics": metrics, "run_id": metrics_run, "output": str(out)}
