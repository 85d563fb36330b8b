"""The dataset contract (DESIGN.md): manifest.parquet plus media files, paths relative and inside the root."""

from __future__ import annotations

from pathlib import Path

MANIFEST = "manifest.parquet"
CATEGORIES = ("animal", "active_object", "static_object")
SOURCES = ("synthetic", "real")
SPLITS = ("train", "val")
# Motions each category can do, for every backend's captions (SUGAR §4: a vase does not dance, but it
# can slide or float). `synthesize.motions` narrows the set further.
CATEGORY_MOTIONS: dict[str, tuple[str, ...]] = {
    "animal": ("walk", "run", "jump"),
    "active_object": ("run", "jump", "spin", "slide"),
    "static_object": ("slide", "float", "spin", "zoom"),
}
# column -> pandas dtype; the order is the manifest's column order.
MANIFEST_COLUMNS: dict[str, str] = {
    "sample_id": "string",
    "source": "string",
    "subject_id": "string",
    "category": "string",
    "identity_image": "string",
    "video": "string",
    "caption": "string",
    "num_frames": "int64",
    "fps": "int64",
    "height": "int64",
    "width": "int64",
    "clip_text_score": "float64",
    "dino_identity_score": "float64",
    "frame_consistency": "float64",
    "flow_score": "float64",
    "static_video": "bool",  # VBench's static filter verdict (top-2 % flow, 3*min(H,W)/256, counts)
    "split": "string",
    "identity_md5": "string",  # checksums of the two media files, verified by validate's media checks
    "video_md5": "string",
}


class PathEscapeError(ValueError):
    """A manifest path points outside the dataset root."""


def resolve_inside(root: str | Path, relative: str) -> Path:
    """Resolve `relative` under `root`, refusing absolute paths and anything escaping the root."""
    root = Path(root).resolve()
    rel = Path(str(relative))
    if rel.is_absolute():
        raise PathEscapeError(f"path {relative!r} is absolute; manifest paths must be relative to {root}")
    full = (root / rel).resolve()
    if full != root and root not in full.parents:
        raise PathEscapeError(f"path {relative!r} escapes the dataset root {root}")
    return full


def file_md5(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex md5 of a file's bytes (the checksum the manifest records and the media checks verify)."""
    import hashlib

    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_manifest(root: str | Path):
    import pandas as pd

    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {root} is not a vidcustom dataset (run the synthesize step)")
    return pd.read_parquet(path)


def write_manifest(root: str | Path, df) -> Path:
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"manifest is missing columns {missing}")
    df = df[list(MANIFEST_COLUMNS)].astype(MANIFEST_COLUMNS)
    path = Path(root) / MANIFEST
    tmp = path.with_suffix(".part")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path
