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


def test_every_task_is_wired_to_the_cluster_services(tmp_path):
    """In a cluster each step must share the MLflow server, S3 credentials and the data volume (k8s/)."""
    import yaml

    docs = list(yaml.safe_load_all(compile_pipeline(tmp_path / "p.yaml").read_text()))
    platform = next(d for d in docs if "platforms" in d)["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    spec = next(d for d in docs if "deploymentSpec" in d)["deploymentSpec"]["executors"]
    assert set(platform) == set(spec)  # every executor has platform config
    for name, conf in platform.items():
        assert conf["configMapAsEnv"][0]["configMapName"] == "vidcustom-env", name
        assert conf["secretAsEnv"][0]["secretName"] == "vidcustom-s3", name
        assert conf["pvcMount"][0]["mountPath"] == "/data", name
    for name, ex in spec.items():  # steps find their pipeline's MLflow parent run by the job id
        env = {e["name"]: e["value"] for e in ex["container"].get("env", [])}
        assert env.get("VIDCUSTOM_PIPELINE_RUN") == "{{$.pipeline_job_uuid}}", name
