"""Benchmark definitions: YAML data files in `definitions/`, loaded, validated and expanded into cases.

Two kinds:

- "images": subjects (id, class noun, category, image file) and prompts per category. Every subject gets
  the prompts of its category; a prompt is a template with a `{class}` (or `{}`) placeholder that becomes
  the subject's class noun, so metrics see the natural prompt (DreamBench's "sks dog" -> "dog";
  METHOD_NOTES §1.6, §3.5). Prompts may be grouped (VideoMaker's clothing/action/... groups); a case keeps
  its group. Images are supplied by the user (`evaluate.benchmark_images`); `expand` resolves them.
- "sprites": the procedural benchmark; the YAML names the spec generator
  (`components.synthesize.sprites.heldout_specs`), its default count and seed, and the category / change /
  motion mix it draws, checked against the module at load time.

Shipped: `sprites`, `sugar_dreambench`, `videomaker_human`, `videomaker_object` (`available_benchmarks()`).

    bench = load_benchmark("sugar_dreambench")          # or a path to a definition YAML
    cases = expand(bench, "data/dreambench/dataset")    # 540 Case(case_id, subject_id, category, prompt, image, ...)
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

KINDS = ("sprites", "images")
SPRITES_METRICS = ("sprites_identity", "sprites_motion", "sprites_attribute")
PLACEHOLDERS = ("{class}", "{}")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # subject ids name files and case ids
_BRACES = re.compile(r"\{[^{}]*\}")
_RARE_TOKEN = re.compile(r"\bsks\b", re.IGNORECASE)


class BenchmarkError(ValueError):
    """A benchmark definition that cannot be loaded or expanded; the message says what and where."""


@dataclass(frozen=True)
class Subject:
    id: str
    class_noun: str
    category: str
    image: str  # relative to the images folder


@dataclass(frozen=True)
class Prompt:
    template: str  # with the placeholder
    group: str | None = None

    def render(self, class_noun: str) -> str:
        return substitute(self.template, class_noun)


@dataclass(frozen=True)
class SpritesSource:
    """Where a sprites benchmark's cases come from, and the mix the generator draws."""

    generator: str  # "module.function", called as f(seed, n, ..., motions=...)
    num_specs: int
    seed: int
    categories: tuple[str, ...]
    changes: tuple[str | None, ...]
    motions: tuple[str, ...]


@dataclass(frozen=True)
class Benchmark:
    name: str
    kind: Literal["sprites", "images"]
    subjects: tuple[Subject, ...]
    prompts: dict[str, tuple[Prompt, ...]]  # category -> prompts
    metrics: tuple[str, ...]
    description: str = ""
    source: str | None = None  # the YAML it was read from
    sprites: SpritesSource | None = None

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(self.prompts) if self.kind == "images" else self.sprites.categories

    @property
    def num_cases(self) -> int:
        if self.kind == "sprites":
            return self.sprites.num_specs
        return sum(len(self.prompts[s.category]) for s in self.subjects)


@dataclass(frozen=True)
class Case:
    """One (subject, prompt) pair to generate and score."""

    case_id: str
    subject_id: str
    category: str
    class_noun: str
    prompt: str  # natural prompt: class noun substituted, no placeholder
    template: str
    group: str | None = None
    image: Path | None = None  # the subject image ("images" benchmarks)
    spec: Any = field(default=None, repr=False)  # the SampleSpec ("sprites" benchmarks)


# ---------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------

def definitions_dir() -> Path:
    """The shipped definitions (package data of components.evaluate)."""
    from importlib.resources import files

    return Path(str(files("components.evaluate") / "definitions"))


def available_benchmarks() -> list[str]:
    return sorted(p.stem for p in definitions_dir().glob("*.yaml"))


def substitute(template: str, class_noun: str) -> str:
    """Replace the `{class}` / `{}` placeholder(s) by the class noun."""
    return template.replace("{class}", class_noun).replace("{}", class_noun)


