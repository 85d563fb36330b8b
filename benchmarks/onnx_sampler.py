"""ONNX sampler vs PyTorch pipeline: wall time per video and the ratio, on this machine.

    python benchmarks/onnx_sampler.py [CHECKPOINT_DIR] [--steps 20] [--repeats 3]

Without a checkpoint it builds a random tiny pipeline (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch

    from components.export.onnx_export import export_pipeline
    from components.export.sampler import OnnxSugarSampler
    from model.config import model_config
    from model.pipeline import SugarPipeline

    pipe = SugarPipeline.from_pretrained(args.checkpoint) if args.checkpoint else SugarPipeline.from_config(
        model_config("tiny"))
    img = np.full((pipe.config.height, pipe.config.width, 3), 255, np.uint8)
    prompt = "a red cat walks to the left on a black background"
    with tempfile.TemporaryDirectory() as d:
        export_pipeline(pipe, d)
        sampler = OnnxSugarSampler(d)
        t_torch = _time(lambda: pipe(img, prompt, num_inference_steps=args.steps), args.repeats)
        t_onnx = _time(lambda: sampler(img, prompt, num_inference_steps=args.steps), args.repeats)
    print(f"torch threads: {torch.get_num_threads()}, steps: {args.steps}, providers: {sampler.providers}")
    print(f"pytorch pipeline: {t_torch:.3f} s/video")
    print(f"onnx sampler:     {t_onnx:.3f} s/video")
    print(f"speed-up (torch / onnx): {t_torch / t_onnx:.2f}x")


if __name__ == "__main__":
    main()
