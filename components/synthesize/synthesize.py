"""The synthesize step: generate the (identity image, video, caption) dataset, score and filter it.

Output directory (the Dataset contract, DESIGN.md):

    manifest.parquet        kept samples, MANIFEST_COLUMNS, paths relative to this directory
    ground_truth.jsonl      one sprite spec per manifest row, same order (`read_ground_truth`)
    summary.json            counts, per-filter kept/dropped, wall time
    shards/NNNN/            identity/<sample_id>.png, videos/<sample_id>.mp4, records.jsonl, done.json

Work is split into shards of `shard_size` samples run by a pool of `workers` processes. A shard is
done when its done.json (written last) carries this config's fingerprint; a re-run skips done
shards and regenerates the rest. Scores of every sample, kept or not, stay in records.jsonl, so
changing only a threshold re-filters without regenerating; media of dropped samples stay in their
shard for the same reason (the manifest, not the folder listing, is the dataset).

Every sample is a function of (seed, subject index, sample index), never of the shard or worker
that made it, and torch runs single-threaded while scoring, so the same config gives a
byte-identical manifest whatever `workers` is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import shutil
import time
from pathlib import Path

import numpy as np

from components.dataset import MANIFEST_COLUMNS, write_manifest

from . import sprites

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1  # bump when rendering or scoring changes, so old shards are not reused
GROUND_TRUTH = "ground_truth.jsonl"
SUMMARY = "summary.json"
SHARDS = "shards"
DONE = "done.json"
RECORDS = "records.jsonl"
SCORE_DECIMALS = 6  # scores are rounded so the manifest does not carry float noise


def plan(cfg) -> list[tuple[sprites.SampleSpec, str]]:
    """Every sample of the run in order, with its split: [(spec, "train" | "val")], by subject."""
    s = cfg.synthesize
    subjects = sprites.training_subjects(s.seed, s.num_subjects, s.subject_size)
    total = s.num_subjects * s.samples_per_subject
    # Exactly round(total * fraction) synthetic samples, spread over subjects by a seeded permutation.
    synthetic = set(sprites.seeded_rng([s.seed, 10]).permutation(total)[:round(total * s.synthetic_fraction)])
    n_val = round(s.num_subjects * s.val_fraction)
    if s.val_fraction > 0:
        n_val = min(max(n_val, 1), s.num_subjects - 1)  # a requested val split is never empty, train never is
    val = set(sprites.seeded_rng([s.seed, 11]).permutation(s.num_subjects)[:n_val].tolist())
    out = []
    for i, subject in enumerate(subjects):
        for j in range(s.samples_per_subject):
            spec = sprites.sample_spec(s.seed, subject, i, j, (i * s.samples_per_subject + j) in synthetic,
                                      s.caption_colour)
            out.append((spec, "val" if i in val else "train"))
    return out


def fingerprint(cfg) -> str:
    """Hash of everything that changes a shard's content (not workers, not thresholds)."""
    s = cfg.synthesize
    m = cfg.model
    payload = {
        "version": GENERATOR_VERSION,
        "synthesize": s.model_dump(exclude={"workers"} | {f for f in type(s).model_fields if f.startswith("min_")}),
        "video": [m.height, m.width, m.num_frames, m.fps],
        "scoring": cfg.scoring.model_dump(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------- one shard
_WORKER: dict = {}  # per process: the scoring encoders (inherited on fork, built on spawn)


def _init_worker(scoring_json: str) -> None:
    import torch

    torch.set_num_threads(1)  # one process per core; also fork-safe for torch's thread pool
    if "encoders" not in _WORKER:
        _WORKER["encoders"] = _build_encoders(scoring_json)


def _build_encoders(scoring_json: str):
    from model.config import ScoringConfig
    from model.scoring import ScoringEncoders

    return ScoringEncoders(ScoringConfig.model_validate_json(scoring_json))


def _make_shard(job: dict) -> tuple[int, int]:
    """Render, write, score one shard; done.json last. Returns (shard index, samples)."""
    import torch

    from components.media import write_image, write_video

    from .filters import score_samples

    root, index = Path(job["root"]), job["index"]
    h, w, t, fps = job["video"]
    shard_dir = root / SHARDS / f"{index:04d}"
    if shard_dir.exists():
        shutil.rmtree(shard_dir)  # a half-written shard from an interrupted run
    rows, identities, videos = [], [], []
    for spec, split in job["samples"]:
        identity, frames = sprites.generate(spec, h, w, t)
        image_rel = f"{SHARDS}/{index:04d}/identity/{spec.sample_id}.png"
        video_rel = f"{SHARDS}/{index:04d}/videos/{spec.sample_id}.mp4"
        write_image(root / image_rel, identity)
        write_video(root / video_rel, frames, fps)
        identities.append(identity)
        videos.append(frames)  # scored as rendered; yuv444p at crf 12 is near-lossless at this size
        rows.append({"sample_id": spec.sample_id, "source": spec.source, "subject_id": spec.subject.subject_id,
                     "category": spec.subject.category, "identity_image": image_rel, "video": video_rel,
                     "caption": spec.caption, "num_frames": t, "fps": fps, "height": h, "width": w,
                     "split": split, "spec": sprites.spec_to_dict(spec)})
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # thread count changes float summation order; fix it for determinism
    try:
        scores = score_samples(_WORKER["encoders"], identities, videos, [r["caption"] for r in rows],
                               seed=(job["seed"] * 100_003 + index) % 2**32)
    finally:
        torch.set_num_threads(previous)
    for k, row in enumerate(rows):
        row.update({col: round(float(v[k]), SCORE_DECIMALS) for col, v in scores.items()})
    (shard_dir / RECORDS).write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    (shard_dir / DONE).write_text(json.dumps({"fingerprint": job["fingerprint"], "samples": len(rows)}))
    return index, len(rows)


def _is_done(shard_dir: Path, fp: str, expected: int) -> bool:
    try:
        done = json.loads((shard_dir / DONE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return done.get("fingerprint") == fp and done.get("samples") == expected and (shard_dir / RECORDS).is_file()


# ------------------------------------------------------------------------------------------- run
def run(output_dir: str | Path, cfg) -> dict:
    """Synthesize the dataset of `cfg.synthesize` into `output_dir`; returns the summary dict.

    Resumable (done shards are skipped) and deterministic by `cfg.synthesize.seed`.
    """
    from tqdm import tqdm

    from .filters import FILTERS, apply_filters

    start = time.perf_counter()
    s, m = cfg.synthesize, cfg.model
    if s.backend != "sprites":
        raise ValueError(f"synthesize.backend={s.backend!r} is not available; this build has 'sprites'")
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(cfg)
    samples = plan(cfg)
    shards = [samples[i:i + s.shard_size] for i in range(0, len(samples), s.shard_size)]
    _remove_stale_shards(root, len(shards))
    pending = [i for i, shard in enumerate(shards) if not _is_done(root / SHARDS / f"{i:04d}", fp, len(shard))]
    log.info("synthesize: %d samples in %d shards, %d to generate (fingerprint %s)", len(samples), len(shards),
             len(pending), fp)

    if pending:
        jobs = [{"root": str(root), "index": i, "samples": shards[i], "fingerprint": fp, "seed": s.seed,
                 "video": (m.height, m.width, m.num_frames, m.fps)} for i in pending]
        scoring_json = cfg.scoring.model_dump_json()
        # Built once here: forked workers inherit the loaded encoders instead of re-importing them.
        _WORKER["encoders"] = _build_encoders(scoring_json)
        workers = min(s.workers, len(jobs))
        with tqdm(total=sum(len(shards[i]) for i in pending), desc="synthesize", unit="sample") as bar:
            if workers == 1:
                for job in jobs:
                    bar.update(_make_shard(job)[1])
            else:
                method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
                ctx = multiprocessing.get_context(method)
                with ctx.Pool(workers, initializer=_init_worker, initargs=(scoring_json,)) as pool:
                    for _, n in pool.imap_unordered(_make_shard, jobs):
                        bar.update(n)

    records = []
    for i in range(len(shards)):
        text = (root / SHARDS / f"{i:04d}" / RECORDS).read_text()
        records.extend(json.loads(line) for line in text.splitlines() if line)
    scores = {col: np.array([r[col] for r in records], np.float64) for col in FILTERS}
    kept, report = apply_filters(scores, s)
    kept_records = sorted((r for r, k in zip(records, kept) if k), key=lambda r: r["sample_id"])
    _write_outputs(root, kept_records)

    summary = {
        "backend": s.backend, "seed": s.seed, "fingerprint": fp,
        "samples_total": len(records), "samples_kept": len(kept_records),
        "samples_dropped": len(records) - len(kept_records),
        "subjects": len({r["subject_id"] for r in kept_records}),
        "real": sum(r["source"] == "real" for r in kept_records),
        "synthetic": sum(r["source"] == "synthetic" for r in kept_records),
        "train": sum(r["split"] == "train" for r in kept_records),
        "val": sum(r["split"] == "val" for r in kept_records),
        "shards_total": len(shards), "shards_generated": len(pending),
        "shards_skipped": len(shards) - len(pending),
        "filters": report,
        "wall_time_s": round(time.perf_counter() - start, 3),
    }
    # The file is part of the versioned dataset: keep only what describes the content, so a re-run or a
    # resume of the same config leaves the DVC hash unchanged. Timing and resume counts are returned.
    run_only = ("wall_time_s", "shards_generated", "shards_skipped")
    (root / SUMMARY).write_text(json.dumps({k: v for k, v in summary.items() if k not in run_only}, indent=2) + "\n")
    return summary


def _remove_stale_shards(root: Path, n_shards: int) -> None:
    """Shard folders beyond this plan (a larger earlier run) would leave unreferenced media behind."""
    shard_root = root / SHARDS
    if not shard_root.is_dir():
        return
    for path in shard_root.iterdir():
        if path.is_dir() and path.name.isdigit() and int(path.name) >= n_shards:
            shutil.rmtree(path)


def _write_outputs(root: Path, records: list[dict]) -> None:
    import pandas as pd

    df = pd.DataFrame([{c: r[c] for c in MANIFEST_COLUMNS} for r in records], columns=list(MANIFEST_COLUMNS))
    write_manifest(root, df)
    tmp = root / (GROUND_TRUTH + ".part")
    tmp.write_text("".join(json.dumps(r["spec"], sort_keys=True) + "\n" for r in records))
    tmp.replace(root / GROUND_TRUTH)


def read_ground_truth(root: str | Path) -> dict[str, sprites.SampleSpec]:
    """{sample_id: SampleSpec} from a sprites dataset's ground_truth.jsonl."""
    path = Path(root) / GROUND_TRUTH
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {root} is not a sprites dataset (run the synthesize step)")
    specs = [sprites.spec_from_dict(json.loads(line)) for line in path.read_text().splitlines() if line]
    return {spec.sample_id: spec for spec in specs}