def load_benchmark(name_or_path: str | os.PathLike) -> Benchmark:
    """A shipped benchmark by name (`available_benchmarks()`), or a definition YAML by path; validated."""
    import yaml

    text = str(name_or_path)
    if isinstance(name_or_path, os.PathLike) or text.endswith((".yaml", ".yml")) or os.sep in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise BenchmarkError(f"benchmark definition {path} does not exist")
    else:
        path = definitions_dir() / f"{text}.yaml"
        if not path.is_file():
            raise BenchmarkError(f"unknown benchmark {text!r}; available: {', '.join(available_benchmarks())} "
                                 "(or give the path of a definition YAML)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise BenchmarkError(f"{path}: not valid YAML ({err})") from None
    return parse_benchmark(data, source=str(path))


def parse_benchmark(data: Any, source: str = "<definition>") -> Benchmark:
    """Validate a definition (the parsed YAML mapping) and build the Benchmark."""

    def fail(msg: str) -> BenchmarkError:
        return BenchmarkError(f"{source}: {msg}")

    if not isinstance(data, dict):
        raise fail(f"a definition is a mapping, got {type(data).__name__}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise fail(f"kind must be one of {KINDS}, got {kind!r}")
    common = {"name", "kind", "description", "metrics"}
    allowed = common | ({"generator", "num_specs", "seed", "categories", "changes", "motions"} if kind == "sprites"
                        else {"categories", "subjects"})
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise fail(f"unknown key(s) {unknown} for a {kind!r} benchmark; allowed: {sorted(allowed)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("name must be a non-empty string")
    description = data.get("description") or ""
    metrics = _metrics(data.get("metrics"), kind, fail)
    if kind == "sprites":
        return Benchmark(name, kind, (), {}, metrics, description, source, _sprites(data, fail))
    prompts = _categories(data.get("categories"), fail)
    subjects = _subjects(data.get("subjects"), prompts, fail)
    empty = [c for c in prompts if not any(s.category == c for s in subjects)]
    if empty:
        raise fail(f"categor{'y' if len(empty) == 1 else 'ies'} {empty} ha{'s' if len(empty) == 1 else 've'} "
                   "no subjects")
    return Benchmark(name, kind, subjects, prompts, metrics, description, source)


def _known_metrics(kind: str) -> tuple[str, ...]:
    from components.evaluate.metrics import METRICS

    return METRICS + (SPRITES_METRICS if kind == "sprites" else ())


def _metrics(value, kind: str, fail) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(m, str) for m in value):
        raise fail("metrics must be a non-empty list of metric names")
    known = _known_metrics(kind)
    bad = [m for m in value if m not in known]
    if bad:
        raise fail(f"unknown metric(s) {bad} for a {kind!r} benchmark; known: {list(known)}")
    dup = sorted({m for m in value if value.count(m) > 1})
    if dup:
        raise fail(f"duplicate metric(s) {dup}")
    return tuple(value)


def _check_template(template, where: str, fail) -> str:
    if not isinstance(template, str) or not template.strip():
        raise fail(f"{where}: a prompt must be a non-empty string, got {template!r}")
    others = [b for b in _BRACES.findall(template) if b not in PLACEHOLDERS]
    if others or template.count("{") != template.count("}"):
        raise fail(f"{where}: prompt {template!r} has unknown placeholder(s) {others or 'or unbalanced braces'}; "
                   "only {class} and {} are substituted")
    if not any(p in template for p in PLACEHOLDERS):
        raise fail(f"{where}: prompt {template!r} has no class placeholder; write {{class}} (or {{}}) where the "
                   "subject's class noun goes")
    if _RARE_TOKEN.search(template):
        raise fail(f"{where}: prompt {template!r} contains the rare token 'sks'; benchmarks use the class noun "
                   "alone (METHOD_NOTES §1.6, §3.5)")
    return template


def _categories(value, fail) -> dict[str, tuple[Prompt, ...]]:
    if not isinstance(value, dict) or not value:
        raise fail("categories must be a non-empty mapping: category -> {prompts: [...]}")
    out: dict[str, tuple[Prompt, ...]] = {}
    for cat, body in value.items():
        if not isinstance(cat, str) or not _ID.match(cat):
            raise fail(f"category name {cat!r} must be a word (letters, digits, _ . -)")
        if not isinstance(body, dict) or "prompts" not in body or set(body) - {"prompts", "description"}:
            raise fail(f"category {cat!r} must be a mapping with 'prompts' (and optionally 'description')")
        raw = body["prompts"]
        if isinstance(raw, list):
            groups: list[tuple[str | None, Any]] = [(None, raw)]
        elif isinstance(raw, dict):
            groups = list(raw.items())
        else:
            raise fail(f"category {cat!r}: prompts must be a list of templates or a mapping group -> list")
        prompts = []
        for group, templates in groups:
            where = f"category {cat!r}" + (f", group {group!r}" if group is not None else "")
            if not isinstance(templates, list) or not templates:
                raise fail(f"{where}: prompts must be a non-empty list")
            prompts += [Prompt(_check_template(t, where, fail), group) for t in templates]
        texts = [p.template for p in prompts]
        dup = sorted({t for t in texts if texts.count(t) > 1})
        if dup:
            raise fail(f"category {cat!r}: duplicate prompt(s) {dup}")
        out[cat] = tuple(prompts)
    return out


def _subjects(value, prompts: dict, fail) -> tuple[Subject, ...]:
    if not isinstance(value, list) or not value:
        raise fail("subjects must be a non-empty list of {id, class, category, image}")
    keys = {"id", "class", "category", "image"}
    subjects, seen = [], set()
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) != keys:
            got = sorted(item) if isinstance(item, dict) else type(item).__name__
            raise fail(f"subject #{i} must have exactly the keys {sorted(keys)}, got {got}")
        sid, noun, cat, image = (item[k] for k in ("id", "class", "category", "image"))
        if not isinstance(sid, str) or not _ID.match(sid):
            raise fail(f"subject #{i}: id {sid!r} must be a word (letters, digits, _ . -)")
        if sid in seen:
            raise fail(f"duplicate subject id {sid!r}")
        seen.add(sid)
        if not isinstance(noun, str) or not noun.strip() or "{" in noun:
            raise fail(f"subject {sid!r}: class must be a non-empty noun, got {noun!r}")
        if cat not in prompts:
            raise fail(f"subject {sid!r} has unknown category {cat!r}; categories: {list(prompts)}")
        if not isinstance(image, str) or not image.strip():
            raise fail(f"subject {sid!r}: image must be a file name, got {image!r}")
        rel = Path(image)
        if rel.is_absolute() or ".." in rel.parts:
            raise fail(f"subject {sid!r}: image {image!r} must be a path inside the images folder")
        subjects.append(Subject(sid, noun.strip(), cat, image))
    return tuple(subjects)


def _generator(dotted: str, fail) -> Callable:
    module_name, _, attr = str(dotted).rpartition(".")
    try:
        fn = getattr(importlib.import_module(module_name), attr) if module_name else None
    except (ImportError, AttributeError) as err:
        raise fail(f"generator {dotted!r} cannot be imported ({type(err).__name__}: {err})") from None
    if not callable(fn):
        raise fail(f"generator {dotted!r} is not a 'module.function' name")
    return fn


def _sprites(data: dict, fail) -> SpritesSource:
    for key in ("generator", "num_specs", "seed", "categories", "changes", "motions"):
        if key not in data:
            raise fail(f"a 'sprites' benchmark needs {key!r}")
    n, seed = data["num_specs"], data["seed"]
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise fail(f"num_specs must be a positive integer, got {n!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise fail(f"seed must be an integer, got {seed!r}")
    fn = _generator(data["generator"], fail)
    module = importlib.import_module(fn.__module__)
    src = SpritesSource(str(data["generator"]), n, seed, tuple(data["categories"] or ()),
                        tuple(data["changes"] or ()), tuple(data["motions"] or ()))

    from components.dataset import CATEGORIES

    if src.categories != tuple(CATEGORIES):
        raise fail(f"categories {list(src.categories)} differ from the cycle the generator draws: {list(CATEGORIES)}")
    expected = getattr(module, "HELDOUT_CHANGES", None)
    if expected is not None and src.changes != tuple(expected):
        raise fail(f"changes {list(src.changes)} differ from the cycle the generator draws: {list(expected)}")
    motions = getattr(module, "ALL_MOTIONS", None)
    bad = [m for m in src.motions if motions is not None and m not in motions]
    if not src.motions or bad:
        raise fail(f"motions must be a non-empty subset of {list(motions or ())}; unknown: {bad}")
    return src


# ---------------------------------------------------------------------------------------------------
# Expansion
# ---------------------------------------------------------------------------------------------------

def sprite_specs(benchmark: Benchmark, n: int | None = None, seed: int | None = None, **kwargs) -> list:
    """The sprites benchmark's specs: `generator(seed, n, motions=..., **kwargs)` (defaults from the YAML;
    the evaluate step passes its own n, seed and the synthesize step's caption/size settings)."""
    if benchmark.kind != "sprites":
        raise BenchmarkError(f"benchmark {benchmark.name!r} is of kind {benchmark.kind!r}, not 'sprites'")
    src = benchmark.sprites
    fn = _generator(src.generator, lambda msg: BenchmarkError(f"{benchmark.source}: {msg}"))
    kwargs.setdefault("motions", src.motions)
    return fn(src.seed if seed is None else seed, src.num_specs if n is None else n, **kwargs)


def expand(benchmark: Benchmark, images_dir: str | os.PathLike | None = None, limit: int | None = None,
           **sprites_kwargs) -> list[Case]:
    """The benchmark's cases, `limit` first ones if given.

    "images": every subject x every prompt of its category, ordered prompt-major (prompt 0 of every subject,
    then prompt 1, ...) so that a `limit` covers the subjects before repeating one; each case's image is
    resolved inside `images_dir` (local path or s3:// prefix), and a missing file is an error naming it.
    "sprites": the generator's specs (`sprite_specs`; `images_dir` unused); image is None, spec the SampleSpec.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise BenchmarkError(f"limit must be a positive integer or None, got {limit!r}")
    if benchmark.kind == "sprites":
        n = sprites_kwargs.pop("n", None) or benchmark.sprites.num_specs
        specs = sprite_specs(benchmark, n=n if limit is None else min(n, limit), **sprites_kwargs)
        return [Case(s.sample_id, s.subject.subject_id, s.subject.category, s.subject.noun, s.caption, s.caption,
                     group=s.change, spec=s) for s in specs]
    if sprites_kwargs:
        raise TypeError(f"unexpected arguments for an 'images' benchmark: {sorted(sprites_kwargs)}")
    if images_dir is None:
        raise BenchmarkError(f"benchmark {benchmark.name!r} needs its subject images: set evaluate.benchmark_images "
                             f"to the folder holding e.g. {benchmark.subjects[0].image!r}")
    rounds = max(len(p) for p in benchmark.prompts.values())
    pairs = [(s, r) for r in range(rounds) for s in benchmark.subjects if r < len(benchmark.prompts[s.category])]
    if limit is not None:
        pairs = pairs[:limit]
    root = _images_root(images_dir)
    needed = list(dict.fromkeys(s for s, _ in pairs))
    missing = [s for s in needed if not (root / s.image).is_file()]
    if missing:
        listed = ", ".join(f"{s.image} (subject {s.id})" for s in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise FileNotFoundError(f"benchmark {benchmark.name!r}: {len(missing)} subject image(s) missing under "
                                f"{root}: {listed}{more}")
    cases = []
    for s, r in pairs:
        p = benchmark.prompts[s.category][r]
        cases.append(Case(f"{s.id}__{r:02d}", s.id, s.category, s.class_noun, p.render(s.class_noun), p.template,
                          p.group, root / s.image))
    return cases


def _images_root(images_dir: str | os.PathLike) -> Path:
    text = str(images_dir)
    if "://" in text and not text.startswith("file://"):
        from components.storage import local_path

        return local_path(text, what="benchmark images")
    root = Path(text.removeprefix("file://")).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"benchmark images folder {root} does not exist")
    return root
