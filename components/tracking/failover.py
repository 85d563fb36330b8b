"""A step that started on the MLflow server finishes in the local buffer when the server goes away mid-step.

`arm()` (called by components/tracking/runs.resolve_store for a reachable server with mlflow.offline=buffer, so
by every step and by the pipeline driver) installs thin subclasses of MLflow's own REST tracking store,
REST registry store and proxied artifact repository (`mlflow-artifacts:`, http) into MLflow's store
registries. The step code keeps calling plain MLflow; each call goes to the server until one finds it
unreachable:

- Every call is bounded. MLflow's defaults (7 retries with exponential backoff, 120 s timeout) hold one
  call to a dead or hung server for minutes; `bound_http` caps it at two tries of failover_s/2 seconds
  (MLFLOW_HTTP_REQUEST_MAX_RETRIES / _TIMEOUT / _BACKOFF_*; values the operator set win).
- Unreachable means the request never got an answer (refused, reset, timed out, retries exhausted on 5xx).
  An error the server answered (a JSON error) is the step's to handle and is raised as before.
- The first unreachable call switches the armed server to the buffer for the rest of the process and
  pipeline execution ("down": no flapping between stores) and is repeated there. Entities that live on the
  server are continued in the buffer, created on first use: a run as a buffer run tagged
  `vidcustom.continues=<server run id>` (same name, tags, start time), a logged model likewise, a model
  version as a placeholder version with that tag and the server version's number as value. Ids the step
  already holds (its ActiveRun, model ids, version numbers) are translated on every later call, so the step
  code notices nothing and its run ends there.
- Every buffer run is listed in pending.json with the server as target. `vidcustom mlflow sync` appends a
  continuation to the server entity it continues (what the server lacks: params, metric points, tags,
  artifacts, status, aliases) instead of creating a new one, so the server ends with one run per step.

The pipeline execution then stays on the buffer (components/tracking/runs.resolve_store): later steps would
otherwise mix registry version numbers of two stores.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import warnings
from contextlib import contextmanager

from .store import artifact_location, ensure_experiment, init_sqlite_store
from .tags import BUFFERED_FOR_TAG, CONTINUES_TAG, PIPELINE_RUN_ENV, SERVER_NUMBERS_TAG

log = logging.getLogger(__name__)

DEFAULT_FAILOVER_S = 30.0

_armed: dict[str, "_Failover"] = {}  # server URI (no trailing slash) -> this process's failover state
_suspended = threading.local()  # sync talks to the server as it is, never to the buffer
_installed = False


def _key(uri: str | None) -> str:
    return (uri or "").rstrip("/")


def bound_http(failover_s: float) -> None:
    """Cap one MLflow HTTP call at about failover_s: two tries without backoff, failover_s/2 each."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, int(failover_s / 2))))


def _scope(state) -> tuple[str, str | None]:
    return str(state), os.environ.get(PIPELINE_RUN_ENV)


def arm(target: str, state, experiment: str, failover_s: float = DEFAULT_FAILOVER_S) -> None:
    """Fail over to the buffer under `state` when `target` stops answering. A failover that happened stays
    for the same state and pipeline execution (the step, or the driver, keeps to the buffer); anything else
    starts afresh."""
    bound_http(failover_s)
    _install()
    old = _armed.get(_key(target))
    if old is None or not old.down or old.scope != _scope(state):
        _armed[_key(target)] = _Failover(target, state, experiment)


def is_down(target: str, state) -> bool:
    fo = _armed.get(_key(target))
    return fo is not None and fo.down and fo.scope == _scope(state)


def numbered_by(uri: str, name: str, version) -> str:
    """Who numbered version `version` of `name` as this process knows it: "server" (final), or "buffer" when
    it was made in the buffer after a failover (sync gives it a server number)."""
    fo = _active(uri)
    if fo is None or not fo.down or (name, str(version)) in fo.server_versions:
        return "server"
    return "buffer"


