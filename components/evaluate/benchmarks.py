"""Benchmarks in the evaluate step: a definition (`components.benchmark_defs`: schema, loading) checked against
what this step runs, and expanded into cases.

`load_benchmark` = `components.benchmark_defs.load_benchmark` + what only this step can check: the metric names
(those it computes: `metrics.METRICS`, plus the ground-truth `SPRITES_METRICS` of a "sprites" benchmark) and,
for a "sprites" benchmark, the generator it names (`components.sprites.heldout_specs`), imported, with the
category / change / motion mix in the YAML checked against its module so the file cannot drift from the code.

"images" cases: every subject x every prompt of its category, the class noun substituted into the prompt
(METHOD_NOTES §1.6, §3.5); a case keeps its prompt group. Images are supplied by the user
(`evaluate.benchmark_images`); `expand` resolves them. "sprites" cases: the generator's specs.

    bench = load_benchmark("sugar_dreambench")          # or a path to a definition YAML
    cases = expand(bench, "data/dreambench/dataset")    # 540 Case(case_id, subject_id, category, prompt, image, ...)
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from components import benchmark_defs
from components.benchmark_defs import Benchmark, BenchmarkError, SpritesSource

SPRITES_METRICS = ("sprites_identity", "sprites_motion", "sprites_attribute")


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
# Loading: the shared schema, then what this step runs
# ---------------------------------------------------------------------------------------------------

def load_benchmark(name_or_path: str | os.PathLike) -> Benchmark:
    """A shipped benchmark by name (`benchmark_defs.available_benchmarks()`), or a definition YAML by path,
    validated against the schema and against this step (`check_benchmark`)."""
    return check_benchmark(benchmark_defs.load_benchmark(name_or_path))


def check_benchmark(bench: Benchmark) -> Benchmark:
    """The benchmark's metrics are ones this step computes and, for "sprites", its generator imports and draws
    the mix the YAML states; BenchmarkError naming the file otherwise."""

    def fail(msg: str) -> BenchmarkError:
        return BenchmarkError(f"{bench.source}: {msg}")

    known = known_metrics(bench.kind)
    bad = [m for m in bench.metrics if m not in known]
    if bad:
        raise fail(f"metrics: unknown metric(s) {bad} for a {bench.kind!r} benchmark; known: {list(known)}")
    if bench.kind == "sprites":
        _check_sprites(bench.sprites, fail)
    return bench


def known_metrics(kind: str) -> tuple[str, ...]:
    from components.evaluate.metrics import METRICS

    return METRICS + (SPRITES_METRICS if kind == "sprites" else ())


def _generator(dotted: str, fail) -> Callable:
    module_name, _, attr = str(dotted).rpartition(".")
    try:
        fn = getattr(importlib.import_module(module_name), attr) if module_name else None
    except (ImportError, AttributeError) as err:
        raise fail(f"generator {dotted!r} cannot be imported ({type(err).__name__}: {err})") from None
    if not callable(fn):
        raise fail(f"generator {dotted!r} is not a 'module.function' name")
    return fn


def _check_sprites(src: SpritesSource, fail) -> None:
    fn = _generator(src.generator, fail)
    module = importlib.import_module(fn.__module__)

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
