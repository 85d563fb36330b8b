"""The acceleration gate: each acceleration the config asks for is tried on top of those already accepted,
against the reference sampler (three branches, fp32, every step) on held-out sprite cases, and accepted only
when the videos stay within `accel_atol` of the reference (max |Δ|, pixels in [-1, 1]) and the sprites identity
score (components/sprites/scoring.py, as evaluation scores it) falls by at most `accel_identity_drop`. The
decision goes into sampler.json ("runtime": what the served sampler uses; "acceleration_gate": why), so a
refused acceleration is never served. Imports no torch (the int8 graph comes from onnxruntime's quantiser).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from components.export.sampler import INT8_DENOISER, OnnxSugarSampler, to_uint8


def quantize_denoiser(path: str | Path) -> Path:
    """denoiser.onnx -> denoiser_int8.onnx: dynamic int8 quantisation of the MatMul/Gemm weights (activations
    quantised per call; attention softmax, norms and convolutions stay fp32)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = Path(path)
    target = path / INT8_DENOISER
    # A protobuf holds 2 GB at most: the CogVideoX-size graphs keep their weights beside them
    big = sum(f.stat().st_size for f in path.iterdir() if f.is_file()) > 1.5e9
    quantize_dynamic(str(path / "denoiser.onnx"), str(target), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul", "Gemm"], use_external_data_format=big)
    return target


def _sample(sampler: OnnxSugarSampler, cases, seeds: list[int], steps: int) -> tuple[list[np.ndarray], float]:
    """Float videos for every (case, seed), one row per call as the server sends a lone request; seconds a video."""
    t0, videos = time.perf_counter(), []
    for image, prompt, _ in cases:
        for seed in seeds:
            videos.append(sampler(image, prompt, seed=seed, num_inference_steps=steps, output_type="float"))
    return videos, (time.perf_counter() - t0) / len(videos)


def _identity(videos: list[np.ndarray], cases, seeds: list[int]) -> float:
    from components.sprites import sprites_scores

    specs = [spec for _, _, spec in cases for _ in seeds]
    scores = [sprites_scores(to_uint8(v), spec)["identity"] for v, spec in zip(videos, specs)]
    return float(np.nanmean(scores)) if np.isfinite(scores).any() else float("nan")


def gate_accelerations(out: str | Path, cases: list[tuple[np.ndarray, str, object]], seeds: list[int], steps: int,
                       candidates: list[str], atol: float, identity_drop: float, runtime: dict,
                       providers: tuple[str, ...]) -> dict:
    """cases: (identity image, prompt, sprites SampleSpec). Tries `candidates` in order, each on top of the ones
    accepted before it (so what is served was measured as a whole), writes the decision into sampler.json and
    returns the report."""
    out = Path(out)
    reference = OnnxSugarSampler(out, providers, accelerations=(), **runtime)
    ref_videos, ref_seconds = _sample(reference, cases, seeds, steps)
    ref_identity = _identity(ref_videos, cases, seeds)
    accepted: list[str] = []
    decisions = []
    for flag in candidates:
        if flag == "int8" and not (out / INT8_DENOISER).is_file():
            quantize_denoiser(out)
        trial = OnnxSugarSampler(out, providers, accelerations=[*accepted, flag], **runtime)
        videos, seconds = _sample(trial, cases, seeds, steps)
        diff = max(float(np.abs(v - r).max()) for v, r in zip(videos, ref_videos))
        identity = _identity(videos, cases, seeds)
        delta = identity - ref_identity
        reasons = []
        if not diff <= atol:
            reasons.append(f"max |Δ| {diff:.3g} > {atol:.3g}")
        if not delta >= -identity_drop:  # NaN (no score) refuses too
            reasons.append(f"identity {identity:.4f} vs reference {ref_identity:.4f} (Δ {delta:+.4f}, allowed "
                           f"-{identity_drop:g})")
        decisions.append({"acceleration": flag, "on_top_of": list(accepted), "accepted": not reasons,
                          "max_abs_diff": diff, "identity": identity, "identity_delta": delta,
                          "seconds_per_video": seconds, "reasons": reasons})
        if not reasons:
            accepted.append(flag)
    if "int8" not in accepted:  # not served: not shipped
        for f in (INT8_DENOISER, f"{INT8_DENOISER}.data"):
            (out / f).unlink(missing_ok=True)
    report = {"accepted": accepted, "refused": [d["acceleration"] for d in decisions if not d["accepted"]],
              "tolerance": {"max_abs_diff": atol, "identity_drop": identity_drop},
              "reference": {"identity": ref_identity, "seconds_per_video": ref_seconds},
              "cases": len(cases), "seeds": list(seeds), "steps": steps, "decisions": decisions,
              "note": "seconds are single-row wall times taken during the export on whatever else the machine "
                      "ran; benchmarks/sampler_speed.py measures speed"}
    config_file = out / "sampler.json"
    config = json.loads(config_file.read_text())
    config["runtime"] = {"accelerations": accepted, **runtime}
    config["acceleration_gate"] = report
    config_file.write_text(json.dumps(config, indent=2))
    return report
