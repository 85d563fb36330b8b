"""Metric throughput on CPU: videos per second for each METHOD_NOTES §3 metric, one video at a time.

    python benchmarks/metric_throughput.py [--videos 32] [--frames 16] [--size 64]
        [--dino-path DIR --clip-path DIR] [--text-video-path DIR] [--flow opencv|raft --raft-weights PATH]

Random uint8 videos (N x T x size x size x 3); each metric's per-video function runs once on one video to
warm up, then on all N, timed with perf_counter. Judges: the tiny random ones (image size 32) unless the
paths are given (DINO ViT-B/16 or S/16, CLIP ViT-B/32, X-CLIP as transformers folders). The last row is
`evaluate_videos` with every metric, which shares the CLIP frame features between T.Cons, CLIP-T and CLIP-I.
Dynamic degree's cost is the flow estimator's (OpenCV Farneback here; VBench's RAFT on CPU is far slower).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> list[tuple[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=32)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=64, help="frame height and width")
    ap.add_argument("--fps", type=float, default=8.0)
    ap.add_argument("--dino-path", default=None)
    ap.add_argument("--clip-path", default=None)
    ap.add_argument("--text-video-path", default=None, help="transformers XCLIPModel folder (default: CLIP mean-pool)")
    ap.add_argument("--flow", default="opencv", choices=["opencv", "raft"])
    ap.add_argument("--raft-weights", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")

    import numpy as np
    import torch

    from components.evaluate import metrics as M
    from components.evaluate.metric_suite import evaluate_videos
    from components.evaluate.text_video import build_text_video_scorer, text_video_score
    from components.optical_flow import build_flow_estimator
    from model.config import ScoringConfig
    from model.scoring import ScoringEncoders

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = ScoringConfig(dino_path=args.dino_path, clip_path=args.clip_path, text_video_path=args.text_video_path)
    enc = ScoringEncoders(cfg)
    scorer = build_text_video_scorer(cfg, encoders=enc)
    flow = build_flow_estimator(args.flow, args.raft_weights)
    rng = np.random.default_rng(args.seed)
    videos = (rng.random((args.videos, args.frames, args.size, args.size, 3)) * 255).astype(np.uint8)
    refs = (rng.random((args.videos, args.size, args.size, 3)) * 255).astype(np.uint8)
    prompt = "a dog running across a sunlit meadow"

    per_video = {
        "dynamic_degree": lambda i: M.dynamic_degree_video(videos[i], args.fps, flow),
        "subject_consistency": lambda i: M.subject_consistency(videos[i], enc),
        "background_consistency": lambda i: M.background_consistency(videos[i], enc),
        "temporal_consistency": lambda i: M.temporal_consistency(videos[i], enc),
        "clip_t": lambda i: M.clip_t(videos[i], prompt, enc),
        "clip_i": lambda i: M.clip_i(videos[i], refs[i], enc),
        "dino_i": lambda i: M.dino_i(videos[i], refs[i], enc),
        f"text_video ({scorer.name})": lambda i: text_video_score(videos[i], prompt, scorer),
    }
    judges = "tiny random (plumbing only)" if enc.plumbing_only else f"dino={args.dino_path} clip={args.clip_path}"
    print(f"{args.videos} random videos of {args.frames} frames at {args.size}x{args.size}; judges: {judges} "
          f"(DINO input {enc.dino_size}, CLIP input {enc.clip_size}); flow: {args.flow}; torch threads: "
          f"{torch.get_num_threads()}; cores available: {len(os.sched_getaffinity(0))}")
    results = []
    for name, fn in per_video.items():
        fn(0)  # warm-up
        t0 = time.perf_counter()
        for i in range(args.videos):
            fn(i)
        results.append((name, args.videos / (time.perf_counter() - t0)))
    samples = [{"frames": v, "fps": args.fps, "prompt": prompt, "references": r} for v, r in zip(videos, refs)]
    evaluate_videos(samples[:1], enc, estimator=flow, text_video_scorer=scorer)
    t0 = time.perf_counter()
    evaluate_videos(samples, enc, estimator=flow, text_video_scorer=scorer)
    results.append(("all 8 (evaluate_videos)", args.videos / (time.perf_counter() - t0)))

    width = max(len(n) for n, _ in results)
    print(f"\n| {'metric':<{width}} | videos/s | ms/video |\n|{'-' * (width + 2)}|---------:|---------:|")
    for name, rate in results:
        print(f"| {name:<{width}} | {rate:8.1f} | {1000 / rate:8.1f} |")
    return results


if __name__ == "__main__":
    main()
