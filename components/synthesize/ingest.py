"""The `ingest` backend: real-world videos with captions (paper §1.5 item 6).

Each sample is one clip of a real video, resampled to the model's fps, centre-cropped and resized to
the model's size; its identity image is the subject segmented from a random frame of that clip, cut
out and centred on white. There is no attribute change: these are the "real" samples of SUGAR's mix.

Source (`synthesize.ingest.source`):
    folder   every *.mp4, *.mov, *.webm, *.mkv below it (hidden files and folders skipped), caption in
             the same-named .txt next to the video
    CSV      columns video, caption and optional subject_id, category, noun; video paths relative to
             the CSV's folder and refused if they escape it

plan() reads only the source listing (and the caption files): no video is opened, so it stays cheap
for millions of rows. generate() reads a video's headers to choose the clip, then decodes only that
clip (from the keyframe before it), resizing each frame as it is decoded: a clip of a long 1080p video
never holds more than one full-size frame. Everything that can be wrong with one row (missing or
corrupt file, empty or over-long caption, unknown category, too short, more clips than the video has
starts for, nothing segmented) surfaces in generate() as a SampleError naming the sample and the
file, so one bad row drops one sample and nothing else. Problems with the source as a whole (no
source, no videos, no caption column, paths escaping the root, duplicate sample ids) are ValueErrors
at plan time.

Sample ids are `<relative path without extension, sanitised>-c<clip>`: stable across runs and
independent of row order, so adding a video never renames (or reseeds) another one's samples.
Messages name files relative to the source root (never by absolute path): they are recorded in the
dataset, and the same source mounted elsewhere must give the same dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path, PurePosixPath

import numpy as np

from components.sample_rules import subject_on_white, val_subject_indices

from .backend import Job, Sample, SampleError

# Bump when clip choice, resampling, cropping, GrabCut or recorded messages change: old shards are not reused.
# 2: relative paths in messages, clips with an empty start window refused, the shared val-split rule.
INGEST_VERSION = 2
VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".mkv")
CATEGORIES = ("animal", "active_object", "static_object")
CSV_COLUMNS = ("video", "caption")
CSV_OPTIONAL = ("subject_id", "category", "noun")
# A class word for the detector when the source gives none (GrabCut ignores it).
DEFAULT_NOUN = {"animal": "animal", "active_object": "object", "static_object": "object"}
MAX_ID_CHARS = 100


class IngestBackend:
    """Real videos from a folder or CSV -> Samples at the model's (T, H, W) and fps.

    Jobs (JSON-able): sample_id, split, video (path relative to the source root), caption (None when
    a folder video has no readable .txt), subject_id, category, noun, clip (index < clips_per_video),
    origin (where the row came from, for messages: the .txt path or "<csv> line N").
    """

    name = "ingest"

    def __init__(self, cfg):
        self.cfg = cfg
        self._segmenter = None  # built on first generate: planning in the parent process loads no model
        self._jobs: list[Job] | None = None

    # ---------------------------------------------------------------------------------------- source
    def _source(self) -> tuple[Path, Path]:
        """(source path, root that video paths are relative to)."""
        source = self.cfg.synthesize.ingest.source
        if not source:
            raise ValueError("synthesize.ingest.source is not set; set it to a folder of videos (caption in a "
                             "same-named .txt) or a CSV with columns video, caption")
        path = Path(source).expanduser()
        if path.is_dir():
            return path, path
        if path.is_file():
            if path.suffix.lower() != ".csv":
                raise ValueError(f"synthesize.ingest.source={source}: a file source must be a .csv with columns "
                                 "video, caption[, subject_id, category, noun]; or pass a folder of videos")
            return path, path.parent
        raise ValueError(f"synthesize.ingest.source={source}: no such file or folder")

    def _rows(self) -> list[dict]:
        """One dict per video: video (relative posix path), caption, subject_id, category, noun, origin."""
        source, root = self._source()
        rows = _csv_rows(source) if source.is_file() else _folder_rows(source)
        ingest = self.cfg.synthesize.ingest
        for row in rows:
            if row["caption"] is not None:
                # One line: newlines in a .txt are wrapping, not content; both sources give the same caption.
                row["caption"] = " ".join(row["caption"].split())
            row["category"] = row.get("category") or ingest.default_category
            row["subject_id"] = row.get("subject_id") or _video_id(row["video"])
            row["noun"] = row.get("noun") or DEFAULT_NOUN.get(row["category"], "object")
        return rows

    # ------------------------------------------------------------------------------------------ plan
    def plan(self) -> list[Job]:
        """One job per (video, clip index), in source order; split by subject with a seeded permutation."""
        if self._jobs is not None:
            return [dict(j) for j in self._jobs]
        s = self.cfg.synthesize
        jobs, seen = [], {}
        for row in self._rows():
            vid = _video_id(row["video"])
            for clip in range(s.ingest.clips_per_video):
                sid = f"{vid}-c{clip}"
                if sid in seen:
                    raise ValueError(
                        f"duplicate sample_id {sid!r}: {row['video']} ({row['origin']}) and {seen[sid][0]} "
                        f"({seen[sid][1]}); list each video once, and give videos names that differ in more "
                        "than punctuation or extension")
                seen[sid] = (row["video"], row["origin"])
                jobs.append({"sample_id": sid, "video": row["video"], "caption": row["caption"],
                             "subject_id": row["subject_id"], "category": row["category"], "noun": row["noun"],
                             "clip": clip, "origin": row["origin"]})
        subjects = sorted({j["subject_id"] for j in jobs})
        val = {subjects[i] for i in val_subject_indices(s.seed, len(subjects), s.val_fraction)}
        for job in jobs:
            job["split"] = "val" if job["subject_id"] in val else "train"
        self._jobs = jobs
        return [dict(j) for j in jobs]

    def fingerprint(self) -> dict:
        """Model size, clip and segmenter settings, and each video's size (a replaced file changes it)."""
        cfg, ingest = self.cfg, self.cfg.synthesize.ingest
        _, root = self._source()
        # Sizes rather than content hashes: hashing every video would cost as much as decoding it.
        sizes = []
        for video in sorted({j["video"] for j in self.plan()}):
            path = root / video
            sizes.append([video, path.stat().st_size if path.is_file() else -1])
        fp = {"backend": self.name, "version": INGEST_VERSION,
              "video": [cfg.model.height, cfg.model.width, cfg.model.num_frames, cfg.model.fps],
              "ingest": ingest.model_dump(exclude={"source"}),
              "files": hashlib.sha256(json.dumps(sizes).encode()).hexdigest()[:16]}
        if ingest.segmenter == "grounded_sam":
            scale = cfg.synthesize.scale
            fp["segmenter_models"] = [scale.detector_path, scale.sam_path, scale.detection_threshold]
        return fp

    # -------------------------------------------------------------------------------------- generate
    @property
    def segmenter(self):
        if self._segmenter is None:
            from .segment import build_segmenter

            self._segmenter = build_segmenter(self.cfg)
        return self._segmenter

    def generate(self, job: Job) -> Sample:
        """job -> Sample: frames (T, H, W, 3) uint8 at the model's fps; identity (H, W, 3) uint8 on white.

        masks is None: only the identity frame is segmented, and a (T, H, W) array with one real mask
        would read as "subject absent" in every other frame. extra records the provenance: source file,
        source fps and frame count, clip start (seconds and source frame), identity frame index (into
        the output clip), segmented area.
        """
        from components.media import MediaError, probe_video, read_video_frames

        from components.sample_rules import seeded_rng

        m, ingest = self.cfg.model, self.cfg.synthesize.ingest
        sid, video = job["sample_id"], job["video"]
        where = f"{sid}: {video} ({job['origin']})"
        caption = _check_caption(job, where, self.cfg.validate_.max_caption_chars)
        if job["category"] not in CATEGORIES:
            raise SampleError(f"{where}: unknown category {job['category']!r}; use one of {', '.join(CATEGORIES)}")
        rel = PurePosixPath(video)
        if rel.is_absolute() or ".." in rel.parts:
            raise SampleError(f"{where}: video path must stay inside the source folder")
        _, root = self._source()
        path = root / rel
        try:
            n_src, src_fps, _, _, _ = probe_video(path)  # headers only: which clip, before decoding anything
        except MediaError as err:
            raise SampleError(f"{sid}: {_relative_message(str(err), path, root, video)} ({job['origin']})") from None
        if not src_fps > 0:
            raise SampleError(f"{where}: frame rate unknown; re-mux the file with a frame rate")

        rng = seeded_rng([self.cfg.synthesize.seed, 31, _stable_int(sid)])
        start, indices = _clip_indices(n_src, src_fps, m.fps, m.num_frames, job["clip"], ingest.clips_per_video,
                                       rng, where)
        try:
            # Only the clip's frames are decoded, each cropped and resized as it comes.
            frames = read_video_frames(path, indices, transform=lambda f: _crop_resize(f, m.height, m.width))
        except MediaError as err:
            raise SampleError(f"{sid}: {_relative_message(str(err), path, root, video)} ({job['origin']})") from None
        t = int(rng.integers(m.num_frames))
        try:
            mask = np.asarray(self.segmenter(frames[t], job["noun"]), bool)
        except SampleError as err:  # e.g. Grounded SAM detected no `noun`: say which sample and file
            raise SampleError(f"{where}: clip frame {t}: {err}") from None
        if mask.shape != frames.shape[1:3]:
            raise ValueError(f"segmenter {ingest.segmenter} returned a mask of shape {mask.shape} for an image of "
                             f"{frames.shape[1:3]}")  # a segmenter bug, fatal on purpose (not one sample's fault)
        area = float(mask.mean())
        if not mask.any() or area < ingest.min_subject_area:
            raise SampleError(f"{where}: no subject found in clip frame {t} (segmented area {area:.2%} < "
                              f"synthesize.ingest.min_subject_area {ingest.min_subject_area:.2%})")
        return Sample(
            sample_id=sid, source="real", subject_id=job["subject_id"], category=job["category"], caption=caption,
            identity=subject_on_white(frames[t], mask), frames=frames, truth=None, masks=None,
            extra={"source_file": video, "source_origin": job["origin"], "source_fps": round(src_fps, 6),
                   "source_frames": int(n_src), "clip_index": int(job["clip"]),
                   "clip_start_s": round(start / src_fps, 6), "clip_start_frame": int(start),
                   "identity_frame": t, "subject_area": round(area, 6), "segmenter": ingest.segmenter})


