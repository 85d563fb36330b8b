"""Timing of the validate step's table-level Great Expectations suite on a large synthetic manifest.

Builds an N-row manifest in memory (default 100,000; vectorised numpy/pandas, no media files) shaped like
the synthesize step's output: subjects of 8 samples, sample ids `sub000123-004`, shard paths, captions from
templates, scores in their filter ranges, hex md5s, a subject-disjoint ~10 % val split, all three
categories. Then runs `components.validate.suite.run_suite` (no media checks) with GX Data Docs built,
and prints the suite's and the Data Docs' wall time and the total against the 60 s target.

`--faults K` breaks K scattered rows per kind (score below the filter, static clip, bad md5, path escaping
the root, duplicated id, leaked subject) to time the failing path, where GX lists the failing rows.

    python benchmarks/validate_scale.py                  # 100,000 clean rows
    python benchmarks/validate_scale.py --rows 20000 --faults 50
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_S = 60.0
SAMPLES_PER_SUBJECT = 8
SHARD_SIZE = 32
NOUNS = {"animal": ("cat", "dog", "bird", "fish", "rabbit"),
         "active_object": ("ball", "car", "kite", "robot", "boat"),
         "static_object": ("vase", "lamp", "chair", "mug", "book")}
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "pink")
VERBS = ("walks", "runs", "jumps", "spins", "slides", "floats", "zooms")
DIRECTIONS = ("left", "right", "up", "down", "in a circle")
BACKGROUNDS = ("black", "grey", "white", "blue", "green")


def _pick(rng: np.random.Generator, options, n: int) -> np.ndarray:
    return np.asarray(options, dtype=object)[rng.integers(0, len(options), n)]


def _md5s(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random 32-digit lower-case hex strings, without a Python loop."""
    raw = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    digits = np.stack([raw >> 4, raw & 15], axis=-1).reshape(n, 32)
    chars = np.frombuffer(b"0123456789abcdef", np.uint8)[digits]
    return np.ascontiguousarray(chars).view("S32").ravel().astype(str)


