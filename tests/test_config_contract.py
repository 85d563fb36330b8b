"""One parse of the config, and steps that read only what they declare: the code of each step (and of the
shared functions it hands `cfg` to) reads no section or key beyond components/config.STEP_READS, every
declared read is used, dvc.yaml's stage params list exactly those, its deps name the code each step
imports, and the KFP pipeline hands each step its own config."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from components.config import SHARED_SECTIONS, STEP_READS, load_config

ROOT = Path(__file__).resolve().parents[1]
STEPS = tuple(STEP_READS)
# RunConfig attributes -> the config key they read (Python field names with an alias, and helpers)
ATTRS = {"model": "model", "synthesize": "synthesize", "validate_": "validate", "train": "train",
         "evaluate": "evaluate", "register_": "register", "export": "export", "mlflow": "mlflow",
         "scoring": "scoring", "preset": "preset", "state_dir": "state_dir", "state": "state_dir",
         "state_setting": "state_dir", "tracking_uri": "mlflow", "tracking_setting": "mlflow",
         "dvc_remote": "validate.remote", "step": "step"}
WHOLE = {"to_json", "model_dump", "model_dump_json", "declared", "for_step", "model_copy"}  # the config as sent on


def _is_cfg(node) -> bool:
    return (isinstance(node, ast.Name) and node.id == "cfg") or (
        isinstance(node, ast.Attribute) and node.attr == "cfg" and isinstance(node.value, ast.Name)
        and node.value.id == "self")


class _Reads(ast.NodeVisitor):
    """`cfg.section`, `cfg.section.key`, `s = cfg.section; s.key`, and the names of calls given `cfg`."""

    def __init__(self):
        self.reads: set[str] = set()
        self.calls: set[str] = set()
        self.alias: dict[str, str] = {}

    def visit_Assign(self, node):
        targets, values = node.targets[0], node.value
        pairs = list(zip(targets.elts, values.elts)) if isinstance(targets, ast.Tuple) and isinstance(
            values, ast.Tuple) else [(targets, values)]
        for t, v in pairs:
            if isinstance(t, ast.Name) and isinstance(v, ast.Attribute) and _is_cfg(v.value) and v.attr in ATTRS:
                self.alias[t.id] = ATTRS[v.attr]  # a read only as far as the alias is used
            else:
                self.visit(v)

    def visit_Attribute(self, node):
        v = node.value
        if isinstance(v, ast.Attribute) and _is_cfg(v.value) and v.attr in ATTRS:
            section = ATTRS[v.attr]
            self.reads.add(section if "." in section or node.attr in WHOLE else f"{section}.{node.attr}")
        elif _is_cfg(v) and node.attr in ATTRS:
            self.reads.add(ATTRS[node.attr])
        elif isinstance(v, ast.Name) and v.id in self.alias:
            self.reads.add(self.alias[v.id] if node.attr in WHOLE else f"{self.alias[v.id]}.{node.attr}")
        else:
            self.generic_visit(node)

    def visit_Name(self, node):
        if node.id in self.alias and isinstance(node.ctx, ast.Load):
            self.reads.add(self.alias[node.id])  # a section passed on whole

    def visit_Call(self, node):
        if any(_is_cfg(a) for a in node.args) or any(_is_cfg(k.value) for k in node.keywords):
            f = node.func
            self.calls.add(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
        self.generic_visit(node)


def _visit(tree) -> _Reads:
    v = _Reads()
    v.visit(tree)
    return v


def _shared_functions() -> dict[str, _Reads]:
    """Per function of the shared modules that take a run config: what it reads and which it calls."""
    out = {}
    for path in sorted((ROOT / "components").rglob("*.py")):
        if path.relative_to(ROOT / "components").parts[0] in STEPS + ("compare",):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any(a.arg == "cfg" for a in node.args.args):
                out[node.name] = _visit(node)
    return out


SHARED = _shared_functions()


def _closure(calls: set[str]) -> set[str]:
    reads, seen, todo = set(), set(), list(calls)
    while todo:
        name = todo.pop()
        if name in seen or name not in SHARED:
            continue
        seen.add(name)
        reads |= SHARED[name].reads
        todo += SHARED[name].calls
    return reads


def step_reads(step: str) -> set[str]:
    reads, calls = set(), set()
    for path in sorted((ROOT / "components" / step).rglob("*.py")):
        v = _visit(ast.parse(path.read_text()))
        reads |= v.reads
        calls |= v.calls
    return reads | _closure(calls)


def _covered(read: str, declared: set[str]) -> bool:
    section = read.split(".")[0]
    return read in declared or section in declared or section == "step"


@pytest.mark.parametrize("step", STEPS)
def test_a_step_reads_only_what_it_declares_and_uses_what_it_declares(step):
    declared = set(SHARED_SECTIONS) | set(STEP_READS[step])
    reads = step_reads(step)
    undeclared = sorted(r for r in reads if not _covered(r, declared))
    assert not undeclared, f"{step} reads {undeclared}: add them to STEP_READS[{step!r}] (and dvc.yaml) or stop"
    unused = sorted(d for d in STEP_READS[step] if not any(r == d or r.startswith(d + ".") for r in reads))
    assert not unused, f"STEP_READS[{step!r}] declares {unused}, which the step never reads"


def test_the_analysis_sees_reads_through_aliases_and_shared_functions():
    assert {"evaluate.seed", "synthesize.caption_colour"} <= step_reads("export")  # via heldout_specs_for
    assert "validate.max_caption_chars" in step_reads("synthesize")  # self.cfg.validate_.max_caption_chars
    assert "mlflow" in step_reads("register")  # step_run -> resolve_store reads mlflow.*


def test_a_step_config_holds_only_its_declared_parts():
    cfg = load_config(ROOT / "params.yaml")
    export = yaml.safe_load(cfg.for_step("export"))
    assert set(export) == {*SHARED_SECTIONS, "step", "export", "evaluate", "synthesize"}
    assert set(export["evaluate"]) == {"seed", "num_inference_steps"}
    assert "model" not in export and "train" not in export
    with pytest.raises(ValueError, match="unknown step 'nosuch'"):
        cfg.for_step("nosuch")


def test_dvc_stages_list_exactly_what_each_step_reads_and_the_code_it_imports():
    import grimp

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert set(stages) == set(STEPS)
    graph = grimp.build_graph("components", "model", include_external_packages=False, cache_dir=None)
    for step in STEPS:
        stage = stages[step]
        assert sorted(stage["params"]) == sorted(["preset", *STEP_READS[step]]), step
        imported = graph.find_upstream_modules(f"components.{step}", as_package=True)
        code = {f"components/{m.split('.')[1]}" for m in imported if m.startswith("components.")}
        code = {c if (ROOT / c).is_dir() else c + ".py" for c in code} | {f"components/{step}"}
        if any(m == "model" or m.startswith("model.") for m in imported):
            code.add("model")
        missing = sorted(code - set(stage["deps"]))
        assert not missing, f"dvc.yaml stage {step} lacks code deps {missing}"


def test_each_kfp_step_gets_its_own_config(tmp_path):
    from pipelines.compile import compile_pipeline

    docs = list(yaml.safe_load_all(compile_pipeline(tmp_path / "p.yaml").read_text()))
    tasks = docs[0]["root"]["dag"]["tasks"]
    for step in STEPS:
        given = tasks[step]["inputs"]["parameters"]["config_json"]["taskOutputParameter"]
        assert given == {"outputParameterKey": step, "producerTask": "resolve-config"}, step
