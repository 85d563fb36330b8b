"""Sprites synthesis throughput: samples per second for 1 and 2 workers (render, encode, score, filter).

    python benchmarks/synthesis_throughput.py [--subjects 64] [--per-subject 8] [--workers 1 2]

After a small warm-up run (first imports and calls cost seconds and would favour whichever setting
runs second), each setting synthesizes the same dataset from scratch into a temporary folder (the
tiny preset's 32 x 32 x 8-frame clips, the demo's scoring encoders), then re-runs it to time a
resume that has nothing left to do. Prints wall time, samples/s and the speed-up over the first worker count.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", type=int, default=64)
    ap.add_argument("--per-subject", type=int, default=8)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--shard-size", type=int, default=32)
    args = ap.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")

    from components.config import load_config
    from components.synthesize.synthesize import run

    n = args.subjects * args.per_subject
    base = None
    with tempfile.TemporaryDirectory() as d:  # warm-up: first imports and first calls cost seconds
        run(Path(d) / "warm", load_config(overrides=["synthesize.num_subjects=2", "synthesize.samples_per_subject=4",
                                                     "synthesize.workers=2", "synthesize.val_fraction=0"]))
    print(f"{n} samples ({args.subjects} subjects x {args.per_subject}), cores available: {len(os.sched_getaffinity(0))}")
    for workers in args.workers:
        cfg = load_config(overrides=[f"synthesize.num_subjects={args.subjects}",
                                     f"synthesize.samples_per_subject={args.per_subject}",
                                     f"synthesize.workers={workers}", f"synthesize.shard_size={args.shard_size}"])
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            summary = run(Path(d) / "ds", cfg)
            wall = time.perf_counter() - t0
            t1 = time.perf_counter()
            again = run(Path(d) / "ds", cfg)
            resume = time.perf_counter() - t1
        rate = n / wall
        base = base or rate
        print(f"workers={workers}: {wall:.1f} s, {rate:.1f} samples/s ({rate / base:.2f}x), kept "
              f"{summary['samples_kept']}/{n}; resume with nothing to do: {resume:.1f} s "
              f"({again['shards_skipped']} shards skipped)")


if __name__ == "__main__":
    main()
