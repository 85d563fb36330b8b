"""The synthesize step: generate the (identity image, video, caption) dataset, score and filter it.

Output directory (the Dataset contract, DESIGN.md):

    manifest.parquet        kept samples, MANIFEST_COLUMNS, paths relative to this directory
    ground_truth.jsonl      per manifest row, same order: the backend's ground truth (sprites: the spec
                            and its mask file), when the backend has one (`read_ground_truth`)
    summary.json            counts, per-filter kept/dropped, dropped jobs with their reasons
    shards/NNNN/            identity/<id>.png, videos/<id>.mp4, masks/<id>.png, records.jsonl, done.json

The backend (`backend.build_backend`: sprites, diffusers, ingest) plans jobs and turns one job into a
sample; everything else is shared here. Work is split into shards of `shard_size` jobs run by a pool
of `workers` processes. A shard is done when its done.json (written last) carries this config's
fingerprint; a re-run skips done shards and regenerates the rest. Scores of every sample, kept or
not, stay in records.jsonl, so changing only a threshold re-filters without regenerating; media of
dropped samples stay in their shard for the same reason (the manifest, not the folder listing, is
the dataset). A job the backend cannot turn into a sample (a corrupt source video, nothing
segmented) is recorded with its reason and dropped; it never stops the run.

Every sample is a function of (seed, job), never of the shard or worker that made it, and torch
runs single-threaded while scoring, so the same config gives a byte-identical dataset whatever
`workers` is.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
import logging
import multiprocessing
import shutil
import time
from pathlib import Path

import numpy as np

from components import sprites
from components.dataset import MANIFEST_COLUMNS, file_md5, write_manifest

from .backend import SampleError
from .backends import build_backend

log = logging.getLogger(__name__)

GENERATOR_VERSION = 3  # bump when the shard layout or scoring changes, so old shards are not reused
GROUND_TRUTH = "ground_truth.jsonl"
SUMMARY = "summary.json"
SHARDS = "shards"
DONE = "done.json"
RECORDS = "records.jsonl"
SCORE_DECIMALS = 6  # scores are rounded so the manifest does not carry float noise
MAX_LISTED_ERRORS = 50  # dropped jobs listed by id and reason in summary.json


def fingerprint(cfg, backend) -> str:
    """Hash of everything that changes a shard's content (not workers, not thresholds)."""
    s = cfg.synthesize
    m = cfg.model
    filters_only = {"workers", "drop_static"} | {f for f in type(s).model_fields if f.startswith("min_")}
    payload = {
        "version": GENERATOR_VERSION,
        "synthesize": s.model_dump(exclude=filters_only),
        "backend": backend.fingerprint(),
        "video": [m.height, m.width, m.num_frames, m.fps],
        # Only the judges the filters use: an evaluation-only judge (text-video model, VBench's subject DINO)
        # must not invalidate a dataset that can take GPU-days to regenerate.
        "scoring": cfg.scoring.model_dump(include={"dino_path", "clip_path", "tiny_image_size"}),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------- one shard
_WORKER: dict = {}  # per process: the backend, scoring encoders and flow estimator (inherited on fork)


def _init_worker(config_json: str) -> None:
    import torch

    torch.set_num_threads(1)  # one process per core; also fork-safe for torch's thread pool
    if "backend" not in _WORKER:
        _setup_worker(config_json)


def _setup_worker(config_json: str) -> None:
    from components.config import config_from_json
    from components.optical_flow import build_flow_estimator
    from model.scoring import ScoringEncoders

    cfg = config_from_json(config_json)
    s = cfg.synthesize
    _WORKER["backend"] = build_backend(cfg)
    _WORKER["encoders"] = ScoringEncoders(cfg.scoring)
    _WORKER["flow"] = None if s.flow == "opencv" else build_flow_estimator(s.flow, s.raft_weights,
                                                                            raft_model=s.raft_model)


def _mask_strip(masks: np.ndarray) -> np.ndarray:
    """(T, H, W) bool -> (T*H, W) uint8 0/255: one PNG per sample keeps every frame's mask, losslessly."""
    return (np.asarray(masks, bool).reshape(-1, masks.shape[-1]) * 255).astype(np.uint8)


def read_masks(path: str | Path, num_frames: int) -> np.ndarray:
    """Inverse of the mask strip: a masks/<id>.png -> (T, H, W) bool."""
    from PIL import Image

    with Image.open(path) as img:
        strip = np.asarray(img.convert("L")) > 127
    return strip.reshape(num_frames, -1, strip.shape[-1])


def _make_shard(job: dict) -> tuple[int, int]:
    """Generate, write, score one shard; done.json last. Returns (shard index, jobs)."""
    import torch
    from PIL import Image

    from components.media import write_image, write_video

    from .filters import score_samples

    root, index = Path(job["root"]), job["index"]
    fps = job["fps"]
    shard_dir = root / SHARDS / f"{index:04d}"
    if shard_dir.exists():
        shutil.rmtree(shard_dir)  # a half-written shard from an interrupted run
    shard_dir.mkdir(parents=True)
    backend = _WORKER["backend"]
    rows, failed, identities, videos = [], [], [], []
    for item in job["jobs"]:
        try:
            sample = backend.generate(item)
        except SampleError as err:
            failed.append({"sample_id": item["sample_id"], "split": item["split"], "error": str(err)})
            continue
        sid = sample.sample_id
        image_rel = f"{SHARDS}/{index:04d}/identity/{sid}.png"
        video_rel = f"{SHARDS}/{index:04d}/videos/{sid}.mp4"
        write_image(root / image_rel, sample.identity)
        write_video(root / video_rel, sample.frames, fps)
        row = {"sample_id": sid, "source": sample.source, "subject_id": sample.subject_id,
               "category": sample.category, "identity_image": image_rel, "video": video_rel,
               "caption": sample.caption, "num_frames": int(sample.frames.shape[0]), "fps": fps,
               "height": int(sample.frames.shape[1]), "width": int(sample.frames.shape[2]),
               "split": item["split"], "identity_md5": file_md5(root / image_rel),
               "video_md5": file_md5(root / video_rel), "truth": sample.truth, "extra": sample.extra}
        if sample.masks is not None:
            row["mask"] = f"{SHARDS}/{index:04d}/masks/{sid}.png"
            (root / row["mask"]).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_mask_strip(sample.masks)).save(root / row["mask"])
        identities.append(sample.identity)
        videos.append(sample.frames)  # scored as rendered; yuv444p at crf 12 is near-lossless at this size
        rows.append(row)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # thread count changes float summation order; fix it for determinism
    try:
        scores = score_samples(_WORKER["encoders"], identities, videos, [r["caption"] for r in rows],
                               seed=job["seed"] % 2**32, flow_estimator=_WORKER["flow"],
                               sample_ids=[r["sample_id"] for r in rows])
    finally:
        torch.set_num_threads(previous)
    for k, row in enumerate(rows):
        for col, v in scores.items():
            row[col] = bool(v[k]) if v.dtype == bool else round(float(v[k]), SCORE_DECIMALS)
    lines = [json.dumps(r, sort_keys=True) for r in rows + failed]
    (shard_dir / RECORDS).write_text("".join(line + "\n" for line in lines))
    done = {"fingerprint": job["fingerprint"], "jobs": jobs_hash(job["jobs"]), "samples": len(job["jobs"])}
    (shard_dir / DONE).write_text(json.dumps(done))
    return index, len(job["jobs"])


