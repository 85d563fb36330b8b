"""The evaluate step's MLflow record: metrics, per-sample table, MP4 + GIF samples, contact sheet, sweep plot."""

import json
from pathlib import Path

import numpy as np
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
