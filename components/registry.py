"""The model registry's rules, shared by the register and export steps: a checkpoint's content hash and
record, the tags every version carries, aliases, register-or-reuse (one version per checkpoint, also with
runs racing), and the pip requirements a logged model ships with.

Idempotent per checkpoint: every version is tagged with `checkpoint_sha256`, the content hash of the
checkpoint directory; registering a checkpoint whose hash is already a version of the model reuses that
version (new tags and aliases applied to it) instead of creating a duplicate.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import math
from pathlib import Path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
# Code the pyfunc needs at load time, shipped with the model so a plain `mlflow models serve` works.
CODE_PATHS = [str(REPO / "model"), str(REPO / "components")]
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


def version_tags(meta: dict, model_config, data_version: str | None, metrics: dict) -> dict[str, str]:
    """Tags from the checkpoint's own record (what was trained: its metadata and its model config, a
    ModelConfig or its dict), not from the registering step's config."""
    from components.tracking import git_commit, model_tags

    # The run preset that trained it (the train step records it); the model preset otherwise.
    preset = meta.get("preset") or (model_config.get("preset") if isinstance(model_config, dict) else model_config.preset)
    tags = {"data_version": str(data_version or meta.get("data_version")), "git_commit": git_commit(),
            "preset": str(preset), **model_tags(model_config), "training_stage": str(meta.get("training_stage"))}
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


def requirement_pins(*dists: str) -> list[str]:
    """`name==version` for each distribution as installed here, so a served model gets the versions it was
    trained and tested with (a local build tag such as torch's `+cpu` is dropped: pip resolves it per
    platform)."""
    return [f"{d}=={importlib.metadata.version(d).split('+')[0]}" for d in dists]


TORCH_REQUIREMENTS_DISTS = ("torch", "diffusers", "transformers", "safetensors", "av", "pillow", "pydantic", "pandas",
                            "numpy", "pyyaml")
ONNX_REQUIREMENTS_DISTS = ("onnxruntime", "transformers", "numpy", "pandas", "av", "pillow", "pydantic")


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
