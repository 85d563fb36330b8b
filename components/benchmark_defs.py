"""Benchmark definitions: the schema of the YAML data files in `benchmark_definitions/`, loading one by name or
path, and the `Benchmark` it becomes. Shared layer: imports no step package (no torch either), so the config
can check `evaluate.benchmark` at start-up; what only the evaluate step can check (the metric names it
computes, a sprites benchmark's generator) and turning a benchmark into cases live in
`components.evaluate.benchmarks`.

Two kinds, told apart by `kind`:

- "images": subjects (id, class noun, category, image file) and prompts per category. Every subject gets
  the prompts of its category; a prompt is a template with a `{class}` (or `{}`) placeholder that becomes
  the subject's class noun, so metrics see the natural prompt (DreamBench's "sks dog" -> "dog";
  METHOD_NOTES §1.6, §3.5). Prompts may be grouped (VideoMaker's clothing/action/... groups).
- "sprites": the procedural benchmark; the YAML names the spec generator ("module.function"), its default
  count and seed, and the category / change / motion mix it draws.

Shipped: `sprites`, `sugar_dreambench`, `videomaker_human`, `videomaker_object` (`available_benchmarks()`).

    bench = load_benchmark("sugar_dreambench")   # or a path to a definition YAML
    bench.kind, bench.num_cases                  # "images", 540

A definition that does not fit the schema raises `BenchmarkError` naming the file, the field and the fix.
"""

from __future__ import annotations

import os
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError,
                      field_validator, model_validator)

KINDS = ("sprites", "images")
PLACEHOLDERS = ("{class}", "{}")
DEFINITIONS = "benchmark_definitions"  # package data of `components`
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # subject ids name files and case ids
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
_BRACES = re.compile(r"\{[^{}]*\}")
_RARE_TOKEN = re.compile(r"\bsks\b", re.IGNORECASE)


class BenchmarkError(ValueError):
    """A benchmark definition that cannot be loaded or expanded; the message says what and where."""


# ---------------------------------------------------------------------------------------------------
# The validated benchmark (what the evaluate step and the config use)
# ---------------------------------------------------------------------------------------------------

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


def substitute(template: str, class_noun: str) -> str:
    """Replace the `{class}` / `{}` placeholder(s) by the class noun."""
    return template.replace("{class}", class_noun).replace("{}", class_noun)


# ---------------------------------------------------------------------------------------------------
# Schema of a definition file
# ---------------------------------------------------------------------------------------------------

def _word(value: str) -> str:
    if not _ID.match(value):
        raise ValueError(f"{value!r} must be a word (letters, digits, _ . -)")
    return value


Word = Annotated[str, AfterValidator(_word)]


class _Schema(BaseModel):
    # strict: no coercion (24.0, "24" or true are not a num_specs); forbid: a misspelt key is an error, not ignored
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SubjectDef(_Schema):
    id: Word
    class_noun: str = Field(alias="class")
    category: str
    image: str

    @model_validator(mode="before")
    @classmethod
    def _exact_keys(cls, data: Any) -> Any:
        keys = ["category", "class", "id", "image"]
        if isinstance(data, dict) and set(data) != set(keys):
            raise ValueError(f"a subject must have exactly the keys {keys}, got {sorted(map(str, data))}")
        return data

    @field_validator("class_noun")
    @classmethod
    def _noun(cls, value: str) -> str:
        if not value.strip() or "{" in value:
            raise ValueError(f"class must be a non-empty noun, got {value!r}")
        return value.strip()

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(f"image must be a file name, got {value!r}")
        rel = Path(value)
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"image {value!r} must be a path inside the images folder")
        return value


def _check_template(template: str, where: str) -> str:
    if not template.strip():
        raise ValueError(f"{where}a prompt must be a non-empty string, got {template!r}")
    others = [b for b in _BRACES.findall(template) if b not in PLACEHOLDERS]
    if others or template.count("{") != template.count("}"):
        raise ValueError(f"{where}prompt {template!r} has unknown placeholder(s) "
                         f"{others or 'or unbalanced braces'}; only {{class}} and {{}} are substituted")
    if not any(p in template for p in PLACEHOLDERS):
        raise ValueError(f"{where}prompt {template!r} has no class placeholder; write {{class}} (or {{}}) where "
                         "the subject's class noun goes")
    if _RARE_TOKEN.search(template):
        raise ValueError(f"{where}prompt {template!r} contains the rare token 'sks'; benchmarks use the class "
                         "noun alone (METHOD_NOTES §1.6, §3.5)")
    return template


def _prompts_shape(value: Any) -> str:
    return "groups" if isinstance(value, dict) else "templates"


