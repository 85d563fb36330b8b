"""`vidcustom mlflow sync`: upload the local buffer (components/tracking/buffer.py) to the tracking server.

`vidcustom mlflow sync [--tracking-uri URI]` (`sync()` here) uploads what is pending to --tracking-uri, else
the run's recorded server, else $MLFLOW_TRACKING_URI: runs with their params, full metric histories (steps and
timestamps), tags, artifacts, dataset inputs, logged models and parent/child relation, then the registry
operations. A buffered pipeline parent is merged into the server's parent of the same pipeline execution
when that exists. A run, logged model or model version tagged `vidcustom.continues` was started on the
server before an outage: sync appends to that server entity what it lacks (params, metric points not yet
there, tags, artifacts, its end; a version's tags, description and aliases) instead of creating another.
Every other uploaded run carries `vidcustom.synced_from` = its buffer run id; the manifest and a
`vidcustom.synced_to` tag on the buffered run mark it synced, so a second sync uploads nothing, and an
upload cut off halfway is found by that tag and redone (a continuation is simply appended again: what the
server has already is skipped). Buffer runs carrying `vidcustom.synced_from` (copies an older sync made into
the buffer itself) are never uploaded.

Registry operations while offline are buffered, not refused: the register and export steps register
versions, tag them and set aliases in the buffer's own registry; sync recreates each version on the
server (renumbered: `source_model` tags follow) with its tags and description, then its aliases:
  - `champion` only where the server has no champion yet, or its champion is the very version the
    offline gate compared against (tag `gate_champion`, mapped to the server's numbering); an exported
    version (tag `source_model`) gets it only where its source version holds it on the server. Otherwise
    the gate decided without seeing the server's champion: the alias is left as it is and reported under
    `aliases_skipped`; re-run the register step against the server to re-decide. A version registered by a
    step that read the server's registry before the outage (tag `vidcustom.server_numbers`) names server
    versions in those tags already: they are compared as they are.
  - any other alias (`challenger`) where the server has none or the server's holder is older than the
    buffered version.
Runs still RUNNING in the buffer wait for a later sync unless include_running, except those of a process
that is gone: sync ends them KILLED first (components/tracking/liveness.py). Pipeline parents are always
synced and later syncs carry their status forward.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .buffer import _manifest, _now, buffer_dir, buffer_uri, is_buffer_uri, load_manifest
from .failover import DEFAULT_FAILOVER_S, bound_http, suspended
from .liveness import end_stale_runs
from .runs import _find_parents
from .server import TrackingServerUnreachable, check_server
from .store import ensure_experiment, init_sqlite_store
from .tags import (BUFFERED_CREATED_TAG, BUFFERED_FOR_TAG, CHAMPION, CONTINUES_TAG, GATE_CHAMPION_TAG, NOT_COPIED,
                   PIPELINE_STEP, SERVER_NUMBERS_TAG, SOURCE_MODEL_TAG, STEP_TAG, SYNC_COMPLETE_TAG, SYNCED_FROM_TAG,
                   SYNCED_TO_TAG)

log = logging.getLogger(__name__)


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

        try:
            check_server(uri, retries, wait_s)
        except TrackingServerUnreachable as err:
            raise RuntimeError(f"cannot sync: {err}. Start it (check `curl {uri.rstrip('/')}/health`) or pass "
                               "--tracking-uri; the buffer is kept as it is.") from None
        self.uri = uri
        self.client = MlflowClient(uri, uri)
        self._experiments: dict[str, str] = {}

    def experiment_id(self, name: str) -> str:
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
        """--tracking-uri, else the server recorded for the run, else $MLFLOW_TRACKING_URI; never the buffer
        (buffers written before that was fixed recorded themselves as the target)."""
        entry = self.manifest["runs"].get(run.info.run_id, {})
        env = os.environ.get("MLFLOW_TRACKING_URI")
        for uri in (self.override, entry.get("target_uri"), run.data.tags.get(BUFFERED_FOR_TAG), env):
            if uri and not is_buffer_uri(uri, self.state):
                return uri
        return None

    def continued(self, dst: _Target, run) -> str | None:
        """The server run a buffered run continues (it started there before an outage), if the server has it."""
        from mlflow.exceptions import MlflowException

        sid = run.data.tags.get(CONTINUES_TAG)
        if not sid:
            return None
        try:
            return sid if dst.client.get_run(sid).info.lifecycle_stage == "active" else None
        except MlflowException:  # another server (--tracking-uri): upload it as a run of its own
            return None

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


        for exp in {r.info.experiment_id for r in _all_runs(self.src) if r.info.status == "RUNNING"}:
            end_stale_runs(self.src, exp)  # runs of killed steps end KILLED and go up, not wait forever
        # Copies an older sync made into the buffer itself carry synced_from: not results, never uploaded.
        runs = [r for r in _all_runs(self.src) if SYNCED_FROM_TAG not in r.data.tags]
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
            continues = self.continued(dst, run)
            sid, models = self.upload_run(dst, exp_id, run, server_parent, continues)
            record = self.parent_record(run, sid) if parent else {"run_id": sid}
            self.mark_run(run, target, {**record, "logged_models": models})
            self.result["uploaded_runs"].append({"run_id": rid, "server_run_id": sid, "target": target,
                                                 "step": run.data.tags.get(STEP_TAG), "continued": bool(continues)})
            mapped[rid] = (target, sid)
        return mapped

    @staticmethod
    def parent_record(run, server_id: str) -> dict:
        return {"run_id": server_id, "status": run.info.status, "end_time": run.info.end_time,
                "tags": {k: v for k, v in run.data.tags.items() if k not in NOT_COPIED}}

    def server_parent(self, dst: _Target, exp_id: str, run):
        if continues := self.continued(dst, run):
            return dst.client.get_run(continues)
        pipeline_run = run.data.tags.get("vidcustom.pipeline_run")
        if not pipeline_run:
            return None
        found = _find_parents(dst.client, exp_id, pipeline_run)
        return found[0] if found else None

    def merge_parent(self, dst: _Target, run, server) -> None:
        """Carry the buffered parent's tags the server's lacks, and its status when it ended later."""
        for k, v in run.data.tags.items():
            if k not in NOT_COPIED and k not in server.data.tags and not k.startswith("mlflow."):
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

    def upload_run(self, dst: _Target, exp_id: str, run, server_parent: str | None,
                   continues: str | None = None) -> tuple[str, dict]:
        """Upload a buffered run as a new server run, or append it to the server run it `continues`: what that
        lacks (params, metric points, tags), all artifacts, and its end. Both are safe to repeat."""
        from mlflow.entities import LoggedModelOutput, Metric, Param, RunTag

        rid, client = run.info.run_id, dst.client
        tags = {k: v for k, v in run.data.tags.items() if k not in NOT_COPIED}
        if continues:
            sid, server = continues, client.get_run(continues)
            changed = [RunTag(k, v) for k, v in tags.items()
                       if not k.startswith("mlflow.") and server.data.tags.get(k) != v]
            for part in _chunks(changed, 100):
                client.log_batch(sid, tags=part)
        else:
            sid = self.new_server_run(dst, exp_id, run, tags, server_parent)
            if isinstance(sid, tuple):  # uploaded completely by a sync that died before marking it
                return sid
            server = None
        have = server.data.params if server else {}
        for part in _chunks([Param(k, v) for k, v in run.data.params.items() if k not in have], 100):
            client.log_batch(sid, params=part)
        history = [Metric(m.key, m.value, m.timestamp, m.step) for key in run.data.metrics
                   for m in self.src.get_metric_history(rid, key)]
        if server:  # points logged before the outage, or by a timed-out call the server did process
            seen = {(m.key, m.step, m.timestamp, m.value) for key in run.data.metrics
                    for m in client.get_metric_history(sid, key)}
            history = [m for m in history if (m.key, m.step, m.timestamp, m.value) not in seen]
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
        linked = {o.model_id for o in (server.outputs.model_outputs if server and server.outputs else [])}
        outputs = [LoggedModelOutput(models[o.model_id], o.step) for o in (run.outputs.model_outputs if run.outputs
                   else []) if o.model_id in models and models[o.model_id] not in linked]
        if outputs:
            client.log_outputs(sid, outputs)
        if run.info.status != "RUNNING":
            client.set_terminated(sid, status=run.info.status, end_time=run.info.end_time)
        if not continues:
            client.set_tag(sid, SYNC_COMPLETE_TAG, "true")
        return sid, models

    def new_server_run(self, dst: _Target, exp_id: str, run, tags: dict, server_parent: str | None):
        """A new server run for a buffered one: its id, or (id, logged models) when an earlier sync uploaded
        it completely; a half upload by an earlier sync is deleted first."""
        from mlflow.entities import ViewType

        rid, client = run.info.run_id, dst.client
        for old in client.search_runs([exp_id], f"tags.`{SYNCED_FROM_TAG}` = '{rid}'", ViewType.ACTIVE_ONLY):
            if old.data.tags.get(SYNC_COMPLETE_TAG) == "true":
                return old.info.run_id, self.upload_logged_models(dst, exp_id, run, old.info.run_id)
            client.delete_run(old.info.run_id)  # half an upload: redo it
        tags = tags | {SYNCED_FROM_TAG: rid}
        if server_parent:
            tags["mlflow.parentRunId"] = server_parent
        return client.create_run(exp_id, start_time=run.info.start_time, tags=tags,
                                 run_name=run.info.run_name).info.run_id

    def upload_logged_models(self, dst: _Target, exp_id: str, run, server_run_id: str) -> dict[str, str]:
        """MLflow 3 logged models (what log_model writes) of a buffered run: buffer model id -> server's."""
        from mlflow.entities import LoggedModelStatus

        client, out = dst.client, {}
        for lm in self.src.search_logged_models([run.info.experiment_id],
                                                filter_string=f"source_run_id = '{run.info.run_id}'"):
            if lm.tags.get(CONTINUES_TAG):  # created on the server before an outage: complete that one
                out[lm.model_id] = self.complete_logged_model(dst, lm)
                continue
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

    def complete_logged_model(self, dst: _Target, lm) -> str:
        from mlflow.entities import LoggedModelStatus

        mid, client = lm.tags[CONTINUES_TAG], dst.client
        tags = {k: v for k, v in lm.tags.items() if k not in NOT_COPIED and not k.startswith("mlflow.")}
        if tags:
            client.set_logged_model_tags(mid, tags)
        local = _local_path(lm.artifact_location)
        if _has_files(local):
            client.log_model_artifacts(mid, str(local))
        if lm.status in (LoggedModelStatus.READY, LoggedModelStatus.FAILED):
            client.finalize_logged_model(mid, lm.status)
        return mid

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
        if mv.tags.get(CONTINUES_TAG) and (version := self.complete_version(dst, mv)):
            return version
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
        tags = {k: v for k, v in mv.tags.items() if k not in NOT_COPIED}
        if tags.get(SOURCE_MODEL_TAG) and (target, tags[SOURCE_MODEL_TAG]) in numbering and \
                not mv.tags.get(SERVER_NUMBERS_TAG):
            name = tags[SOURCE_MODEL_TAG].rsplit("/", 1)[0]
            tags[SOURCE_MODEL_TAG] = f"{name}/{numbering[(target, tags[SOURCE_MODEL_TAG])]}"
        tags[SYNCED_FROM_TAG] = origin
        tags[BUFFERED_CREATED_TAG] = str(mv.creation_timestamp)
        new = client.create_model_version(mv.name, source, run_id=server_run_id, tags=tags,
                                          description=mv.description or None, model_id=model_id)
        return str(new.version)

    def complete_version(self, dst: _Target, mv) -> str | None:
        """A placeholder for a server version (registered before an outage): its tags and description go to
        that version; None when the server lacks it (then it is uploaded as a version of its own)."""
        from mlflow.exceptions import MlflowException

        number = mv.tags[CONTINUES_TAG]
        try:
            server = dst.client.get_model_version(mv.name, number)
        except MlflowException:
            return None
        for k, v in mv.tags.items():
            if k not in NOT_COPIED and server.tags.get(k) != v:
                dst.client.set_model_version_tag(mv.name, number, k, v)
        if mv.description and mv.description != server.description:
            dst.client.update_model_version(mv.name, number, description=mv.description)
        return number

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
            ok, why = self.alias_allowed(dst, mv, alias, holder, version, target, numbering)
            if ok:
                dst.client.set_registered_model_alias(mv.name, alias, version)
                applied.append(alias)
                self.result["aliases"].append(f"{mv.name}@{alias} -> {version}")
            else:
                skipped.append({"alias": alias, "reason": why})
                self.result["aliases_skipped"].append({"model": f"{mv.name}/{version}", "alias": alias,
                                                       "reason": why})
        return applied, skipped

    def alias_allowed(self, dst: _Target, mv, alias: str, holder, version: str, target: str,
                      numbering: dict) -> tuple[bool, str]:
        from mlflow.exceptions import MlflowException

        if holder is None or str(holder.version) == version:
            return True, ""
        if mv.tags.get(SERVER_NUMBERS_TAG):  # the step started online: its tags name server versions
            return self.alias_allowed_online(dst, mv, alias, holder)
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


    @staticmethod
    def alias_allowed_online(dst: _Target, mv, alias: str, holder) -> tuple[bool, str]:
        """Aliases of a version registered by a step that read the server's registry before an outage: the
        gate compared against the server's champion (its number in `gate_champion`), an export follows its
        source version (`source_model`, a server number)."""
        from mlflow.exceptions import MlflowException

        if alias != CHAMPION:
            if (mv.creation_timestamp or 0) >= (holder.creation_timestamp or 0):
                return True, ""
            return False, f"the server's version {holder.version} holding it is newer"
        source = mv.tags.get(SOURCE_MODEL_TAG)
        if source:
            name, _, number = source.rpartition("/")
            try:
                champ = dst.client.get_model_version_by_alias(name, CHAMPION)
            except MlflowException:
                champ = None
            if champ is not None and str(champ.version) == number:
                return True, ""
            return False, f"its source {source} is not the champion on the server"
        if mv.tags.get(GATE_CHAMPION_TAG) == str(holder.version):
            return True, ""
        return False, (f"the server's champion moved to version {holder.version} after the gate compared against "
                       f"{mv.tags.get(GATE_CHAMPION_TAG)}; re-run the register step against the server to re-decide")

def sync(state: str | Path, tracking_uri: str | None = None, include_running: bool = False, retries: int = 3,
         retry_wait_s: float = 2.0) -> dict:
    """Upload what the buffer under `state` holds to each run's server (or `tracking_uri`); returns what
    moved: uploaded_runs, merged_parents, updated_parents, model_versions, aliases, aliases_skipped,
    pending (what stays, with why) and already_synced (a count)."""
    if tracking_uri and is_buffer_uri(tracking_uri, state):
        raise RuntimeError(f"cannot sync into {tracking_uri}: that is the buffer itself. Pass the tracking server "
                           "with --tracking-uri (or set $MLFLOW_TRACKING_URI); the buffer is kept as it is.")
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

        init_sqlite_store(buffer_uri(state))
        bound_http(DEFAULT_FAILOVER_S)  # a server dying mid-sync stops it within seconds, not minutes
        with suspended():  # a server failing during sync stops it (a later sync resumes), never re-buffers
            job = _Sync(state, tracking_uri, include_running, retries, retry_wait_s)
            mapped = job.sync_runs()
            job.sync_registry(mapped)
        return job.result
