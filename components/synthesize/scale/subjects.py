"""Where the `diffusers` backend's subjects come from (`synthesize.scale.subjects`).

    a CSV         columns image,noun,category; image paths relative to the CSV's folder and inside it
    a folder      <category>/<noun>/<image>.png (also .jpg/.jpeg/.webp); one subject per image
    unset         procedural sprite subjects (`sprites.training_subjects`), rendered on white

Subjects are taken in file order (CSV rows; folder paths sorted), the first `synthesize.num_subjects`.
A subject is a JSON-able dict, so it travels inside a job to worker processes.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np

from components.dataset import CATEGORIES, PathEscapeError, resolve_inside

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
CSV_COLUMNS = ("image", "noun", "category")


def load_subjects(cfg, cache_dir: str | Path | None = None) -> list[dict]:
    """[{"subject_id", "noun", "category", "image": absolute path | None, "name": path relative to the subjects
    folder (the CSV's folder) | None, "sprite": sprite Subject dict | None}].

    Messages and sample records use "name", so they do not depend on where the subjects are mounted.
    """
    s = cfg.synthesize
    if s.scale.subjects is None:
        from components import sprites

        return [{"subject_id": sub.subject_id, "noun": sub.noun, "category": sub.category, "image": None,
                 "name": None, "sprite": dataclasses.asdict(sub)}
                for sub in sprites.training_subjects(s.seed, s.num_subjects, s.subject_size)]

    from components.storage import local_path

    root = local_path(s.scale.subjects, s.scale.cache_dir or cache_dir, what="synthesize.scale.subjects")
    if root.is_file() and root.suffix.lower() == ".csv":
        found, base = _from_csv(root), root.parent
    elif root.is_dir():
        found, base = _from_folder(root), root
    else:
        raise ValueError(f"synthesize.scale.subjects={s.scale.subjects!r} is neither a .csv file nor a folder of "
                         "<category>/<noun>/*.png")
    if not found:
        raise ValueError(f"synthesize.scale.subjects={s.scale.subjects!r} lists no subject images")
    return [{"subject_id": f"sub{i:04d}", "noun": noun, "category": category, "image": str(path),
             "name": _relative_name(path, base), "sprite": None}
            for i, (path, noun, category) in enumerate(found[:s.num_subjects])]


def _relative_name(path: Path, base: Path) -> str:
    """`path` relative to the subjects folder (CSV paths come resolved, so try the resolved folder too)."""
    for root in (base, base.resolve()):
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return path.name


def _from_csv(path: Path) -> list[tuple[Path, str, str]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"subjects CSV {path}: missing column(s) {missing}; expected {list(CSV_COLUMNS)}")
        rows = list(reader)
    out = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"subjects CSV {path}, row {line} (image={row['image']!r})"
        try:
            image = resolve_inside(path.parent, (row["image"] or "").strip())
        except PathEscapeError as err:
            raise ValueError(f"{where}: {err}; subject images must lie in the CSV's folder") from None
        if not image.is_file():
            raise ValueError(f"{where}: image file {image} does not exist")
        noun = (row["noun"] or "").strip()
        category = (row["category"] or "").strip()
        if not noun:
            raise ValueError(f"{where}: empty noun")
        if category not in CATEGORIES:
            raise ValueError(f"{where}: category {category!r} is not one of {CATEGORIES}")
        out.append((image, noun, category))
    return out


def _from_folder(root: Path) -> list[tuple[Path, str, str]]:
    out = []
    for path in sorted(p for p in root.glob("*/*/*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        category, noun = path.parent.parent.name, path.parent.name
        if category not in CATEGORIES:
            raise ValueError(f"subjects folder {root}: {path.relative_to(root)} is under {category!r}, not one of "
                             f"{CATEGORIES} (layout <category>/<noun>/<image>.png)")
        out.append((path, noun.replace("_", " "), category))
    return out


def subject_image(subject: dict, height: int, width: int) -> np.ndarray:
    """The subject's image scaled to fit (height, width), sides multiples of 8: (h, w, 3) uint8.

    Sprite subjects render square, on white, at the fitting side. Raises SampleError for an unreadable file.
    """
    from components.media import MediaError, read_image
    from components.synthesize.backend import SampleError

    from .loading import fit_size, resize

    if subject["image"] is None:
        from components import sprites

        side = min(fit_size(1, 1, height, width, multiple=8))
        spec = sprites.sample_spec(0, sprites.Subject(**subject["sprite"]), 0, 0, False)
        # A non-real spec renders the unchanged subject alone on white (motion and background unused).
        spec = dataclasses.replace(spec, source="synthetic")
        return sprites.identity_image(spec, side, side, 1)
    try:
        image = read_image(subject["image"])
    except MediaError as err:
        name = subject.get("name") or Path(subject["image"]).name
        # The subjects folder's location is no part of the dataset: name the file relative to it.
        raise SampleError(f"subject {subject['subject_id']}: {str(err).replace(subject['image'], name)}") from None
    h, w = fit_size(image.shape[0], image.shape[1], height, width, multiple=8)
    return resize(image, h, w)