# templates, or group -> templates; tagged so that a bad template is reported once, not once per shape
Prompts = Annotated[Union[Annotated[list[str], Tag("templates")], Annotated[dict[str, list[str]], Tag("groups")]],
                    Discriminator(_prompts_shape)]
_PROMPTS_TAGS = ("templates", "groups")


class CategoryDef(_Schema):
    description: str | None = None
    prompts: Prompts

    @field_validator("prompts", mode="before")
    @classmethod
    def _shape(cls, value: Any) -> Any:
        if not isinstance(value, (list, dict)):
            raise ValueError(f"prompts must be a list of templates or a mapping group -> list, got "
                             f"{type(value).__name__}")
        return value

    @field_validator("prompts")
    @classmethod
    def _templates(cls, value: list[str] | dict[str, list[str]]) -> list[str] | dict[str, list[str]]:
        groups = [(None, value)] if isinstance(value, list) else list(value.items())
        if not groups:
            raise ValueError("prompts must not be empty")
        texts = []
        for group, templates in groups:
            where = f"group {group!r}: " if group is not None else ""
            if not templates:
                raise ValueError(f"{where}prompts must be a non-empty list")
            texts += [_check_template(t, where) for t in templates]
        dup = sorted({t for t in texts if texts.count(t) > 1})
        if dup:
            raise ValueError(f"duplicate prompt(s) {dup}")
        return value

    def to_prompts(self) -> tuple[Prompt, ...]:
        if isinstance(self.prompts, list):
            return tuple(Prompt(t) for t in self.prompts)
        return tuple(Prompt(t, group) for group, templates in self.prompts.items() for t in templates)


class _BenchmarkDef(_Schema):
    name: str
    description: str | None = None
    metrics: list[str] = Field(min_length=1)  # names checked by the evaluate step, which computes them

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must be a non-empty string")
        return value

    @field_validator("metrics")
    @classmethod
    def _no_duplicates(cls, value: list[str]) -> list[str]:
        dup = sorted({m for m in value if value.count(m) > 1})
        if dup:
            raise ValueError(f"duplicate metric(s) {dup}")
        return value


class ImagesBenchmarkDef(_BenchmarkDef):
    kind: Literal["images"]
    categories: dict[Word, CategoryDef] = Field(min_length=1)
    subjects: list[SubjectDef] = Field(min_length=1)

    @model_validator(mode="after")
    def _subjects_fit_categories(self) -> ImagesBenchmarkDef:
        seen: set[str] = set()
        for i, s in enumerate(self.subjects):
            if s.id in seen:
                raise ValueError(f"subjects[{i}].id: duplicate subject id {s.id!r}; subject ids must be unique")
            seen.add(s.id)
            if s.category not in self.categories:
                raise ValueError(f"subjects[{i}].category: subject {s.id!r} has unknown category {s.category!r}; "
                                 f"categories: {list(self.categories)}")
        empty = [c for c in self.categories if c not in {s.category for s in self.subjects}]
        if empty:
            raise ValueError(f"categories: categor{'y' if len(empty) == 1 else 'ies'} {empty} "
                             f"ha{'s' if len(empty) == 1 else 've'} no subjects; add subjects or remove it")
        return self

    def to_benchmark(self, source: str | None) -> Benchmark:
        subjects = tuple(Subject(s.id, s.class_noun, s.category, s.image) for s in self.subjects)
        prompts = {c: body.to_prompts() for c, body in self.categories.items()}
        return Benchmark(self.name, self.kind, subjects, prompts, tuple(self.metrics), self.description or "",
                         source)


class SpritesBenchmarkDef(_BenchmarkDef):
    kind: Literal["sprites"]
    generator: str  # "module.function"; imported (and its mix checked) by the evaluate step
    num_specs: int = Field(ge=1)
    seed: int
    categories: list[str] = Field(min_length=1)
    changes: list[str | None] = Field(min_length=1)
    motions: list[str] = Field(min_length=1)

    @field_validator("generator")
    @classmethod
    def _dotted(cls, value: str) -> str:
        if not _DOTTED.match(value):
            raise ValueError(f"generator {value!r} is not a 'module.function' name, e.g. "
                             "components.synthesize.sprites.heldout_specs")
        return value

    def to_benchmark(self, source: str | None) -> Benchmark:
        src = SpritesSource(self.generator, self.num_specs, self.seed, tuple(self.categories), tuple(self.changes),
                            tuple(self.motions))
        return Benchmark(self.name, self.kind, (), {}, tuple(self.metrics), self.description or "", source, src)


BenchmarkDef = Annotated[Union[SpritesBenchmarkDef, ImagesBenchmarkDef], Field(discriminator="kind")]
_MODELS: dict[str, type[_BenchmarkDef]] = {"sprites": SpritesBenchmarkDef, "images": ImagesBenchmarkDef}
_ADAPTER = TypeAdapter(BenchmarkDef)


