"""Export step: ONNX graphs + NumPy sampler, a parity report against PyTorch, and registration of
`vidcustom-onnx` with the torch version's aliases when parity holds (parity gates the registration)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from components.config import RunConfig



PARITY_PHOTOS = ((640, 480), (480, 853), (1200, 300))  # landscape, portrait phone, panorama: (width, height)
PARITY_SEEDS = 3


def _cases(cfg: RunConfig, m) -> list[tuple[np.ndarray, str]]:
    """Two held-out sprites at the model's size and photo-like images of other sizes and aspects."""
    from components.export.parity import photo
    from components.sprites import generate, heldout_specs_for

    specs = heldout_specs_for(cfg, 2)
    sprites = [(generate(s, m.height, m.width, m.num_frames)[0], s.caption) for s in specs]
    return sprites + [(photo(w, h, w * h), specs[0].caption) for w, h in PARITY_PHOTOS]


def run(checkpoint_dir: str | Path, output_dir: str | Path, cfg: RunConfig, data_version: str | None = None,
        registration: dict | None = None) -> dict:
    import mlflow

    from components.export.onnx_export import export_pipeline
    from components.export.parity import parity_report
    from components.export.pyfunc import OnnxSugarPyfunc
    from components.export.sampler import OnnxSugarSampler
    from components.registry import (CHECKPOINT_TAG, CODE_PATHS, ONNX_REQUIREMENTS_DISTS, checkpoint_sha256,
                                     find_versions, metrics_from_tags, register_or_reuse, requirement_pins,
                                     set_aliases, version_tags)
    from components.serving import input_example, signature
    from components.tracking import logs_to_buffer, model_tags, step_run
    from components.tracking.tags import SERVER_NUMBERS_TAG
    from model.pipeline import SugarPipeline

    out = Path(output_dir)
    t0 = time.time()
    pipe = SugarPipeline.from_pretrained(checkpoint_dir)
    export_pipeline(pipe, out, cfg.export.opset)
    sampler = OnnxSugarSampler(out, tuple(cfg.export.providers))
    seeds = [cfg.evaluate.seed + k for k in range(PARITY_SEEDS)]
    report = parity_report(pipe, sampler, _cases(cfg, pipe.config), seeds,
                           steps=cfg.evaluate.num_inference_steps or pipe.config.sampler.num_inference_steps,
                           atol=cfg.export.atol)
    report["providers"] = sampler.providers
    (out / "parity_report.json").write_text(json.dumps(report, indent=2))
    result = {"parity": report, "registered": False, "output": str(out)}
    with step_run(cfg, "export", data_version, model=model_tags(pipe.config)):
        mlflow.log_dict(report, "parity_report.json")
        mlflow.log_metrics({"parity_max_abs_diff": report["max_abs_diff"], "parity_max_uint8_diff":
                            report["max_uint8_diff"], "export_wall_s": time.time() - t0})
        mlflow.set_tag("parity", "passed" if report["passed"] else "failed")
        if not report["passed"]:
            raise RuntimeError(f"ONNX parity failed: max |torch - onnx| = {report['max_abs_diff']:.3g} (limit "
                               f"{report['tolerance']:.3g}) decoded, {report['max_uint8_diff']}/255 (limit "
                               f"{report['uint8_tolerance']}/255) as served; not registering "
                               f"{cfg.export.model_name}. Report: {out / 'parity_report.json'}")
        name = cfg.export.model_name
        client = mlflow.MlflowClient()
        # The ONNX version is keyed by the checkpoint's content hash + the format and opset: exporting the
        # same checkpoint again reuses that version (tags and aliases re-applied) instead of duplicating it.
        key = {CHECKPOINT_TAG: checkpoint_sha256(checkpoint_dir), "format": "onnx",
               "onnx_opset": str(cfg.export.opset)}
        existing = find_versions(client, name, key)
        # The torch version's metrics and gate decision come with `registration` (register's output), not
        # from the registry: after an outage its number may be the server's while this step logs offline.
        carried = dict((registration or {}).get("version_tags") or {})
        tags = version_tags(pipe.metadata, pipe.config, data_version, metrics_from_tags(carried)) | key | {
            "parity_max_abs_diff": f"{report['max_abs_diff']:.3g}"}
        if registration:
            tags["source_model"] = f"{registration['model_name']}/{registration['version']}"
            tags |= {k: carried[k] for k in ("gate", "gate_reasons") if k in carried}
            if registration.get("numbering") == "server" and logs_to_buffer(cfg):
                tags[SERVER_NUMBERS_TAG] = "true"  # sync: `source_model` names a server version
        version, reused = register_or_reuse(client, name, existing, tags, lambda: mlflow.pyfunc.log_model(
            name="onnx_model", python_model=OnnxSugarPyfunc(), artifacts={"onnx": str(out)},
            code_paths=CODE_PATHS, signature=signature(pipe.config.sampler.num_inference_steps),
            input_example=input_example(pipe.config.height, pipe.config.width),
            pip_requirements=requirement_pins(*ONNX_REQUIREMENTS_DISTS)),
            key=tuple(key))
        mlflow.set_tags({"model_version": version, "reused": str(reused).lower(),
                         CHECKPOINT_TAG: key[CHECKPOINT_TAG]})
    champion = bool(registration and registration.get("champion"))
    set_aliases(client, name, version, champion)
    result.update(registered=True, model_name=name, version=version, reused=reused,
                  checkpoint_sha256=key[CHECKPOINT_TAG], aliases=sorted(client.get_model_version(name, version).aliases))
    return result
