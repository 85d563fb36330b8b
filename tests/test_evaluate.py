"""The evaluate step's MLflow record: metrics, per-sample table, MP4 + GIF samples, contact sheet, sweep plot."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image


def test_evaluation_logs_everything_a_reviewer_needs(run_config, tmp_path):
    import mlflow

    from components.evaluate.evaluate import run
    from model.config import model_config
    from model.pipeline import SugarPipeline

    cfg = run_config("evaluate.num_samples=3", "evaluate.baselines=false", "evaluate.num_sample_videos=2",
                     "evaluate.guidance_sweep=[1.0,3.0]")
    ckpt = tmp_path / "ckpt"
    SugarPipeline.from_config(model_config("tiny")).save_pretrained(ckpt)
    result = run(ckpt, tmp_path / "eval", cfg, data_version="0" * 32 + ".dir")

    client = mlflow.MlflowClient()
    r = client.get_run(result["run_id"])
    assert r.data.tags["data_version"] == "0" * 32 + ".dir" and r.data.tags["plumbing_only"] == "true"
    assert {"sprites_identity", "sprites_motion", "dynamic_degree"} <= set(r.data.metrics)
    files = {f.path for f in client.list_artifacts(r.info.run_id, "evaluation")}
    assert {"evaluation/contact_sheet.png", "evaluation/guidance_sweep.png", "evaluation/metrics.json"} <= files
    gifs = [f.path for f in client.list_artifacts(r.info.run_id, "evaluation/gifs")]
    mp4s = [f.path for f in client.list_artifacts(r.info.run_id, "evaluation/videos")]
    assert len(gifs) == len(mp4s) == 2
    gif = Image.open(tmp_path / "eval" / "gifs" / f"{gifs[0].rsplit('/', 1)[1]}")
    assert gif.n_frames == 8 and gif.size == (128, 128)  # 32 px upscaled 4x, every frame kept
    # the per-sample table, one row per held-out sample
    path = mlflow.artifacts.download_artifacts(run_id=r.info.run_id, artifact_path="per_sample.json",
                                               dst_path=str(tmp_path / "dl"))
    table = json.loads(Path(path).read_text())
    assert len(table["data"]) == 3 and "sprites_identity" in table["columns"]
    # the guidance sweep: one point per scale, logged as a metric history and a plot
    history = client.get_metric_history(r.info.run_id, "sweep/sprites_identity")
    assert [m.step for m in history] == [0, 1]
    sweep = json.loads((tmp_path / "eval" / "guidance_sweep.json").read_text())
    assert sweep["scales"] == [1.0, 3.0] and np.isfinite(sweep["metrics"]["sprites_motion"]).all()


def test_the_paired_image_effect_is_reported_with_its_interval_and_shown(run_config, tmp_path):
    from scipy import stats

    from components.evaluate.evaluate import run
    from model.config import model_config
    from model.pipeline import SugarPipeline

    cfg = run_config("evaluate.num_samples=6", "evaluate.num_sample_videos=2", "evaluate.paper_metrics=false")
    ckpt = tmp_path / "ckpt"
    SugarPipeline.from_config(model_config("tiny", conditioning={"image_residual": False})).save_pretrained(ckpt)
    m = run(ckpt, tmp_path / "eval", cfg)["metrics"]
    table = pd.read_parquet(tmp_path / "eval" / "per_sample.parquet")
    d = (table["sprites_identity"] - table["sprites_identity_no_image"]).to_numpy()
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    assert np.isclose(m["image_effect/sprites_identity"], d.mean())
    assert np.isclose(m["image_effect/sprites_identity_lo"], d.mean() - half)
    assert np.isclose(m["image_effect/sprites_identity_hi"], d.mean() + half)
    assert np.isclose(m["ablation_no_image/sprites_identity"], table["sprites_identity_no_image"].mean())
    for part in ("shape", "colour", "texture"):
        assert f"image_effect/sprites_identity_{part}" in m and f"sprites_identity_{part}" in m
    ev = tmp_path / "eval"
    assert json.loads((ev / "evaluation.json").read_text())["identity_metric"] == "sprites_identity"
    shown = sorted(p.stem for p in (ev / "videos").glob("*.mp4"))
    assert shown == sorted(p.stem for p in (ev / "videos_no_image").glob("*.mp4"))
    assert shown == sorted(p.stem for p in (ev / "identity").glob("*.png"))
    sheet = Image.open(ev / "contact_sheet.png")
    assert sheet.size[0] > 9 * 32 * 3  # identity + 4 frames with the image + 4 frames without, 3x


def test_an_image_benchmark_is_scored_with_the_paper_metrics(run_config, tmp_path):
    import mlflow

    from components.evaluate.benchmarks import load_benchmark
    from components.evaluate.evaluate import run
    from components.media import write_image
    from model.config import model_config
    from model.pipeline import SugarPipeline

    bench = load_benchmark("videomaker_object")
    images = tmp_path / "images"
    for i, subject in enumerate(bench.subjects):  # stand-ins for the paper's unreleased subject images
        img = np.full((48, 64, 3), 255, np.uint8)
        img[12:36, 16:48] = (40 * (i % 6), 200, 255 - 12 * i)
        write_image(images / subject.image, img)
    cfg = run_config("evaluate.benchmark=videomaker_object", f"evaluate.benchmark_images={images}",
                     "evaluate.num_samples=4", "evaluate.num_sample_videos=1")
    ckpt = tmp_path / "ckpt"
    SugarPipeline.from_config(model_config("tiny")).save_pretrained(ckpt)
    result = run(ckpt, tmp_path / "eval", cfg)
    m = result["metrics"]
    assert {"dino_i", "clip_i", "clip_t", "text_video", "dynamic_degree", "subject_consistency",
            "background_consistency", "temporal_consistency"} <= set(m)
    assert not any(k.startswith("sprites_") for k in m)  # no ground truth for real subjects
    # the image's paired effect is measured on DINO-I against the reference when there is no ground truth
    assert m["image_effect/dino_i_lo"] <= m["image_effect/dino_i"] <= m["image_effect/dino_i_hi"]
    assert "ablation_no_image/dino_i" in m
    assert json.loads((tmp_path / "eval" / "evaluation.json").read_text())["identity_metric"] == "dino_i"
    tags = mlflow.MlflowClient().get_run(result["run_id"]).data.tags
    assert tags["benchmark"] == "videomaker_object" and tags["text_video_model"]
    with pytest.raises(ValueError, match="benchmark_images"):
        run(ckpt, tmp_path / "eval2", run_config("evaluate.benchmark=videomaker_object"))


def test_subject_consistency_uses_vbench_dino_and_dino_i_the_dreambooth_one(tmp_path):
    """§3.6: VBench subject consistency is DINO ViT-B/16, DreamBooth's DINO-I ViT-S/16: two configurable
    models (tiny stand-ins of different widths here), each metric on its own."""
    from transformers import ViTConfig, ViTModel

    from components.evaluate import metrics as M
    from model.config import ScoringConfig
    from model.scoring import ScoringEncoders

    for name, width in (("s16", 48), ("b16", 96)):
        conf = ViTConfig(image_size=32, patch_size=8, hidden_size=width, num_hidden_layers=1, num_attention_heads=4,
                         intermediate_size=64)
        ViTModel(conf, add_pooling_layer=False).save_pretrained(tmp_path / name)
    judges = ScoringEncoders(ScoringConfig(dino_path=str(tmp_path / "s16"), subject_dino_path=str(tmp_path / "b16")))
    calls = []
    for attr in ("dino", "subject_dino"):
        original = getattr(judges, attr)
        setattr(judges, attr, lambda x, a=attr, f=original: calls.append((a, f(x).shape[-1])) or f(x))
    video = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    M.subject_consistency(video, judges)
    assert calls == [("subject_dino", 96)]
    calls.clear()
    M.dino_i(video, video[0], judges)
    assert {c for c in calls} == {("dino", 48)}