# ------------------------------------------------------------------------------------------ helpers
def _folder_rows(root: Path) -> list[dict]:
    rows = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.suffix.lower() not in VIDEO_EXTENSIONS or any(p.startswith(".") for p in rel.parts):
            continue  # hidden: editor/OS droppings (._x.mp4), partial downloads
        if not path.is_file():
            continue
        txt = path.with_suffix(".txt")
        try:
            caption = txt.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError):
            caption = None  # reported per sample by generate, not fatal for the run
        rows.append({"video": rel.as_posix(), "caption": caption, "origin": txt.relative_to(root).as_posix()})
    if not rows:
        raise ValueError(f"{root}: no videos ({', '.join('*' + e for e in VIDEO_EXTENSIONS)}) in this folder or "
                         "below; point synthesize.ingest.source at a folder of videos with same-named .txt "
                         "captions, or at a CSV with columns video, caption")
    return rows


def _csv_rows(path: Path) -> list[dict]:
    import csv
    import posixpath

    from components.dataset import resolve_inside

    root = path.parent
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip().lower() for h in next(reader, [])]
            missing = [c for c in CSV_COLUMNS if c not in header]
            if missing:
                raise ValueError(f"{path}: missing column(s) {missing}; the header must name video and caption "
                                 f"(optional {', '.join(CSV_OPTIONAL)}), e.g. 'video,caption'")
            col = {name: header.index(name) for name in CSV_COLUMNS + CSV_OPTIONAL if name in header}
            rows = []
            for cells in reader:
                if not any(c.strip() for c in cells):
                    continue  # blank line
                origin = f"{path.name} line {reader.line_num}"
                row = {name: (cells[i].strip() if i < len(cells) else "") for name, i in col.items()}
                if not row["video"]:
                    raise ValueError(f"{path} line {reader.line_num}: empty video path; every row needs one")
                try:
                    resolve_inside(root, row["video"])
                except ValueError as err:  # PathEscapeError: absolute or ../ paths
                    raise ValueError(f"{path} line {reader.line_num}: {err}; video paths must be relative to "
                                     f"the CSV's folder {root} and stay inside it") from None
                row["video"] = posixpath.normpath(row["video"])  # ./a.mp4 and a.mp4 are the same sample
                row["origin"] = origin
                rows.append(row)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err}); save the CSV as UTF-8") from None
    if not rows:
        raise ValueError(f"{path}: no rows; add one row per video (columns video, caption"
                         f"[, {', '.join(CSV_OPTIONAL)}])")
    return rows


