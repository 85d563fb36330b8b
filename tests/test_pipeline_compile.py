"""The KFP pipeline compiles, and the compiled YAML equals the reviewed snapshot (sdkVersion stripped)."""

import re

from pipelines.compile import SNAPSHOT, compile_pipeline


def _strip(text: str) -> str:
    return re.sub(r"sdkVersion: .*\n", "", text)


def test_compiled_pipeline_matches_snapshot(tmp_path):
    out = compile_pipeline(tmp_path / "p.yaml")
    text = out.read_text()
    for step in ("synthesize", "validate", "train", "evaluate", "register", "export"):
        assert f"comp-{step}" in text
    assert _strip(text) == _strip(SNAPSHOT.read_text()), "run `vidcustom compile` and review the YAML diff"


def test_cli_help_is_fast_and_lists_commands():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "pipelines.cli", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("run", "compile", "submit", "data"):
        assert cmd in out.stdout
