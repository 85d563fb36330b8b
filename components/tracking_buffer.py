"""The local MLflow buffer for runs logged while the tracking server is unreachable, and their upload.

When a step's server stays unreachable after `mlflow.retries` tries and `mlflow.offline=buffer` (the
default), the step logs to

    <state>/mlflow-buffer/mlflow.db      an SQLite MLflow store (tracking and model registry)
    <state>/mlflow-buffer/mlartifacts/   its artifacts (runs' and logged models')
    <state>/mlflow-buffer/pending.json   the manifest: every buffered run (target server, experiment,
                                         step, pipeline run, parent) and model version, and where each
                                         went once synced

exactly as it would to the server (the step code does not know), so nothing is lost.
`vidcustom mlflow sync [--tracking-uri URI]` (`sync()` here) uploads what is pending: runs with their
params, full metric histories (steps and timestamps), tags, artifacts, dataset inputs, logged models and
parent/child relation, then the registry operations. A buffered pipeline parent is merged into the
server's parent of the same pipeline execution when that exists (steps that ran while the server was
up). Every uploaded run carries `vidcustom.synced_from` = its buffer run id; the manifest and a
`vidcustom.synced_to` tag on the buffered run mark it synced, so a second sync uploads nothing, and an
upload cut off halfway is found by that tag and redone.

Registry operations while offline are buffered, not refused: the register and export steps register
versions, tag them and set aliases in the buffer's own registry; sync recreates each version on the
server (renumbered: `source_model` tags follow) with its tags and description, then its aliases:
  - `champion` only where the server has no champion yet, or its champion is the very version the
    offline gate compared against (tag `gate_champion`, mapped to the server's numbering); an exported
    version (tag `source_model`) gets it only where its source version holds it on the server. Otherwise
    the gate decided without seeing the server's champion: the alias is left as it is and reported under
    `aliases_skipped`; re-run the register step against the server to re-decide.
  - any other alias (`challenger`) where the server has none or the server's holder is older than the
    buffered version.
Runs still RUNNING in the buffer (a step in progress, or one killed) wait for a later sync unless
include_running; pipeline parents are always synced and later syncs carry their status forward.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

BUFFER_DIRNAME = "mlflow-buffer"
MANIFEST = "pending.json"
BUFFERED_FOR_TAG = "vidcustom.buffered_for"  # on buffered runs: the server they were meant for
SYNCED_FROM_TAG = "vidcustom.synced_from"  # on uploaded runs/logged models/versions: their buffer id
SYNC_COMPLETE_TAG = "vidcustom.sync_complete"  # on uploaded runs: every part arrived
SYNCED_TO_TAG = "vidcustom.synced_to"  # on buffered runs: "<server URI> <server run id>"
BUFFERED_CREATED_TAG = "vidcustom.buffered_created"  # on uploaded versions: creation time (ms) in the buffer
GATE_CHAMPION_TAG = "gate_champion"  # register: the champion version the gate compared against, or "none"
SOURCE_MODEL_TAG = "source_model"  # export: "<torch model name>/<version>"
CHAMPION = "champion"
_NOT_COPIED = {"mlflow.parentRunId", SYNCED_TO_TAG, SYNCED_FROM_TAG, SYNC_COMPLETE_TAG}


class TrackingBufferedWarning(UserWarning):
    """A step logged to the local buffer because its tracking server was unreachable."""


def buffer_dir(state: str | Path) -> Path:
    return Path(state) / BUFFER_DIRNAME


def buffer_uri(state: str | Path) -> str:
    return f"sqlite:///{buffer_dir(state) / 'mlflow.db'}"


def manifest_path(state: str | Path) -> Path:
    return buffer_dir(state) / MANIFEST


def is_buffer_uri(uri: str, state: str | Path) -> bool:
    return uri == buffer_uri(state)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@contextmanager
def _manifest(state: str | Path):
    """Read-modify-write pending.json under an exclusive lock (steps and sync may touch it at once)."""
    path = manifest_path(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(MANIFEST + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = _read_manifest(path)
        yield data
        tmp = path.with_name(f"{MANIFEST}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(tmp, path)


def _read_manifest(path: Path) -> dict:
    data: dict = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except ValueError:  # a damaged manifest: the buffer store itself still has every run
            log.warning("%s is unreadable; rebuilding it from the buffer store", path)
    data.setdefault("version", 1)
    data["buffer_store"] = buffer_uri(path.parent.parent)
    data.setdefault("runs", {})
    data.setdefault("model_versions", {})
    return data


def load_manifest(state: str | Path) -> dict:
    return _read_manifest(manifest_path(state))


def activate(cfg, target_uri: str, err: BaseException) -> str:
    """Switch this process to the buffer store (warning that it does); returns the buffer's URI."""
    state = cfg.state
    with _manifest(state):
        pass  # creates the directory and pending.json
    cause = f"is unreachable after {getattr(err, 'tries', cfg.mlflow.retries)} tries ({getattr(err, 'last', err)})"
    msg = (f"MLflow tracking server {target_uri} {cause}: logging to the local buffer {buffer_dir(state)} "
           f"instead (mlflow.offline=buffer). Nothing is lost; when the server is back, upload with "
           f"`vidcustom mlflow sync` (pending runs: {manifest_path(state)}).")
    log.warning(msg)
    warnings.warn(msg, TrackingBufferedWarning, stacklevel=3)
    return buffer_uri(state)