def reset() -> None:
    """Forget every failover, as a new process would (tests use it between simulated processes)."""
    _armed.clear()


@contextmanager
def suspended():
    """Calls in this block go to the server as it is: no failover (what `vidcustom mlflow sync` needs)."""
    before = getattr(_suspended, "on", False)
    _suspended.on = True
    try:
        yield
    finally:
        _suspended.on = before


def _active(uri: str | None) -> "_Failover | None":
    return None if getattr(_suspended, "on", False) else _armed.get(_key(uri))


def unreachable(err: BaseException) -> bool:
    """The request got no answer: refused, reset, timed out, or retries exhausted (also on 502-504)."""
    import requests
    import urllib3

    from mlflow.exceptions import RestException

    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, RestException):  # the server answered with an error
            return False
        if isinstance(err, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                            requests.exceptions.RetryError, urllib3.exceptions.HTTPError, ConnectionError,
                            TimeoutError)):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__  # MLflow re-raises transport errors without `from`
    return False


class _Failover:
    """One armed server in this process: whether it is down, and the server -> buffer id translations."""

    def __init__(self, target: str, state, experiment: str):
        from .buffer import buffer_uri

        self.target, self.state, self.experiment_name = target, state, experiment
        self.scope = _scope(state)
        self.buffer = buffer_uri(state)
        self.down = False
        self.registry_online = False  # the step read the server's registry before the outage
        self.lock = threading.RLock()
        # What the server returned (to continue it) and what the buffer returned (already buffer ids).
        self.server_runs, self.server_exps, self.server_models, self.server_versions = {}, {}, {}, {}
        self.buffer_runs, self.buffer_exps, self.buffer_models, self.buffer_versions = set(), set(), set(), set()
        self.server_model_names: set[str] = set()  # registered models seen on the server
        self.buffer_model_names: set[str] = set()
        self.artifact_roots: dict[str, tuple[str, str]] = {}  # server artifact root -> ("run"|"model", id)
        self.run_map, self.exp_map, self.model_map, self.version_map = {}, {}, {}, {}
        self._client = None

    # -- switching -----------------------------------------------------------------------------------
    def trip(self, err: BaseException) -> None:
        with self.lock:
            if self.down:
                return
            self.down = True
        from .buffer import TrackingBufferedWarning, buffer_dir, manifest_path

        msg = (f"MLflow tracking server {self.target} stopped answering ({err}): this process continues in the "
               f"local buffer {buffer_dir(self.state)}. Nothing is lost; when the server is back, upload with "
               f"`vidcustom mlflow sync` (pending runs: {manifest_path(self.state)}).")
        log.warning(msg)
        warnings.warn(msg, TrackingBufferedWarning, stacklevel=2)

    @property
    def client(self):
        if self._client is None:
            from mlflow import MlflowClient

            init_sqlite_store(self.buffer)
            self._client = MlflowClient(self.buffer, self.buffer)
        return self._client

    # -- what the stores returned --------------------------------------------------------------------
    def saw(self, out, server: bool) -> None:
        from mlflow.entities import Experiment, LoggedModel, Run
        from mlflow.entities.model_registry import ModelVersion, RegisteredModel

        if isinstance(out, (list, tuple)):  # PagedList too
            for item in out:
                self.saw(item, server)
        elif isinstance(out, Run):
            rid = out.info.run_id
            if server:
                self.server_runs[rid] = out
                self.artifact_roots[_key(out.info.artifact_uri)] = ("run", rid)
            else:
                self.buffer_runs.add(rid)
        elif isinstance(out, Experiment):
            if server:
                self.server_exps[out.experiment_id] = out.name
            else:
                self.buffer_exps.add(out.experiment_id)
        elif isinstance(out, LoggedModel):
            if server:
                self.server_models[out.model_id] = out
                self.artifact_roots[_key(out.artifact_location)] = ("model", out.model_id)
            else:
                self.buffer_models.add(out.model_id)
        elif isinstance(out, ModelVersion):
            key = (out.name, str(out.version))
            if server:
                self.server_versions[key] = out
                self.server_model_names.add(out.name)
            else:
                self.buffer_versions.add(key)
        elif isinstance(out, RegisteredModel) and server:
            self.server_model_names.add(out.name)

    # -- server id -> buffer id, continuing the server entity on first use ----------------------------
    def experiment(self, eid: str) -> str:
        if eid in self.buffer_exps:
            return eid
        return self.experiment_named(self.server_exps.get(eid, self.experiment_name))

    def experiment_named(self, name: str) -> str:
        with self.lock:
            if name not in self.exp_map:
                self.exp_map[name] = ensure_experiment(self.client, name, self.buffer)
                self.buffer_exps.add(self.exp_map[name])
            return self.exp_map[name]

    def _mapped(self, sid: str, mapping: dict, in_buffer: set, cont) -> str:
        """The buffer id for `sid`: itself when it is a buffer id, else its continuation (made on first use)."""
        if sid in in_buffer:
            return sid
        with self.lock:
            if sid not in mapping:
                mapping[sid] = cont(sid)
                in_buffer.add(mapping[sid])
            return mapping[sid]

    def run(self, rid: str) -> str:
        return self._mapped(rid, self.run_map, self.buffer_runs, self._continue_run)

    def _continue_run(self, rid: str) -> str:
        from mlflow.entities import ViewType

        from .buffer import record_run

        known = self.server_runs.get(rid)
        exp = self.experiment(known.info.experiment_id if known else "")
        found = self.client.search_runs([exp], f"tags.`{CONTINUES_TAG}` = '{rid}'", ViewType.ACTIVE_ONLY, 1)
        if found:  # continued by an earlier process (the pipeline driver continues its parent run too)
            return found[0].info.run_id
        tags = {k: v for k, v in (known.data.tags if known else {}).items() if k != "mlflow.parentRunId"}
        tags |= {CONTINUES_TAG: rid, BUFFERED_FOR_TAG: self.target}
        run = self.client.create_run(exp, start_time=known.info.start_time if known else None, tags=tags,
                                     run_name=known.info.run_name if known else None)
        record_run(self.state, run, self.target, self.experiment_name)
        return run.info.run_id

    def model(self, mid: str) -> str:
        return self._mapped(mid, self.model_map, self.buffer_models, self._continue_model)

    def _continue_model(self, mid: str) -> str:
        known = self.server_models.get(mid)
        exp = self.experiment(known.experiment_id if known else "")
        found = self.client.search_logged_models([exp], filter_string=f"tags.`{CONTINUES_TAG}` = '{mid}'")
        if found:
            return found[0].model_id
        tags = (dict(known.tags) if known else {}) | {CONTINUES_TAG: mid}
        source = self.run(known.source_run_id) if known and known.source_run_id else None
        return self.client.create_logged_model(exp, name=known.name if known else mid, source_run_id=source,
                                               tags=tags, params=known.params if known else None,
                                               model_type=known.model_type if known else None).model_id

    def version(self, name: str, version) -> str:
        key = (name, str(version))
        if key in self.buffer_versions or key not in self.server_versions:
            return str(version)  # made in the buffer, or never seen from the server: the number stands
        with self.lock:
            if key not in self.version_map:
                self.version_map[key] = self._continue_version(self.server_versions[key])
                self.buffer_versions.add((name, self.version_map[key]))
            return self.version_map[key]

    def _continue_version(self, mv) -> str:
        client = self.client
        found = client.search_model_versions(f"name = '{mv.name}' and tags.`{CONTINUES_TAG}` = '{mv.version}'")
        if found:
            return str(found[0].version)
        self.registered_model(mv.name)
        tags = dict(mv.tags) | {CONTINUES_TAG: str(mv.version), SERVER_NUMBERS_TAG: "true"}
        model_id = self.model(mv.model_id) if getattr(mv, "model_id", None) else None
        new = client.create_model_version(mv.name, self.source(mv.source), run_id=self.run(mv.run_id) if mv.run_id
                                          else None, tags=tags, description=mv.description, model_id=model_id)
        return str(new.version)

    def registered_model(self, name: str) -> None:
        """A registered model of the server, also in the buffer (its versions and aliases made there)."""
        from mlflow.exceptions import MlflowException

        if name in self.buffer_model_names:
            return
        try:
            self.client.create_registered_model(name)
        except MlflowException:  # in the buffer already
            pass
        self.buffer_model_names.add(name)

    def source(self, source: str) -> str:
        if source.startswith("models:/") and source.removeprefix("models:/") in self.server_models:
            return "models:/" + self.model(source.removeprefix("models:/"))
        if source.startswith("runs:/"):
            rid, _, path = source.removeprefix("runs:/").partition("/")
            if rid in self.server_runs:
                return f"runs:/{self.run(rid)}/{path}"
        return source

    def translate(self, method: str, args: dict, registry: bool) -> None:
        """Rewrite server ids in a call's bound arguments to their buffer counterparts, in place."""
        from mlflow.entities import LoggedModelInput, LoggedModelOutput, RunTag
        from mlflow.entities.model_registry import ModelVersionTag

        for k, v in list(args.items()):
            if v is None:
                continue
            if k in ("run_id", "source_run_id"):
                args[k] = self.run(v)
            elif k == "experiment_id":
                args[k] = self.experiment(v)
            elif k == "experiment_ids":
                args[k] = [self.experiment(e) for e in v]
            elif k == "model_id":
                args[k] = self.model(v)
            elif k == "source" and isinstance(v, str):
                args[k] = self.source(v)
            elif k == "version" and registry:
                args[k] = self.version(args["name"], v)
            elif k == "models" and isinstance(v, list):
                args[k] = [LoggedModelOutput(self.model(m.model_id), m.step) if isinstance(m, LoggedModelOutput)
                           else LoggedModelInput(self.model(m.model_id)) for m in v]
            elif k == "tags" and method == "create_run":
                args[k] = [RunTag(t.key, self.run(t.value)) if t.key == "mlflow.parentRunId" else t for t in v]
        if method == "create_experiment":  # artifacts beside the buffer, not in the working directory
            args["artifact_location"] = artifact_location(self.buffer)
        elif method == "create_model_version" and self.registry_online:  # its gate/source tags name server versions
            tags = list(args.get("tags") or [])
            if all(t.key != SERVER_NUMBERS_TAG for t in tags):
                args["tags"] = tags + [ModelVersionTag(SERVER_NUMBERS_TAG, "true")]

    def call(self, method: str, bound: inspect.BoundArguments, registry: bool):
        """Run a store call in the buffer's tracking or registry store, translated."""
        args = bound.arguments
        if method == "get_experiment_by_name" and args["experiment_name"] in {self.experiment_name,
                                                                              *self.server_exps.values()}:
            self.experiment_named(args["experiment_name"])  # made in the buffer, artifacts beside it
        if registry and args.get("name") in self.server_model_names and method != "create_registered_model":
            self.registered_model(args["name"])
        self.translate(method, args, registry)
        store = self.client._get_registry_client().store if registry else self.client._tracking_client.store
        out = getattr(store, method)(*bound.args[1:], **bound.kwargs)
        self.saw(out, server=False)
        if method == "create_run":
            from .buffer import record_run

            record_run(self.state, out, self.target, self.experiment_name)
        return out

    def local_artifacts(self, server_root: str):
        """The buffer's artifact repository for the run or logged model whose server artifact root this is."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        kind, sid = self.artifact_roots[_key(server_root)]
        if kind == "run":
            uri = self.client.get_run(self.run(sid)).info.artifact_uri
        else:
            uri = self.client.get_logged_model(self.model(sid)).artifact_location
        return get_artifact_repository(uri)


# -- the wrappers MLflow builds for http(s) stores and proxied artifacts ---------------------------------


def _wrap(base_cls, name: str, registry: bool):
    base = getattr(base_cls, name)
    sig = inspect.signature(base)

    def method(self, *args, **kwargs):
        fo = _active(self._vc_uri)
        if fo is None:
            return base(self, *args, **kwargs)
        if not fo.down:
            try:
                out = base(self, *args, **kwargs)
            except Exception as err:
                if not unreachable(err):
                    raise
                fo.trip(err)
            else:
                fo.saw(out, server=True)
                fo.registry_online |= registry
                if name == "create_experiment":
                    fo.server_exps[out] = (args or [kwargs.get("name")])[0]
                return out
        return fo.call(name, sig.bind(self, *args, **kwargs), registry)

    method.__name__ = name
    return method


def _public_methods(cls) -> list[str]:
    return [n for n in dir(cls) if not n.startswith("_") and inspect.isfunction(inspect.getattr_static(cls, n, None))]


def _install() -> None:
    """Register the wrappers for http(s) stores and proxied artifacts, once per process."""
    global _installed
    if _installed:
        return
    from functools import partial

    from mlflow.store.artifact.artifact_repository_registry import _artifact_repository_registry
    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository
    from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository
    from mlflow.store.model_registry.rest_store import RestStore as RegistryRestStore
    from mlflow.store.tracking.rest_store import RestStore
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils
    from mlflow.utils.credentials import get_default_host_creds

    def store_class(base, registry: bool):
        def __init__(self, store_uri, **_):
            base.__init__(self, partial(get_default_host_creds, store_uri))
            self._vc_uri = store_uri

        body = {"__init__": __init__, **{n: _wrap(base, n, registry) for n in _public_methods(base)}}
        return type(f"Failover{base.__name__}", (base,), body)

    tracking_store, registry_store = store_class(RestStore, False), store_class(RegistryRestStore, True)
    registry = registry_utils._get_store_registry()
    for scheme in ("http", "https"):
        tracking_utils._tracking_store_registry.register(scheme, tracking_store)
        registry.register(scheme, registry_store)
    # Stores built before (cached per URI) would bypass the wrappers.
    tracking_utils._tracking_store_registry._get_store_with_resolved_uri.cache_clear()
    registry._get_store_with_resolved_uri.cache_clear()
    for scheme, base in (("mlflow-artifacts", MlflowArtifactsRepository), ("http", HttpArtifactRepository),
                         ("https", HttpArtifactRepository)):
        _artifact_repository_registry.register(scheme, _artifact_class(base))
    _installed = True


def _artifact_class(base):
    from mlflow.tracking._tracking_service.utils import get_tracking_uri

    class FailoverArtifacts(base):
        def __init__(self, artifact_uri, tracking_uri=None, registry_uri=None, **kw):
            super().__init__(artifact_uri, tracking_uri=tracking_uri, registry_uri=registry_uri, **kw)
            self._vc_root, self._vc_uri = artifact_uri, tracking_uri or get_tracking_uri()

        def log_artifact(self, local_file, artifact_path=None):  # log_artifacts calls it per file
            fo = _active(self._vc_uri)
            if fo is None or _key(self._vc_root) not in fo.artifact_roots:
                return super().log_artifact(local_file, artifact_path)
            if not fo.down:
                try:
                    return super().log_artifact(local_file, artifact_path)
                except Exception as err:
                    if not unreachable(err):
                        raise
                    fo.trip(err)
            return fo.local_artifacts(self._vc_root).log_artifact(local_file, artifact_path)

    FailoverArtifacts.__name__ = f"Failover{base.__name__}"
    return FailoverArtifacts
