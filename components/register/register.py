"""Register step: log the checkpoint as pyfunc `vidcustom`, tag the version, set `challenger` and, when the
gate passes, `champion` (MLflow aliases; registry stages are deprecated).

The gate (components/register/gate.py) compares the evaluation with floors, must-beat pairs and the current
champion's metrics (no regression beyond register.tolerance). Its decision and reasons land on the model
version (tags `gate`, `gate_reasons`, the description) and on the step's run (`gate.json`).

Idempotent per checkpoint (components/registry.py): registering a checkpoint whose content hash is already a
version of the model reuses that version (new gate decision, tags and aliases applied to it).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from components.config import RunConfig
from components.registry import (CHECKPOINT_TAG, CODE_PATHS, MAX_TAG_CHARS, METRIC_TAG_PREFIX,
                                 TORCH_REQUIREMENTS_DISTS, checkpoint_meta, checkpoint_sha256, current_champion,
                                 find_versions, metrics_from_tags, register_or_reuse, requirement_pins, set_aliases,
                                 version_tags)

log = logging.getLogger(__name__)

EVALUATION_FILE = "evaluation.json"  # written by the evaluate step: what the metrics were measured on
COMPARABLE_KEYS = ("benchmark", "plumbing_only", "text_video_model", "dynamic_degree_flow")


def evaluation_identity(evaluation_dir: str | Path) -> dict:
    """The evaluate step's record of what its metrics were measured on ({} for older evaluations)."""
    path = Path(evaluation_dir) / EVALUATION_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def comparability_problem(champ, evaluation: dict) -> str | None:
    """A reason when the champion's metrics were measured on another benchmark or with other judges."""
    if champ is None or not evaluation:
        return None
    for key in COMPARABLE_KEYS:
        theirs = champ.tags.get(f"eval.{key}")
        if theirs is not None and key in evaluation and str(evaluation[key]) != theirs:
            return (f"not comparable with the champion v{champ.version}: its metrics were measured with {key}="
                    f"{theirs}, these with {key}={evaluation[key]}; re-evaluate both the same way")
    return None


def gate_description(passed: bool, reasons: list[str], rules: dict, sha: str, champion: str | None) -> str:
    lines = [f"Gate {'PASSED: champion' if passed else 'FAILED: challenger only'} "
             f"(champion at registration: {champion or 'none'}).", "Reasons:"]
    lines += [f"- {r}" for r in reasons]
    lines += ["Rules: " + json.dumps(rules, sort_keys=True), f"Checkpoint sha256: {sha}"]
    return "\n".join(lines)