def record_run(state: str | Path, run, target_uri: str, experiment: str | None = None) -> None:
    """List a buffered run (an mlflow Run or ActiveRun) in pending.json."""
    tags = run.data.tags
    entry = {"target_uri": target_uri, "experiment": experiment, "experiment_id": run.info.experiment_id,
             "step": tags.get("vidcustom.step"), "pipeline_run": tags.get("vidcustom.pipeline_run"),
             "parent_run_id": tags.get("mlflow.parentRunId"), "run_name": run.info.run_name}
    with _manifest(state) as m:
        old = m["runs"].get(run.info.run_id, {})
        m["runs"][run.info.run_id] = {**old, **{k: v for k, v in entry.items() if v is not None or k not in old},
                                      "buffered_at": old.get("buffered_at", _now()), "synced": old.get("synced", {})}


def record_model_versions(state: str | Path, client, run_id: str, target_uri: str) -> None:
    """List the model versions a buffered run registered in pending.json (their aliases are read at sync)."""
    try:
        versions = client.search_model_versions(f"run_id = '{run_id}'")
        with _manifest(state) as m:
            for v in versions:
                old = m["model_versions"].get(f"{v.name}/{v.version}", {})
                m["model_versions"][f"{v.name}/{v.version}"] = {
                    "name": v.name, "version": str(v.version), "run_id": run_id, "target_uri": target_uri,
                    "recorded_at": old.get("recorded_at", _now()), "synced": old.get("synced", {})}
    except Exception as err:  # noqa: BLE001 - sync finds the versions in the buffer registry anyway
        log.warning("could not list run %s's model versions in %s: %s", run_id, manifest_path(state), err)


# ---------------------------------------------------------------------------------------------- sync


def _local_path(uri: str) -> Path | None:
    from mlflow.utils.file_utils import local_file_uri_to_path

    if uri.startswith("file:") or uri.startswith("/"):
        return Path(local_file_uri_to_path(uri))
    return None


def _has_files(path: Path | None) -> bool:
    return path is not None and path.is_dir() and any(p.is_file() for p in path.rglob("*"))


