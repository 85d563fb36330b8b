"""MLflow evaluate runs loaded for the report: run info, tags, metrics, the flattened config.json, the
per-sample table, the sample videos (re-encoded for browsers) and the contact sheet."""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from components.compare.videos import browser_video

log = logging.getLogger(__name__)

EVAL_DIR = "evaluation"  # evaluate logs its output folder under this artifact path
VIDEO_DIRS = (f"{EVAL_DIR}/videos",)  # where evaluate's sample videos are; other runs are searched
VIDEO_EXTS = (".mp4", ".webm", ".mov", ".mkv", ".avi")
PER_SAMPLE = (f"{EVAL_DIR}/per_sample.parquet", "per_sample.json")
CONTACT_SHEET = f"{EVAL_DIR}/contact_sheet.png"


@dataclass
class RunData:
    run_id: str
    name: str
    experiment_id: str
    experiment: str
    status: str
    lifecycle: str
    start_ms: int | None
    end_ms: int | None
    tags: dict[str, str]
    metrics: dict[str, float]
    config: dict[str, str] | None = None  # flattened config.json; None when the run has none
    videos: dict[str, Path] = field(default_factory=dict)  # sample id -> browser-playable file
    no_image_videos: dict[str, Path] = field(default_factory=dict)  # sample id -> the image-dropped clip
    identities: dict[str, Path] = field(default_factory=dict)  # sample id -> its identity image (PNG)
    video_errors: dict[str, str] = field(default_factory=dict)  # sample id -> why it could not be shown
    samples: dict[str, dict] = field(default_factory=dict)  # sample id -> per-sample table row
    contact_sheet: Path | None = None
    video_source: str | None = None  # the artifact folder the videos came from

    @property
    def short(self) -> str:
        return self.run_id[:8]

    @property
    def has_videos(self) -> bool:
        """Whether the run has sample videos at all, readable or not."""
        return bool(self.videos or self.video_errors)


def _not_found(err: Exception) -> bool:
    code = getattr(err, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") or "not found" in str(err).lower()


def fetch_runs(client, run_ids: list[str], tracking_uri: str) -> list:
    """mlflow Run objects for `run_ids`; ValueError naming every id the store does not have."""
    from mlflow.exceptions import MlflowException

    runs, unknown = [], []
    for rid in run_ids:
        try:
            runs.append(client.get_run(rid))
        except MlflowException as err:
            if not _not_found(err):
                raise RuntimeError(f"cannot read MLflow run {rid} from {tracking_uri}: {err}") from None
            unknown.append(rid)
    if unknown:
        raise ValueError(f"unknown MLflow run id{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: "
                         f"not in the tracking store {tracking_uri} (pass --tracking-uri, --params or set "
                         "MLFLOW_TRACKING_URI for another store; `mlflow runs list --experiment-id ID` lists run ids)")
    return runs


def flatten_config(d: dict, prefix: str = "") -> dict[str, str]:
    """{"a": {"b": 1}} -> {"a.b": "1"}; lists and scalars as compact JSON, nothing truncated."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten_config(v, key))
        else:
            out[key] = json.dumps(v, sort_keys=True) if not isinstance(v, str) else v
    return out


def _list_videos(client, run_id: str) -> tuple[str | None, list[str]]:
    """(folder, artifact paths) of a run's sample videos: evaluate's folder, else any video artifact."""
    for folder in VIDEO_DIRS:
        files = [f.path for f in client.list_artifacts(run_id, folder)
                 if not f.is_dir and f.path.lower().endswith(VIDEO_EXTS)]
        if files:
            return folder, sorted(files)
    found: list[str] = []

    def walk(path: str | None, depth: int) -> None:
        for f in client.list_artifacts(run_id, path):
            if f.is_dir:
                # compare/ holds an earlier report's re-encoded copies, not the run's own samples
                if depth < 4 and f.path.split("/")[0] != "compare":
                    walk(f.path, depth + 1)
            elif f.path.lower().endswith(VIDEO_EXTS):
                found.append(f.path)

    walk(None, 0)
    folders = sorted({str(Path(p).parent) for p in found})
    return (", ".join(folders) or None), sorted(found)


def _download(client, run_id: str, path: str, dst: Path) -> Path | None:
    """A run's artifact file downloaded under dst, or None when the run has no such artifact."""
    parent = str(Path(path).parent)
    names = {f.path for f in client.list_artifacts(run_id, None if parent == "." else parent)}
    if path not in names:
        return None
    dst.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, path, str(dst)))


