"""`vidcustom pretrain`: train the text-to-video base that SUGAR starts from, and publish it as a bundled base.

SUGAR starts from a pretrained CogVideoX; `tiny` starts from `model/bundled/tiny-t2v`, a tiny CogVideoX
transformer pretrained by this command through the project's own steps (synthesize -> validate -> train)
on a sprites dataset of its own. The recipe (`model/bundled/<name>/recipe.yaml`, a params file) makes the
run text-to-video: attention design (a), so no video token sees the image tokens, and both image
conditions dropped on every sample (`model.conditioning.drop_dino/drop_clip = 1`). Only the transformer
is published (diffusers folder, safetensors, fp32); SUGAR's projections and nulls start fresh, as they do
on a pretrained CogVideoX. `provenance.json` records the recipe, the data version, the training figures
and the weights' sha256, which the `tiny` preset pins (`model.transformer_sha256`), plus the model settings
a run must share with the base (noise schedule, noise, text length), which the preset applies.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from components.config import load_config


def pretrain(recipe: str | Path, out_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Run the recipe and publish `<out_dir>/transformer/`; returns the provenance record."""
    from components.synthesize.synthesize import run as synthesize
    from components.train.train import run as train
    from components.validate.validate import run as validate
    from model.pipeline import SugarPipeline
    from model.transformer import WEIGHTS_FILE, file_sha256

    cfg = load_config(recipe, list(overrides))
    c = cfg.model.conditioning
    if cfg.model.attention_design != "a" or c.drop_dino < 1 or c.drop_clip < 1:
        raise ValueError(f"{recipe}: a text-to-video base needs model.attention_design=a and "
                         "model.conditioning.drop_dino=drop_clip=1 (the image must never reach the video)")
    work = cfg.state / "pretrain"
    t0 = time.time()
    data = synthesize(work / "dataset", cfg)
    checked = validate(work / "dataset", work / "validation", cfg)
    if not checked.success:
        raise RuntimeError(f"the pretraining dataset failed validation: see {checked.report_md}")
    summary = train(work / "dataset", work / "checkpoint", cfg, checked.dvc_hash)
    pipe = SugarPipeline.from_pretrained(work / "checkpoint")
    out = Path(out_dir)
    target = out / "transformer"
    if target.exists():
        shutil.rmtree(target)
    base = pipe.denoiser.to_cogvideox()  # the stock CogVideoX transformer, without SUGAR's conditioner
    base.save_pretrained(target, safe_serialization=True)
    record = {
        "what": "tiny CogVideoX transformer pretrained text-to-video on sprites (the base `tiny` starts from)",
        "command": f"vidcustom pretrain --params {recipe} --output {out_dir}",
        "recipe": Path(recipe).name, "data_version": checked.dvc_hash, "samples": data["samples_kept"],
        "steps": summary["steps"], "first_loss": summary["first_loss"], "final_loss": summary["final_loss"],
        "train_wall_s": summary["wall_s"], "total_wall_s": round(time.time() - t0, 1),
        "parameters": sum(p.numel() for p in base.parameters()),
        "mlflow_train_run": summary["run_id"], "weights": f"transformer/{WEIGHTS_FILE}",
        "sha256": file_sha256(target / WEIGHTS_FILE), "bytes": (target / WEIGHTS_FILE).stat().st_size,
        # What a run starting from this base must share with it (its time conditioning, noise and text
        # length): the preset applies these, so a base is never fine-tuned on a schedule it was not trained on.
        "model_settings": {"scheduler": cfg.model.scheduler.model_dump(mode="json"),
                           "noise": cfg.model.noise.model_dump(mode="json"),
                           "text_encoder": {"max_length": cfg.model.text_encoder.max_length}}}
    (out / "provenance.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