def run(checkpoint_dir: str | Path, evaluation_dir: str | Path, cfg: RunConfig, data_version: str | None = None) -> dict:
    """Register (or reuse) the version of `register.model_name` for this checkpoint and apply the gate.

    Returns model_name, version, champion (whether `champion` points at this version afterwards), aliases
    (this version's aliases afterwards), reasons, model_uri, plus gate ('passed'/'failed'), passed,
    reused, checkpoint_sha256, previous_champion (the champion version compared against, or None),
    version_tags (the version's metric.* and gate tags, which export carries over without reading the
    registry) and numbering ("server", or "buffer" when the version number is the offline buffer's).
    """
    import mlflow

    from components.register.gate import evaluate_gate
    from components.register.pyfunc import SugarPyfunc
    from components.serving import input_example, signature
    from components.tracking import configure, model_tags, step_run, version_numbering

    metrics_file = Path(evaluation_dir) / "metrics.json"
    if not metrics_file.is_file():
        raise FileNotFoundError(f"{metrics_file} is missing: pass the evaluate step's output directory")
    metrics = json.loads(metrics_file.read_text())
    meta = checkpoint_meta(checkpoint_dir)
    sha = checkpoint_sha256(checkpoint_dir)
    rc = cfg.register_
    name = rc.model_name

    configure(cfg)
    client = mlflow.MlflowClient()
    existing = find_versions(client, name, {CHECKPOINT_TAG: sha})
    champ = current_champion(client, name)
    evaluation = evaluation_identity(evaluation_dir)
    no_regression, notes = list(rc.no_regression), []
    if champ is not None and existing and str(existing[0].version) == str(champ.version):
        # Re-registering the champion's own checkpoint: comparing it with itself means nothing.
        no_regression, champ = [], None
        notes.append(f"this checkpoint is the current champion v{existing[0].version}: no-regression not applied")
    champion_metrics = metrics_from_tags(champ.tags) if champ is not None else None
    effect_metric = evaluation.get("identity_metric") if rc.image_effect == "auto" else rc.image_effect
    if rc.image_effect == "auto" and effect_metric is None:
        effect_metric = "sprites_identity"  # an evaluation without the ablation: the rule fails and says why
    passed, reasons = evaluate_gate(metrics, rc.gate, rc.must_beat, champion_metrics, no_regression, rc.tolerance,
                                    champion=f"v{champ.version}" if champ is not None else None,
                                    image_effect=effect_metric, min_image_effect=rc.min_image_effect)
    mismatch = comparability_problem(champ, evaluation) if no_regression else None
    if mismatch:  # metrics from another benchmark or other judges are not a baseline
        reasons = [r for r in reasons if not r.startswith("all rules hold")] + [mismatch]
        passed = False
    reasons = notes + reasons
    decision = "passed" if passed else "failed"
    rules = {"floors": rc.gate, "must_beat": rc.must_beat, "no_regression": rc.no_regression,
             "tolerance": rc.tolerance, "image_effect": effect_metric, "min_image_effect": rc.min_image_effect}
    trained = meta["model_config"]  # the checkpoint's record of what was trained
    tags = version_tags(meta, trained, data_version, metrics) | {f"eval.{k}": str(v) for k, v in evaluation.items()} | {
        CHECKPOINT_TAG: sha, "gate": decision, "gate_reasons": "; ".join(reasons)[:MAX_TAG_CHARS],
        "gate_champion": f"{champ.version}" if champ is not None else "none"}

    with step_run(cfg, "register", data_version, model=model_tags(trained)):
        version, reused = register_or_reuse(client, name, existing, tags, lambda: mlflow.pyfunc.log_model(
            name="model", python_model=SugarPyfunc(), artifacts={"checkpoint": str(checkpoint_dir)},
            code_paths=CODE_PATHS, signature=signature(trained["sampler"]["num_inference_steps"]),
            input_example=input_example(trained["height"], trained["width"]),
            pip_requirements=requirement_pins(*TORCH_REQUIREMENTS_DISTS)))
        client.update_model_version(name, version, description=gate_description(
            passed, reasons, rules, sha, f"v{champ.version}" if champ is not None else None))
        set_aliases(client, name, version, passed)
        registered = client.get_model_version(name, version)
        aliases = sorted(registered.aliases)
        gate = {"passed": passed, "decision": decision, "reasons": reasons, **rules,
                "champion_compared": None if champ is None else {"version": str(champ.version),
                                                                  "metrics": champion_metrics},
                "model_name": name, "version": version, "reused": reused, CHECKPOINT_TAG: sha}
        mlflow.log_dict(gate, "gate.json")
        mlflow.set_tags({"gate": decision, "model_version": version, "reused": str(reused).lower(),
                         CHECKPOINT_TAG: sha})
        numbering = version_numbering(cfg, name, version)
    carried = {k: v for k, v in registered.tags.items() if k.startswith(METRIC_TAG_PREFIX) or k in ("gate", "gate_reasons")}
    return {"model_name": name, "version": version, "champion": "champion" in aliases, "aliases": aliases,
            "reasons": reasons, "model_uri": f"models:/{name}/{version}", "gate": decision, "passed": passed,
            "reused": reused, CHECKPOINT_TAG: sha,
            "previous_champion": None if champ is None else str(champ.version),
            "version_tags": carried, "numbering": numbering}