# ---------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------

def definitions_dir() -> Path:
    """The shipped definitions (package data of `components`)."""
    from importlib.resources import files

    return Path(str(files("components") / DEFINITIONS))


def available_benchmarks() -> list[str]:
    return sorted(p.stem for p in definitions_dir().glob("*.yaml"))


def definition_path(name_or_path: str | os.PathLike) -> Path:
    """The YAML of a shipped benchmark name, or the given path; BenchmarkError if there is none."""
    text = str(name_or_path)
    if isinstance(name_or_path, os.PathLike) or text.endswith((".yaml", ".yml")) or os.sep in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise BenchmarkError(f"benchmark definition {path} does not exist")
        return path
    path = definitions_dir() / f"{text}.yaml"
    if not path.is_file():
        raise BenchmarkError(f"unknown benchmark {text!r}; available: {', '.join(available_benchmarks())} "
                             "(or give the path of a definition YAML)")
    return path


def load_benchmark(name_or_path: str | os.PathLike) -> Benchmark:
    """A shipped benchmark by name (`available_benchmarks()`), or a definition YAML by path, checked against
    the schema. The evaluate step's `components.evaluate.benchmarks.load_benchmark` checks more (metric names,
    the sprites generator); use that one to run a benchmark."""
    path = definition_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise BenchmarkError(f"{path}: not valid YAML ({err})") from None
    return parse_benchmark(data, source=str(path))


def parse_benchmark(data: Any, source: str = "<definition>") -> Benchmark:
    """Validate a definition (the parsed YAML mapping) against the schema and build the Benchmark."""
    if not isinstance(data, dict):
        raise BenchmarkError(f"{source}: a definition is a mapping (name, kind, metrics, ...), got "
                             f"{type(data).__name__}")
    try:
        definition = _ADAPTER.validate_python(data)
    except ValidationError as err:
        problems = [_problem(e, data) for e in err.errors()]
        head = f"{source}: " if len(problems) == 1 else f"{source}: {len(problems)} problems: "
        raise BenchmarkError(head + "; ".join(problems)) from None
    return definition.to_benchmark(source)


# ---------------------------------------------------------------------------------------------------
# ValidationError -> one line per problem: the field, what is wrong, the fix
# ---------------------------------------------------------------------------------------------------

def _problem(e: dict, data: dict) -> str:
    kind = data.get("kind")
    if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return f"kind must be one of {KINDS}, got {kind!r}; set kind to the benchmark's kind"
    loc = list(e["loc"])
    if loc and loc[0] == kind:  # the discriminated union puts the tag first
        loc = loc[1:]
    loc = [p for i, p in enumerate(loc) if not (i and loc[i - 1] == "prompts" and p in _PROMPTS_TAGS)]  # and here
    where = _path(loc)
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "value_error":  # our validators say what is wrong and how to fix it
        return msg if not where or msg.startswith(where) else f"{where}: {msg}"
    if e["type"] == "extra_forbidden":
        allowed = _allowed_keys(_MODELS.get(kind), loc[:-1])
        parent = _path(loc[:-1])
        return (f"unknown key {loc[-1]!r}" + (f" in {parent}" if parent else f" for {_a(kind)} benchmark")
                + (f"; allowed: {allowed}" if allowed else "") + "; remove it or fix its spelling")
    if e["type"] == "missing":
        return f"{where}: required key missing; add it" + (f" ({_a(kind)} benchmark needs {loc[-1]!r})"
                                                           if len(loc) == 1 else "")
    return f"{where}: {msg} (got {e.get('input')!r})"  # pydantic's message says what the value should be


def _a(kind: Any) -> str:
    return f"{'an' if str(kind)[:1] in 'aeiou' else 'a'} {kind!r}"


def _path(loc: list) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (the key)"
        else:
            out += f".{part}" if out else str(part)
    return out


def _allowed_keys(model: Any, loc: list) -> list[str]:
    """The keys of the schema model at `loc` (for an unknown-key message); [] if it cannot be told."""
    tp = model
    for part in loc:
        tp = _model_in(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = next((f for n, f in tp.model_fields.items() if (f.alias or n) == part), None)
            if field is None:
                return []
            tp = field.annotation
        elif get_origin(tp) in (list, tuple, dict):
            tp = get_args(tp)[-1]
        else:
            return []
    tp = _model_in(tp)
    if not (isinstance(tp, type) and issubclass(tp, BaseModel)):
        return []
    return sorted(f.alias or n for n, f in tp.model_fields.items())


def _model_in(tp: Any) -> Any:
    """Through Annotated[...] and X | None to the type that holds fields or items."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp
