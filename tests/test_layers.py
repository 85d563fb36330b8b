"""The layers are enforced, not described: `lint-imports` checks pyproject's contracts (pipelines above the
steps, steps above the shared modules, no step importing another, no import circles), and a copy of the
code with one step importing another is refused, naming the import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)})


def test_the_import_contracts_hold():
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout, done.stdout


def _copy(tmp_path: Path) -> Path:
    for name in ("model", "components", "pipelines"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "bundled", "*.yaml"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_a_step_importing_another_step_is_refused(tmp_path):
    root = _copy(tmp_path)
    (root / "components" / "export" / "shortcut.py").write_text(
        "def cases(cfg):\n    from components.evaluate.evaluate import generate_videos\n    return generate_videos\n")
    done = lint(root)
    assert done.returncode != 0
    assert "components.export.shortcut -> components.evaluate.evaluate" in done.stdout, done.stdout


def test_a_shared_module_importing_a_step_and_a_circle_are_refused(tmp_path):
    root = _copy(tmp_path)
    with (root / "components" / "media.py").open("a") as f:  # shared -> step
        f.write("\n\ndef _late():\n    from components.train import plan  # noqa: F401\n")
    with (root / "components" / "sprites" / "spec.py").open("a") as f:  # spec <-> render
        f.write("\n\ndef _circle():\n    from components.sprites import render  # noqa: F401\n")
    done = lint(root)
    assert done.returncode != 0
    assert "components.media -> components.train.plan" in done.stdout, done.stdout
    assert "steps above the shared modules; no step imports another step BROKEN" in done.stdout
    assert "no import circles between sibling modules, at any depth BROKEN" in done.stdout