def _video_id(video: str) -> str:
    """Sample-id stem of a relative video path: 'cats/tom.mp4' -> 'cats_tom'.

    Characters other than [A-Za-z0-9_-] become '_'; when that loses information (spaces, non-ASCII
    names) a hash of the path keeps distinct names distinct. Long paths are shortened the same way.
    """
    stem = PurePosixPath(video).with_suffix("").as_posix()
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", stem.replace("/", "_")).strip("_")
    if safe != stem.replace("/", "_") or len(safe) > MAX_ID_CHARS or not safe:
        safe = f"{safe[:MAX_ID_CHARS - 9]}_{hashlib.sha256(stem.encode()).hexdigest()[:8]}".lstrip("_")
    return safe


def _relative_message(text: str, path: Path, root: Path, rel: str) -> str:
    """`text` (a MediaError's, which names `path` and may quote it again in a decoder error) with the file
    named `rel`, relative to the source root, and any other path under the root made relative too."""
    for name in sorted({str(path), str(path.absolute()), str(path.resolve())}, key=len, reverse=True):
        text = text.replace(name, rel)
    for base in sorted({str(root.absolute()), str(root.resolve())}, key=len, reverse=True):
        text = text.replace(base.rstrip(os.sep) + os.sep, "")
    return text


def _stable_int(text: str) -> int:
    """A process-independent integer for `text` (hash() is salted per process)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _check_caption(job: Job, where: str, max_chars: int) -> str:
    caption = job["caption"]
    if caption is None:
        raise SampleError(f"{where}: no caption; write it (UTF-8 text) to {job['origin']}")
    if not caption.strip():
        raise SampleError(f"{where}: empty caption; write one in {job['origin']}")
    if len(caption) > max_chars:
        raise SampleError(f"{where}: caption has {len(caption)} characters, more than validate.max_caption_chars="
                          f"{max_chars}; shorten it in {job['origin']}")
    return caption


def _clip_indices(n_src: int, src_fps: float, fps: int, num_frames: int, clip: int, clips: int,
                  rng: np.random.Generator, where: str) -> tuple[int, np.ndarray]:
    """(start source frame, (num_frames,) source frame indices) of clip `clip` of `clips`.

    Output frame k shows the source frame on screen at time start + k / fps (floor: the frame whose
    interval contains that time). The possible starts [0, last] are split into `clips` equal windows and
    clip k starts at a seeded random frame of window k, so the clips spread over the whole video and
    never share a start; SampleError for a clip whose window is empty (more clips than starts).
    """
    duration, need = n_src / src_fps, num_frames / fps
    last = int(np.floor(n_src - num_frames * src_fps / fps + 1e-6))  # latest start frame that fits the clip
    if last < 0:
        raise SampleError(f"{where}: too short: {duration:.2f} s, need {need:.2f} s ({num_frames} frames at "
                          f"{fps} fps)")
    lo, hi = clip * (last + 1) // clips, (clip + 1) * (last + 1) // clips  # window [lo, hi)
    if hi <= lo:
        # More clips than possible starts: this clip would repeat another's start, an identical sample
        # under another id.
        raise SampleError(f"{where}: clip {clip} of {clips}: the video has only {last + 1} possible clip start(s) "
                          f"({duration:.2f} s, clips of {need:.2f} s), fewer than synthesize.ingest.clips_per_video="
                          f"{clips}; lower clips_per_video, or expect this clip to be skipped")
    start = int(rng.integers(lo, hi))
    # 1e-6: k * src_fps / fps is an exact integer in exact arithmetic whenever the rates divide.
    offsets = np.floor(np.arange(num_frames) * (src_fps / fps) + 1e-6).astype(np.int64)
    return start, np.minimum(start + offsets, n_src - 1)


def _crop_resize(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w, 3) -> (height, width, 3) uint8: centre crop to the target aspect, then area resize."""
    import cv2

    h, w = frame.shape[:2]
    if w * height > h * width:  # too wide: crop the sides
        cw = max(1, round(h * width / height))
        x0 = (w - cw) // 2
        frame = frame[:, x0:x0 + cw]
    elif w * height < h * width:  # too tall: crop top and bottom
        ch = max(1, round(w * height / width))
        y0 = (h - ch) // 2
        frame = frame[y0:y0 + ch]
    # INTER_AREA averages the source pixels under each output pixel: no aliasing when shrinking.
    return cv2.resize(np.ascontiguousarray(frame), (width, height), interpolation=cv2.INTER_AREA)