def _all_runs(src) -> list:
    from mlflow.entities import ViewType

    exp_ids = [e.experiment_id for e in src.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    runs, token = [], None
    while exp_ids:
        page = src.search_runs(exp_ids, max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            break
    return runs


def _chunks(items: list, n: int):
    for i in range(0, len(items), n):
        yield items[i:i + n]


class _Target:
    """One destination server: its client and experiment ids, checked once."""

    def __init__(self, uri: str, retries: int, wait_s: float):
        from mlflow import MlflowClient

        from .tracking import TrackingServerUnreachable, _check_server

        try:
            _check_server(uri, retries, wait_s)
        except TrackingServerUnreachable as err:
            raise RuntimeError(f"cannot sync: {err}. Start it (check `curl {uri.rstrip('/')}/health`) or pass "
                               "--tracking-uri; the buffer is kept as it is.") from None
        self.uri = uri
        self.client = MlflowClient(uri, uri)
        self._experiments: dict[str, str] = {}

    def experiment_id(self, name: str) -> str:
        from .tracking import ensure_experiment

        if name not in self._experiments:
            self._experiments[name] = ensure_experiment(self.client, name, self.uri)
        return self._experiments[name]


class _Sync:
    def __init__(self, state: str | Path, tracking_uri: str | None, include_running: bool, retries: int,
                 wait_s: float):
        from mlflow import MlflowClient

        self.state, self.override, self.include_running = state, tracking_uri, include_running
        self.retries, self.wait_s = retries, wait_s
        uri = buffer_uri(state)
        self.src = MlflowClient(uri, uri)
        self.targets: dict[str, _Target] = {}
        self.manifest = load_manifest(state)
        self.exp_names: dict[str, str] = {}
        self.result = {"buffer": str(buffer_dir(state)), "uploaded_runs": [], "merged_parents": [],
                       "updated_parents": [], "model_versions": [], "aliases": [], "aliases_skipped": [],
                       "pending": [], "already_synced": 0}

    # -- helpers -------------------------------------------------------------------------------------
    def target(self, uri: str) -> _Target:
        if uri not in self.targets:
            self.targets[uri] = _Target(uri, self.retries, self.wait_s)
        return self.targets[uri]

    def exp_name(self, exp_id: str) -> str:
        if exp_id not in self.exp_names:
            self.exp_names[exp_id] = self.src.get_experiment(exp_id).name
        return self.exp_names[exp_id]

    def target_uri_of(self, run) -> str | None:
        entry = self.manifest["runs"].get(run.info.run_id, {})
        return self.override or entry.get("target_uri") or run.data.tags.get(BUFFERED_FOR_TAG)

    def synced(self, run_id: str, target: str) -> dict | None:
        return self.manifest["runs"].get(run_id, {}).get("synced", {}).get(target)

    def mark_run(self, run, target: str, record: dict) -> None:
        rid = run.info.run_id
        with _manifest(self.state) as m:
            entry = m["runs"].setdefault(rid, {
                "target_uri": run.data.tags.get(BUFFERED_FOR_TAG), "experiment": self.exp_name(run.info.experiment_id),
                "step": run.data.tags.get("vidcustom.step"), "pipeline_run": run.data.tags.get("vidcustom.pipeline_run"),
                "parent_run_id": run.data.tags.get("mlflow.parentRunId"), "buffered_at": None})
            entry.setdefault("synced", {})[target] = {**record, "at": _now()}
            self.manifest["runs"][rid] = entry
        try:
            self.src.set_tag(rid, SYNCED_TO_TAG, f"{target} {record['run_id']}")
        except Exception as err:  # noqa: BLE001 - the manifest already says so
            log.warning("could not tag buffered run %s as synced: %s", rid, err)

    def mark_version(self, key: str, mv, run_id: str, target: str, record: dict) -> None:
        with _manifest(self.state) as m:
            entry = m["model_versions"].setdefault(key, {"name": mv.name, "version": str(mv.version),
                                                         "run_id": run_id, "target_uri": target})
            entry.setdefault("synced", {})[target] = {**record, "at": _now()}
            self.manifest["model_versions"][key] = entry

    # -- runs ----------------------------------------------------------------------------------------
    def sync_runs(self) -> dict[str, tuple[str, str]]:
        """Upload the buffered runs; returns buffer run id -> (target URI, server run id) for every run
        that is on a server (now or from an earlier sync)."""
        from .tracking import PIPELINE_STEP, STEP_TAG

        runs = _all_runs(self.src)
        runs.sort(key=lambda r: (r.data.tags.get(STEP_TAG) != PIPELINE_STEP, r.info.start_time or 0, r.info.run_id))
        mapped: dict[str, tuple[str, str]] = {}
        for run in runs:
            rid = run.info.run_id
            target = self.target_uri_of(run)
            if not target:
                self.result["pending"].append({"run_id": rid, "reason": "no target server recorded: pass "
                                               "--tracking-uri"})
                continue
            parent = run.data.tags.get(STEP_TAG) == PIPELINE_STEP
            done = self.synced(rid, target)
            if done is not None:
                mapped[rid] = (target, done["run_id"])
                if parent:
                    self.refresh_parent(run, target, done)
                else:
                    self.result["already_synced"] += 1
                continue
            if run.info.status == "RUNNING" and not parent and not self.include_running:
                self.result["pending"].append({"run_id": rid, "reason": "still RUNNING in the buffer (a step in "
                                               "progress, or killed): sync later or pass --include-running"})
                continue
            dst = self.target(target)
            exp_id = dst.experiment_id(self.exp_name(run.info.experiment_id))
            if parent and (server := self.server_parent(dst, exp_id, run)) is not None:
                self.merge_parent(dst, run, server)
                self.mark_run(run, target, self.parent_record(run, server.info.run_id))
                self.result["merged_parents"].append({"run_id": rid, "server_run_id": server.info.run_id})
                mapped[rid] = (target, server.info.run_id)
                continue
            parent_id = run.data.tags.get("mlflow.parentRunId")
            server_parent = mapped.get(parent_id, (None, None))[1] if parent_id else None
            sid, models = self.upload_run(dst, exp_id, run, server_parent)
            record = self.parent_record(run, sid) if parent else {"run_id": sid}
            self.mark_run(run, target, {**record, "logged_models": models})
            self.result["uploaded_runs"].append({"run_id": rid, "server_run_id": sid, "target": target,
                                                 "step": run.data.tags.get(STEP_TAG)})
            mapped[rid] = (target, sid)
        return mapped

    @staticmethod
    def parent_record(run, server_id: str) -> dict:
        return {"run_id": server_id, "status": run.info.status, "end_time": run.info.end_time,
                "tags": {k: v for k, v in run.data.tags.items() if k not in _NOT_COPIED}}

    def server_parent(self, dst: _Target, exp_id: str, run):
        from .tracking import _find_parents

        pipeline_run = run.data.tags.get("vidcustom.pipeline_run")
        if not pipeline_run:
            return None
        found = _find_parents(dst.client, exp_id, pipeline_run)
        return found[0] if found else None

    def merge_parent(self, dst: _Target, run, server) -> None:
        """Carry the buffered parent's tags the server's lacks, and its status when it ended later."""
        for k, v in run.data.tags.items():
            if k not in _NOT_COPIED and k not in server.data.tags and not k.startswith("mlflow."):
                dst.client.set_tag(server.info.run_id, k, v)
        if run.info.end_time and (server.info.end_time or 0) < run.info.end_time and run.info.status != "RUNNING":
            dst.client.set_terminated(server.info.run_id, status=run.info.status, end_time=run.info.end_time)

    def refresh_parent(self, run, target: str, done: dict) -> None:
        """A parent synced before: its status, end or tags may have moved on since (later buffered steps)."""
        record = self.parent_record(run, done["run_id"])
        if all(record[k] == done.get(k) for k in ("status", "end_time", "tags")):
            self.result["already_synced"] += 1
            return
        dst = self.target(target)
        server = dst.client.get_run(done["run_id"])
        for k, v in record["tags"].items():
            if not k.startswith("mlflow.") and server.data.tags.get(k) != v:
                dst.client.set_tag(done["run_id"], k, v)
        if run.info.status == "RUNNING":
            dst.client.update_run(done["run_id"], status="RUNNING")
        elif (server.info.end_time or 0) <= (run.info.end_time or 0):
            dst.client.set_terminated(done["run_id"], status=run.info.status, end_time=run.info.end_time)
        self.mark_run(run, target, {**record, "logged_models": done.get("logged_models", {})})
        self.result["updated_parents"].append({"run_id": run.info.run_id, "server_run_id": done["run_id"]})

    def upload_run(self, dst: _Target, exp_id: str, run, server_parent: str | None) -> tuple[str, dict]:
        from mlflow.entities import LoggedModelOutput, Metric, Param, ViewType

        rid, client = run.info.run_id, dst.client
        for old in client.search_runs([exp_id], f"tags.`{SYNCED_FROM_TAG}` = '{rid}'", ViewType.ACTIVE_ONLY):
            if old.data.tags.get(SYNC_COMPLETE_TAG) == "true":  # uploaded by a sync that died before marking it
                return old.info.run_id, self.upload_logged_models(dst, exp_id, run, old.info.run_id)
            client.delete_run(old.info.run_id)  # half an upload: redo it
        tags = {k: v for k, v in run.data.tags.items() if k not in _NOT_COPIED}
        tags[SYNCED_FROM_TAG] = rid
        if server_parent:
            tags["mlflow.parentRunId"] = server_parent
        sid = client.create_run(exp_id, start_time=run.info.start_time, tags=tags,
                                run_name=run.info.run_name).info.run_id
        for part in _chunks([Param(k, v) for k, v in run.data.params.items()], 100):
            client.log_batch(sid, params=part)
        history = [Metric(m.key, m.value, m.timestamp, m.step) for key in run.data.metrics
                   for m in self.src.get_metric_history(rid, key)]
        for part in _chunks(history, 1000):
            client.log_batch(sid, metrics=part)
        artifacts = _local_path(run.info.artifact_uri)
        if artifacts is None:  # not expected for the SQLite buffer, but keep it working
            import tempfile

            artifacts = Path(self.src.download_artifacts(rid, "", tempfile.mkdtemp(prefix="vidcustom-sync-")))
        if _has_files(artifacts):
            client.log_artifacts(sid, str(artifacts))
        if run.inputs is not None and run.inputs.dataset_inputs:
            client.log_inputs(sid, datasets=run.inputs.dataset_inputs)
        models = self.upload_logged_models(dst, exp_id, run, sid)
        outputs = [LoggedModelOutput(models[o.model_id], o.step) for o in (run.outputs.model_outputs if run.outputs
                                                                           else []) if o.model_id in models]
        if outputs:
            client.log_outputs(sid, outputs)
        if run.info.status != "RUNNING":
            client.set_terminated(sid, status=run.info.status, end_time=run.info.end_time)
        client.set_tag(sid, SYNC_COMPLETE_TAG, "true")
        return sid, models

    def upload_logged_models(self, dst: _Target, exp_id: str, run, server_run_id: str) -> dict[str, str]:
        """MLflow 3 logged models (what log_model writes) of a buffered run: buffer model id -> server's."""
        from mlflow.entities import LoggedModelStatus

        client, out = dst.client, {}
        for lm in self.src.search_logged_models([run.info.experiment_id],
                                                filter_string=f"source_run_id = '{run.info.run_id}'"):
            existing = client.search_logged_models([exp_id], filter_string=f"tags.`{SYNCED_FROM_TAG}` = '{lm.model_id}'")
            ready = [m for m in existing if m.status == LoggedModelStatus.READY]
            if ready:
                out[lm.model_id] = ready[0].model_id
                continue
            for m in existing:
                client.delete_logged_model(m.model_id)
            tags = {k: v for k, v in lm.tags.items() if k != "mlflow.modelVersions"} | {SYNCED_FROM_TAG: lm.model_id}
            new = client.create_logged_model(exp_id, name=lm.name, source_run_id=server_run_id, tags=tags,
                                             params=lm.params or None, model_type=lm.model_type)
            local = _local_path(lm.artifact_location)
            if _has_files(local):
                client.log_model_artifacts(new.model_id, str(local))
            status = lm.status if lm.status in (LoggedModelStatus.READY, LoggedModelStatus.FAILED) \
                else LoggedModelStatus.READY
            client.finalize_logged_model(new.model_id, status)
            out[lm.model_id] = new.model_id
        return out

    # -- registry ------------------------------------------------------------------------------------
    def sync_registry(self, mapped: dict[str, tuple[str, str]]) -> None:
        from mlflow.exceptions import MlflowException

        try:
            versions = list(self.src.search_model_versions())
        except MlflowException:  # no registry tables used yet
            versions = []
        versions.sort(key=lambda v: (v.creation_timestamp or 0, v.name, int(v.version)))
        numbering: dict[tuple[str, str], str] = {}  # (target, "name/buffer version") -> server version
        for key, entry in self.manifest["model_versions"].items():
            for target, rec in entry.get("synced", {}).items():
                numbering[(target, key)] = rec["version"]
        for mv in versions:
            key = f"{mv.name}/{mv.version}"
            if mv.run_id not in mapped:
                self.result["pending"].append({"model_version": key, "reason": f"its run {mv.run_id} is not synced"})
                continue
            target, sid = mapped[mv.run_id]
            if (target, key) in numbering:
                self.result["already_synced"] += 1
                continue
            dst = self.target(target)
            version = self.upload_version(dst, mv, sid, target, numbering)
            numbering[(target, key)] = version
            applied, skipped = self.apply_aliases(dst, mv, version, target, numbering)
            self.mark_version(key, mv, mv.run_id, target, {"version": version, "aliases": applied,
                                                           "aliases_skipped": skipped})
            self.result["model_versions"].append({"buffer": key, "server": f"{mv.name}/{version}", "target": target})

    def _logged_model_map(self, run_id: str, target: str) -> dict[str, str]:
        return (self.synced(run_id, target) or {}).get("logged_models", {})

    def upload_version(self, dst: _Target, mv, server_run_id: str, target: str, numbering: dict) -> str:
        from mlflow.exceptions import MlflowException

        client = dst.client
        try:
            client.get_registered_model(mv.name)
        except MlflowException:
            model = self.src.get_registered_model(mv.name)
            try:
                client.create_registered_model(mv.name, tags=model.tags or None, description=model.description)
            except MlflowException:  # created meanwhile
                pass
        origin = f"{mv.run_id}:{mv.name}/{mv.version}"
        existing = client.search_model_versions(f"name = '{mv.name}' and tags.`{SYNCED_FROM_TAG}` = '{origin}'")
        if existing:
            return str(existing[0].version)
        models = self._logged_model_map(mv.run_id, target)
        source, model_id = mv.source, None
        if source.startswith("models:/") and source.removeprefix("models:/") in models:
            model_id = models[source.removeprefix("models:/")]
            source = f"models:/{model_id}"
        elif source.startswith(f"runs:/{mv.run_id}/"):
            source = f"runs:/{server_run_id}/" + source.removeprefix(f"runs:/{mv.run_id}/")
        tags = dict(mv.tags)
        if tags.get(SOURCE_MODEL_TAG) and (target, tags[SOURCE_MODEL_TAG]) in numbering:
            name = tags[SOURCE_MODEL_TAG].rsplit("/", 1)[0]
            tags[SOURCE_MODEL_TAG] = f"{name}/{numbering[(target, tags[SOURCE_MODEL_TAG])]}"
        tags[SYNCED_FROM_TAG] = origin
        tags[BUFFERED_CREATED_TAG] = str(mv.creation_timestamp)
        new = client.create_model_version(mv.name, source, run_id=server_run_id, tags=tags,
                                          description=mv.description or None, model_id=model_id)
        return str(new.version)

    def apply_aliases(self, dst: _Target, mv, version: str, target: str, numbering: dict) -> tuple[list, list]:
        from mlflow.exceptions import MlflowException

        aliases = sorted(a for a, v in (self.src.get_registered_model(mv.name).aliases or {}).items()
                         if str(v) == str(mv.version))
        applied, skipped = [], []
        for alias in aliases:
            try:
                holder = dst.client.get_model_version_by_alias(mv.name, alias)
            except MlflowException:
                holder = None
            ok, why = self.alias_allowed(dst, mv, alias, holder, target, numbering)
            if ok:
                dst.client.set_registered_model_alias(mv.name, alias, version)
                applied.append(alias)
                self.result["aliases"].append(f"{mv.name}@{alias} -> {version}")
            else:
                skipped.append({"alias": alias, "reason": why})
                self.result["aliases_skipped"].append({"model": f"{mv.name}/{version}", "alias": alias,
                                                       "reason": why})
        return applied, skipped

    def alias_allowed(self, dst: _Target, mv, alias: str, holder, target: str, numbering: dict) -> tuple[bool, str]:
        from mlflow.exceptions import MlflowException

        if holder is None:
            return True, ""
        if alias == CHAMPION:
            source = mv.tags.get(SOURCE_MODEL_TAG)
            if source and (target, source) in numbering:  # an export: follows its source model's champion
                name = source.rsplit("/", 1)[0]
                try:
                    champ = dst.client.get_model_version_by_alias(name, CHAMPION)
                except MlflowException:
                    champ = None
                if champ is not None and str(champ.version) == numbering[(target, source)]:
                    return True, ""
                return False, f"its source {name} version is not the champion on the server"
            compared = mv.tags.get(GATE_CHAMPION_TAG)
            if compared and compared != "none" and numbering.get((target, f"{mv.name}/{compared}")) == str(holder.version):
                return True, ""
            return False, (f"the gate ran offline without seeing the server's champion (version {holder.version}); "
                           "re-run the register step against the server to re-decide")
        holder_created = int(holder.tags.get(BUFFERED_CREATED_TAG, holder.creation_timestamp or 0))
        if (mv.creation_timestamp or 0) >= holder_created:
            return True, ""
        return False, f"the server's version {holder.version} holding it is newer"


def sync(state: str | Path, tracking_uri: str | None = None, include_running: bool = False, retries: int = 3,
         retry_wait_s: float = 2.0) -> dict:
    """Upload what the buffer under `state` holds to each run's server (or `tracking_uri`); returns what
    moved: uploaded_runs, merged_parents, updated_parents, model_versions, aliases, aliases_skipped,
    pending (what stays, with why) and already_synced (a count)."""
    if not (buffer_dir(state) / "mlflow.db").is_file():
        return {"buffer": str(buffer_dir(state)), "uploaded_runs": [], "merged_parents": [], "updated_parents": [],
                "model_versions": [], "aliases": [], "aliases_skipped": [], "pending": [], "already_synced": 0}
    import fcntl

    # One sync at a time per buffer: a second one would see the first one's half-uploaded runs as failed
    # uploads and redo or delete them. The lock is released when the file closes, also on a crash.
    with open(buffer_dir(state) / ".sync.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another `vidcustom mlflow sync` is uploading {buffer_dir(state)} right now; "
                               "wait for it to finish") from None
        job = _Sync(state, tracking_uri, include_running, retries, retry_wait_s)
        mapped = job.sync_runs()
        job.sync_registry(mapped)
        return job.result
