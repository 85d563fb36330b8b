"""Register step: log the checkpoint as pyfunc `vidcustom`, tag the version, set `challenger` and, when the
gate passes, `champion` (MLflow aliases; registry stages are deprecated).

The gate (components/register/gate.py) compares the evaluation with floors, must-beat pairs and the current
champion's metrics (no regression beyond register.tolerance). Its decision and reasons land on the model
version (tags `gate`, `gate_reasons`, the description) and on the step's run (`gate.json`).

Idempotent per checkpoint: every version is tagged with `checkpoint_sha256`, the content hash of the
checkpoint directory; registering a checkpoint whose hash is already a version of the model reuses that
version (new gate decision, tags and aliases applied to it) instead of creating a duplicate.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path

from components.config import RunConfig

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
# Code the pyfunc needs at load time, shipped with the model so a plain `mlflow models serve` works.
CODE_PATHS = [str(REPO / "model"), str(REPO / "components")]
TORCH_REQUIREMENTS = ["torch==2.13.0", "diffusers==0.42.1", "transformers==5.23.0", "safetensors", "av", "pillow",
                      "pydantic>=2", "pandas", "numpy", "pyyaml"]
CHECKPOINT_TAG = "checkpoint_sha256"
METRIC_TAG_PREFIX = "metric."
MAX_TAG_CHARS = 4000  # well under the stores' tag value limits
_CHUNK = 1 << 20


def checkpoint_meta(checkpoint_dir: str | Path) -> dict:
    from model.pipeline import CHECKPOINT_META

    path = Path(checkpoint_dir) / CHECKPOINT_META
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {checkpoint_dir} is not a vidcustom checkpoint")
    return json.loads(path.read_text())


def checkpoint_sha256(checkpoint_dir: str | Path) -> str:
    """Content hash of a checkpoint directory: sha256 over every file, in sorted relative-path order, of
    (path, size, bytes). Nothing is excluded, so any change to weights, configs or vidcustom.json changes it;
    where the directory lives and file timestamps do not."""
    root = Path(checkpoint_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"checkpoint {root} is not a directory")
    files = sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())
    if not files:
        raise FileNotFoundError(f"checkpoint {root} holds no files")
    h = hashlib.sha256()
    for path in files:
        rel = path.relative_to(root).as_posix().encode()
        h.update(len(rel).to_bytes(8, "big") + rel + path.stat().st_size.to_bytes(8, "big"))
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def _metric_tag(value: float) -> str:
    return repr(float(value))  # shortest exact round-trip: the champion comparison reads these back


def version_tags(meta: dict, data_version: str | None, metrics: dict) -> dict[str, str]:
    """Tags from the checkpoint's own record (what was trained), not from the registering step's config."""
    from components.tracking import git_commit

    tags = {"data_version": str(data_version or meta.get("data_version")), "git_commit": git_commit(),
            "preset": str(meta.get("preset")), "method": str(meta.get("method")),
            "attention_design": str(meta.get("attention_design")),
            "training_stage": str(meta.get("training_stage"))}
    tags.update({f"{METRIC_TAG_PREFIX}{k}": _metric_tag(v) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return tags


def metrics_from_tags(tags: dict[str, str]) -> dict[str, float]:
    """A version's `metric.<name>` tags back as floats (unparseable values read as NaN, which fails a rule)."""
    out = {}
    for k, v in tags.items():
        if k.startswith(METRIC_TAG_PREFIX):
            try:
                out[k.removeprefix(METRIC_TAG_PREFIX)] = float(v)
            except ValueError:
                out[k.removeprefix(METRIC_TAG_PREFIX)] = math.nan
    return out


def set_aliases(client, name: str, version: str, champion: bool) -> list[str]:
    aliases = ["challenger"] + (["champion"] if champion else [])
    for alias in aliases:
        client.set_registered_model_alias(name, alias, version)
    return aliases


def find_versions(client, name: str, tags: dict[str, str]) -> list:
    """Versions of registered model `name` carrying all of `tags`, oldest first ([] when the model does
    not exist yet). Uses the registry's tag filter, falling back to listing and filtering client-side."""
    def quote(s: str) -> str:
        return "'" + str(s).replace("'", "\\'") + "'"

    flt = " and ".join([f"name = {quote(name)}"] + [f"tags.`{k}` = {quote(v)}" for k, v in tags.items()])
    try:
        found = _all_versions(client, flt)
    except Exception as err:  # a store without tag filters
        log.debug("tag filter %r not supported (%s); listing versions of %s", flt, err, name)
        found = [v for v in _all_versions(client, f"name = {quote(name)}")
                 if all(v.tags.get(k) == str(val) for k, val in tags.items())]
    return sorted((v for v in found if v.name == name), key=lambda v: int(v.version))


def _all_versions(client, flt: str) -> list:
    out, token = [], None
    while True:
        page = client.search_model_versions(flt, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def current_champion(client, name: str):
    """The version holding `champion` now, or None (no such model, or no champion yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, "champion")
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            return None
        raise


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


def register_or_reuse(client, name: str, existing: list, tags: dict[str, str], log_model,
                      key: tuple[str, ...] = (CHECKPOINT_TAG,)) -> tuple[str, bool]:
    """The version for this checkpoint and whether it already existed: the existing one (its tags
    re-applied), or a new one registered from `log_model()` (returns the logged model's info) with `tags`
    set at creation, so a version never exists without its checkpoint hash.

    Two runs registering the same checkpoint at once both find none and both create one. The registry has
    no unique constraint to lean on, so each creator looks again afterwards and the oldest version with the
    key wins; a later one deletes itself and reuses the winner. Works the same on SQLite and on a server."""
    import mlflow

    if not existing:
        mine = str(mlflow.register_model(log_model().model_uri, name, tags=tags).version)
        same = find_versions(client, name, {k: tags[k] for k in key})
        if not same or str(same[0].version) == mine:
            return mine, False
        log.warning("another run registered checkpoint %s as %s version %s meanwhile: deleting duplicate "
                    "version %s", tags.get(CHECKPOINT_TAG, "?")[:12], name, same[0].version, mine)
        client.delete_model_version(name, mine)
        existing = same
    version = str(existing[0].version)
    log.info("checkpoint %s is already %s version %s: reusing it", tags.get(CHECKPOINT_TAG, "?")[:12], name, version)
    for k, v in tags.items():
        # A version's metric.* tags stay those of its first evaluation: rewriting them on every re-run
        # would let a champion's no-regression baseline drift down by up to the tolerance each time.
        if not k.startswith(METRIC_TAG_PREFIX) or k not in existing[0].tags:
            client.set_model_version_tag(name, version, k, v)
    return version, True


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
    from components.tracking import configure, step_run, version_numbering

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
    tags = version_tags(meta, data_version, metrics) | {f"eval.{k}": str(v) for k, v in evaluation.items()} | {
        CHECKPOINT_TAG: sha, "gate": decision, "gate_reasons": "; ".join(reasons)[:MAX_TAG_CHARS],
        "gate_champion": f"{champ.version}" if champ is not None else "none"}

    with step_run(cfg, "register", data_version):
        version, reused = register_or_reuse(client, name, existing, tags, lambda: mlflow.pyfunc.log_model(
            name="model", python_model=SugarPyfunc(), artifacts={"checkpoint": str(checkpoint_dir)},
            code_paths=CODE_PATHS, signature=signature(),
            input_example=input_example(cfg.model.height, cfg.model.width), pip_requirements=TORCH_REQUIREMENTS))
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