def synthetic_manifest(n: int, cfg, seed: int = 0, val_fraction: float = 0.1):
    """An n-row manifest that passes the suite under `cfg` (a RunConfig): the synthesize step's shape."""
    import pandas as pd

    from components.dataset import CATEGORIES, MANIFEST_COLUMNS

    rng = np.random.default_rng(seed)
    m, s = cfg.model, cfg.synthesize
    idx = np.arange(n)
    subject = idx // SAMPLES_PER_SUBJECT
    n_subjects = int(subject[-1]) + 1 if n else 0
    width = max(4, len(str(max(n_subjects - 1, 0))))
    subject_ids = pd.Series(np.char.add("sub", np.char.zfill(subject.astype(str), width)))
    sample_ids = subject_ids + "-" + pd.Series(np.char.zfill((idx % SAMPLES_PER_SUBJECT).astype(str), 3))
    # Categories and splits are per subject, as the synthesize step draws them.
    subject_category = np.asarray(CATEGORIES, dtype=object)[rng.choice(len(CATEGORIES), n_subjects,
                                                                       p=[0.4, 0.35, 0.25])]
    subject_val = rng.random(n_subjects) < val_fraction
    if n_subjects >= 2:  # both splits present
        subject_val[0], subject_val[-1] = False, True
    category = subject_category[subject]
    nouns = np.empty(n, dtype=object)
    for c, options in NOUNS.items():
        where = category == c
        nouns[where] = _pick(rng, options, int(where.sum()))
    caption = (pd.Series(_pick(rng, ("a", "the"), n)) + " " + _pick(rng, COLOURS, n) + " " + nouns + " "
               + _pick(rng, VERBS, n) + " " + _pick(rng, DIRECTIONS, n) + " on a " + _pick(rng, BACKGROUNDS, n)
               + " background")
    shard = pd.Series(np.char.zfill((idx // SHARD_SIZE).astype(str), 4))
    prefix = "shards/" + shard + "/"

    def above(threshold: float, low: float, high: float) -> np.ndarray:
        return rng.uniform(max(low, threshold), max(high, threshold + 1e-3), n)

    df = pd.DataFrame({
        "sample_id": sample_ids,
        "source": np.where(rng.random(n) < s.synthetic_fraction, "synthetic", "real"),
        "subject_id": subject_ids,
        "category": category,
        "identity_image": prefix + "identity/" + sample_ids + ".png",
        "video": prefix + "videos/" + sample_ids + ".mp4",
        "caption": caption,
        "num_frames": m.num_frames, "fps": m.fps, "height": m.height, "width": m.width,
        "clip_text_score": above(s.min_clip_text_score, 0.2, 0.35),
        "dino_identity_score": above(s.min_dino_identity_score, 0.4, 0.95),
        "frame_consistency": above(s.min_frame_consistency, 0.85, 0.99),
        "flow_score": above(s.min_flow_score, 0.5, 6.0),
        "static_video": False,
        "split": np.where(subject_val[subject], "val", "train"),
        "identity_md5": _md5s(rng, n),
        "video_md5": _md5s(rng, n),
    })
    return df[list(MANIFEST_COLUMNS)].astype(MANIFEST_COLUMNS)


def inject_faults(df, k: int, seed: int = 1) -> dict[str, int]:
    """Break k scattered rows per kind, in place; returns {kind: rows broken}."""
    if k <= 0:
        return {}
    rng = np.random.default_rng(seed)
    n = len(df)

    def rows() -> np.ndarray:
        return np.sort(rng.choice(n, min(k, n), replace=False))

    df.loc[df.index[rows()], "frame_consistency"] = 1.5  # out of [-1, 1]
    df.loc[df.index[rows()], "static_video"] = True
    df.loc[df.index[rows()], "video_md5"] = "not-an-md5"
    df.loc[df.index[rows()], "identity_image"] = "../outside.png"
    dup = rows()
    df.loc[df.index[dup], "sample_id"] = df["sample_id"].iloc[(dup + 1) % n].to_numpy()
    # Leak: k val rows moved to train, so their subjects are in both splits.
    val_rows = np.flatnonzero(df["split"].to_numpy() == "val")
    leak = rng.choice(val_rows, min(k, len(val_rows)), replace=False)
    df.loc[df.index[leak], "split"] = "train"
    return {"frame_consistency": min(k, n), "static_video": min(k, n), "video_md5": min(k, n),
            "identity_image": min(k, n), "sample_id": len(dup), "leak": len(leak)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="manifest rows (default 100000)")
    parser.add_argument("--faults", type=int, default=0, help="rows broken per fault kind (default 0: clean)")
    parser.add_argument("--preset", default="tiny", help="run preset for the config (default tiny)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. synthesize.min_clip_text_score=0.2 (repeatable)")
    parser.add_argument("--docs", type=Path, default=None, help="Data Docs folder (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be >= 1")

    import logging

    from components.config import load_config
    from components.validate.suite import render_validation_page, run_suite

    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(preset=args.preset, overrides=args.set)
    start = time.perf_counter()
    df = synthetic_manifest(args.rows, cfg, seed=args.seed)
    faults = inject_faults(df, args.faults, seed=args.seed + 1)
    build_s = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        docs = args.docs or Path(tmp) / "data_docs"
        start = time.perf_counter()
        suite_run = run_suite(df, cfg, docs_dir=docs)
        total_s = time.perf_counter() - start
        start = time.perf_counter()
        page = render_validation_page(suite_run)
        page_s = time.perf_counter() - start
        docs_bytes = sum(p.stat().st_size for p in Path(docs).rglob("*") if p.is_file())

    suite_s, docs_s = suite_run.timings["suite"], suite_run.timings["data_docs"]
    failed = suite_run.failed
    out = {"rows": len(df), "expectations": len(suite_run.outcomes), "failed": len(failed),
           "build_manifest_s": build_s, "suite_s": suite_s, "data_docs_s": docs_s, "run_suite_s": total_s,
           "report_page_s": page_s, "target_s": TARGET_S, "ratio": total_s / TARGET_S}
    print(f"rows:                    {len(df):,}" + (f" ({args.faults} faulty rows per kind: "
                                                       f"{', '.join(faults)})" if faults else ""))
    print(f"expectations:            {len(suite_run.outcomes)} ({len(failed)} failed)")
    print(f"manifest built in:       {build_s:.2f} s")
    print(f"suite (GX validation):   {suite_s:.2f} s")
    print(f"Data Docs:               {docs_s:.2f} s ({docs_bytes / 1e6:.1f} MB)")
    print(f"run_suite total:         {total_s:.2f} s = {out['ratio']:.2f} x the {TARGET_S:.0f} s target "
          f"({'met' if total_s < TARGET_S else 'MISSED'})")
    print(f"report page (GX render): {page_s:.2f} s ({len(page) / 1e6:.1f} MB)")
    for o in failed:
        rows = "" if o.failed_rows is None else f" on {o.failed_rows} rows"
        print(f"  FAILED {o.description}{rows}: {', '.join(o.sample_ids[:3]) or o.observed}")
    return out


if __name__ == "__main__":
    main()