def jobs_hash(jobs: list[dict]) -> str:
    """Hash of a shard's jobs: a source edit the config cannot see (a caption file, a CSV row) changes it."""
    return hashlib.sha256(json.dumps(jobs, sort_keys=True).encode()).hexdigest()[:16]


def _is_done(shard_dir: Path, fp: str, jobs: list[dict]) -> bool:
    try:
        done = json.loads((shard_dir / DONE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return (done.get("fingerprint") == fp and done.get("jobs") == jobs_hash(jobs)
            and done.get("samples") == len(jobs) and (shard_dir / RECORDS).is_file())


# ------------------------------------------------------------------------------------------- run
def run(output_dir: str | Path, cfg) -> dict:
    """Synthesize the dataset of `cfg.synthesize` into `output_dir`; returns the summary dict.

    Resumable (done shards are skipped) and deterministic by `cfg.synthesize.seed`.
    """
    from tqdm import tqdm

    from .filters import FILTERS, apply_filters

    start = time.perf_counter()
    s, m = cfg.synthesize, cfg.model
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    backend = build_backend(cfg)
    jobs = backend.plan()
    if not jobs:
        raise ValueError(f"synthesize.backend={s.backend} planned no samples; check the source and counts")
    counts = Counter(j["sample_id"] for j in jobs)
    if len(counts) != len(jobs):
        dup = sorted(i for i, c in counts.items() if c > 1)[:5]
        raise ValueError(f"the {s.backend} backend planned duplicate sample ids {dup}")
    fp = fingerprint(cfg, backend)
    shards = [jobs[i:i + s.shard_size] for i in range(0, len(jobs), s.shard_size)]
    _remove_stale_shards(root, len(shards))
    pending = [i for i, shard in enumerate(shards) if not _is_done(root / SHARDS / f"{i:04d}", fp, shard)]
    log.info("synthesize (%s): %d jobs in %d shards, %d to generate (fingerprint %s)", s.backend, len(jobs),
             len(shards), len(pending), fp)

    if pending:
        work = [{"root": str(root), "index": i, "jobs": shards[i], "fingerprint": fp, "seed": s.seed,
                 "fps": m.fps} for i in pending]
        config_json = cfg.to_json()
        # Built once here: forked workers inherit the backend and encoders instead of re-loading them.
        _WORKER.clear()
        _setup_worker(config_json)
        workers = min(s.workers, len(work))
        with tqdm(total=sum(len(shards[i]) for i in pending), desc="synthesize", unit="sample") as bar:
            if workers == 1:
                for item in work:
                    bar.update(_make_shard(item)[1])
            else:
                method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
                ctx = multiprocessing.get_context(method)
                with ctx.Pool(workers, initializer=_init_worker, initargs=(config_json,)) as pool:
                    for _, n in pool.imap_unordered(_make_shard, work):
                        bar.update(n)

    records, failed = [], []
    for i in range(len(shards)):
        text = (root / SHARDS / f"{i:04d}" / RECORDS).read_text()
        for line in text.splitlines():
            if line:
                r = json.loads(line)
                (failed if "error" in r else records).append(r)
    scores = {col: np.array([r[col] for r in records], np.float64) for col in FILTERS}
    scores["static_video"] = np.array([r["static_video"] for r in records], bool)
    kept, report = apply_filters(scores, s)
    report = {"generate": {"kept": len(records), "dropped": len(failed)}, **report}
    kept_records = sorted((r for r, k in zip(records, kept) if k), key=lambda r: r["sample_id"])
    _write_outputs(root, kept_records)

    summary = {
        "backend": s.backend, "seed": s.seed, "fingerprint": fp,
        "samples_total": len(jobs), "samples_kept": len(kept_records),
        "samples_dropped": len(jobs) - len(kept_records),
        "subjects": len({r["subject_id"] for r in kept_records}),
        "real": sum(r["source"] == "real" for r in kept_records),
        "synthetic": sum(r["source"] == "synthetic" for r in kept_records),
        "train": sum(r["split"] == "train" for r in kept_records),
        "val": sum(r["split"] == "val" for r in kept_records),
        "shards_total": len(shards), "shards_generated": len(pending),
        "shards_skipped": len(shards) - len(pending),
        "filters": report,
        "failed_jobs": [{"sample_id": f["sample_id"], "error": f["error"]} for f in failed[:MAX_LISTED_ERRORS]],
        "wall_time_s": round(time.perf_counter() - start, 3),
    }
    for f in failed[:10]:
        log.warning("dropped %s: %s", f["sample_id"], f["error"])
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
    truth = root / GROUND_TRUTH
    if records and all(r.get("truth") is not None for r in records):
        tmp = root / (GROUND_TRUTH + ".part")
        lines = [json.dumps({**r["truth"], **({"mask": r["mask"]} if "mask" in r else {})}, sort_keys=True)
                 for r in records]
        tmp.write_text("".join(line + "\n" for line in lines))
        tmp.replace(truth)
    elif truth.exists():  # left from an earlier run with another backend
        truth.unlink()


def read_ground_truth(root: str | Path) -> dict[str, sprites.SampleSpec]:
    """{sample_id: SampleSpec} from a sprites dataset's ground_truth.jsonl."""
    path = Path(root) / GROUND_TRUTH
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {root} is not a sprites dataset (run the synthesize step)")
    specs = []
    for line in path.read_text().splitlines():
        if line:
            data = json.loads(line)
            data.pop("mask", None)  # the mask file's path rides along with the spec
            specs.append(sprites.spec_from_dict(data))
    return {spec.sample_id: spec for spec in specs}
