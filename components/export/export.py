"""Export step: ONNX graphs + NumPy sampler, a parity report against PyTorch, the acceleration gate, and
registration of `vidcustom-onnx` with the torch version's aliases when parity holds (parity gates the
registration; the acceleration gate decides what the served sampler may use, components/export/accelerate.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from components.config import RunConfig



PARITY_PHOTOS = ((640, 480), (480, 853), (1200, 300))  # landscape, portrait phone, panorama: (width, height)
PARITY_SEEDS = 3


def _cases(cfg: RunConfig, m) -> tuple[list[tuple[np.ndarray, str, object]], list[tuple[np.ndarray, str]]]:
    """Two held-out sprites at the model's size, with their specs (the acceleration gate scores identity on
    them), and photo-like images of other sizes and aspects."""
    from components.export.parity import photo
    from components.sprites import generate, heldout_specs_for

    specs = heldout_specs_for(cfg, 2)
    sprites = [(generate(s, m.height, m.width, m.num_frames)[0], s.caption, s) for s in specs]
    return sprites, [(photo(w, h, w * h), specs[0].caption) for w, h in PARITY_PHOTOS]


def _runtime_key(runtime: dict) -> str:
    """A short hash of what the served sampler runs with (sampler.json "runtime"): part of the version key."""
    import hashlib

    return hashlib.sha256(json.dumps(runtime, sort_keys=True).encode()).hexdigest()[:16]


def _log_gate(gate: dict) -> None:
    import mlflow

    mlflow.log_dict(gate, "acceleration_gate.json")
    mlflow.log_params({"accelerations.requested": ",".join(d["acceleration"] for d in gate["decisions"]) or "none",
                       "accelerations.atol": gate["tolerance"]["max_abs_diff"],
                       "accelerations.identity_drop": gate["tolerance"]["identity_drop"]})
    mlflow.log_metrics({"accel_reference_identity": gate["reference"]["identity"]} | {
        f"accel/{d['acceleration']}/{k}": float(v) for d in gate["decisions"]
        for k, v in (("accepted", d["accepted"]), ("max_abs_diff", d["max_abs_diff"]),
                     ("identity_delta", d["identity_delta"]), ("seconds_per_video", d["seconds_per_video"]))})
    mlflow.set_tags({"accelerations": ",".join(gate["accepted"]) or "none",
                     "accelerations_refused": ",".join(gate["refused"]) or "none"})


def run(checkpoint_dir: str | Path, output_dir: str | Path, cfg: RunConfig, data_version: str | None = None,
        registration: dict | None = None) -> dict:
    import mlflow

    from components.export.accelerate import gate_accelerations
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
    e = cfg.export
    runtime = {"fewer_steps_fraction": e.fewer_steps_fraction, "cache_interval": e.cache_interval,
               "intra_op_threads": e.intra_op_threads, "allow_spinning": e.allow_spinning,
               "graph_optimization": e.graph_optimization}
    # Parity holds the graphs to PyTorch with no acceleration (three branches, fp32, every step): the reference
    # that the acceleration gate then holds each acceleration to.
    reference = OnnxSugarSampler(out, tuple(e.providers), accelerations=(), **runtime)
    seeds = [cfg.evaluate.seed + k for k in range(PARITY_SEEDS)]
    steps = cfg.evaluate.num_inference_steps or pipe.config.sampler.num_inference_steps
    sprites, photos = _cases(cfg, pipe.config)
    report = parity_report(pipe, reference, [(i, p) for i, p, _ in sprites] + photos, seeds, steps=steps,
                           atol=e.atol)
    report["providers"] = reference.providers
    (out / "parity_report.json").write_text(json.dumps(report, indent=2))
    gate = gate_accelerations(out, sprites, seeds, steps, list(e.accelerations), e.accel_atol, e.accel_identity_drop,
                              runtime, tuple(e.providers)) if report["passed"] else None
    result = {"parity": report, "accelerations": gate, "registered": False, "output": str(out)}
    with step_run(cfg, "export", data_version, model=model_tags(pipe.config)):
        mlflow.log_dict(report, "parity_report.json")
        if gate is not None:
            _log_gate(gate)
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
        # The sampler's runtime (the accepted accelerations, threads) is part of it: what is served changes with it.
        key = {CHECKPOINT_TAG: checkpoint_sha256(checkpoint_dir), "format": "onnx",
               "onnx_opset": str(cfg.export.opset), "sampler_runtime": _runtime_key({
                   "accelerations": gate["accepted"], **runtime})}
        existing = find_versions(client, name, key)
        # The torch version's metrics and gate decision come with `registration` (register's output), not
        # from the registry: after an outage its number may be the server's while this step logs offline.
        carried = dict((registration or {}).get("version_tags") or {})
        tags = version_tags(pipe.metadata, pipe.config, data_version, metrics_from_tags(carried)) | key | {
            "parity_max_abs_diff": f"{report['max_abs_diff']:.3g}",
            "accelerations": ",".join(gate["accepted"]) or "none"}
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