def _per_sample(client, run_id: str, tmp: Path) -> dict[str, dict]:
    import pandas as pd

    for path in PER_SAMPLE:
        local = _download(client, run_id, path, tmp)
        if local is None:
            continue
        try:
            if path.endswith(".parquet"):
                table = pd.read_parquet(local)
            else:  # mlflow.log_table's layout
                raw = json.loads(local.read_text())
                table = pd.DataFrame(raw["data"], columns=raw["columns"])
        except Exception as err:  # a broken table costs the prompts, not the report
            log.warning("run %s: cannot read %s (%s)", run_id, path, err)
            continue
        key = "sample_id" if "sample_id" in table else "id" if "id" in table else None
        if key is None:
            continue
        return {str(row[key]): row for row in table.to_dict("records")}
    return {}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "_"


def _companions(client, rd: RunData, sid: str, work: Path, out_dir: Path) -> None:
    """The sample's identity image and image-dropped clip, when evaluate logged them (older runs did not)."""
    try:
        image = _download(client, rd.run_id, f"{EVAL_DIR}/identity/{sid}.png", work / "identity")
        if image is not None:
            rd.identities[sid] = Path(shutil.copyfile(image, out_dir / f"{_safe(sid)}_identity.png"))
        clip = _download(client, rd.run_id, f"{EVAL_DIR}/videos_no_image/{sid}.mp4", work / "no_image")
        if clip is not None:
            rd.no_image_videos[sid] = out_dir / f"{_safe(sid)}_no_image.mp4"
            browser_video(clip, rd.no_image_videos[sid])
    except Exception as err:  # a missing companion costs its picture, not the report
        log.warning("run %s: identity image or image-dropped clip of %s not shown: %s", rd.run_id, sid, err)


def load_run(client, run, media_dir: Path, tmp: Path) -> RunData:
    """Everything the report shows about one run; videos re-encoded and contact sheet copied to media_dir."""
    info, data = run.info, run.data
    try:
        experiment = client.get_experiment(info.experiment_id).name
    except Exception:  # a missing experiment name is cosmetic
        experiment = str(info.experiment_id)
    rd = RunData(run_id=info.run_id, name=info.run_name or data.tags.get("mlflow.runName", ""),
                 experiment_id=info.experiment_id, experiment=experiment, status=info.status,
                 lifecycle=info.lifecycle_stage, start_ms=info.start_time, end_ms=info.end_time,
                 tags=dict(data.tags), metrics=dict(data.metrics))
    work = tmp / _safe(info.run_id)
    cfg = _download(client, info.run_id, "config.json", work)
    if cfg is not None:
        try:
            rd.config = flatten_config(json.loads(cfg.read_text()))
        except ValueError as err:
            log.warning("run %s: config.json is not JSON (%s)", info.run_id, err)
    rd.samples = _per_sample(client, info.run_id, work)
    rd.video_source, paths = _list_videos(client, info.run_id)
    out_dir = media_dir / _safe(info.run_id)
    for path in paths:
        sid = Path(path).stem
        if sid in rd.videos:  # same stem in two folders (fallback search): keep the first
            continue
        try:
            local = Path(client.download_artifacts(info.run_id, path, str(work / "videos")))
            rd.videos[sid] = out_dir / f"{_safe(sid)}.mp4"
            browser_video(local, rd.videos[sid])
        except Exception as err:  # one broken clip costs its cell, not the report
            rd.videos.pop(sid, None)
            rd.video_errors[sid] = f"{type(err).__name__}: {err}"
            log.warning("run %s: video %s not shown: %s", info.run_id, path, err)
    for sid in list(rd.videos):  # what the subject image changes: its picture and the image-dropped clip
        _companions(client, rd, sid, work, out_dir)
    sheet = _download(client, info.run_id, CONTACT_SHEET, work)
    if sheet is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        rd.contact_sheet = Path(shutil.copyfile(sheet, out_dir / "contact_sheet.png"))
    return rd
