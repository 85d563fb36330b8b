"""MLflow for the steps: where the store is, one run per step, the tags every run carries.

Steps write their results to local files first and log them afterwards, so a dead tracking server
costs a retry, not the results.

Runs of one pipeline execution hang under one parent run: `step_run` finds it in the experiment by
the `vidcustom.pipeline_run` tag (tag `vidcustom.step` = "pipeline") or creates it, so steps in
separate processes (kfp.local subprocesses, pods) share it. A step run on its own has no parent.

The store is the configured one (mlflow.tracking_uri, else $MLFLOW_TRACKING_URI as it was before MLflow
touched it: `mlflow.set_tracking_uri` rewrites that variable, so configure() puts it back). With
mlflow.offline=buffer (the default) a tracking server is never waited on for long:
  - unreachable at the start of a step after `mlflow.retries` tries: the step logs to the local buffer
    <state>/mlflow-buffer (components/tracking/buffer.py) for `vidcustom mlflow sync` to upload later;
  - unreachable in the middle of a step (any call: metrics, artifacts, registry, the parent's end): each
    call gives up within about mlflow.failover_s and the process continues in the buffer
    (components/tracking/failover.py);
  - once a pipeline execution has runs in the buffer, its later steps log there too, so its parent run
    and registry version numbers stay in one store until sync.
mlflow.offline=fail stops the step instead, naming the server. SQLite stores are created under a file
lock (two runs starting at once on a fresh store). Runs of an attempt that died are ended KILLED by the
next start (components/tracking/liveness.py); a failed step ends its run FAILED.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager

from components.config import RunConfig

from .server import TrackingServerUnreachable, check_server, is_remote
from .store import ensure_experiment, git_commit, init_sqlite_store
from .tags import BUFFERED_FOR_TAG, PIPELINE_RUN_ENV, PIPELINE_RUN_TAG, PIPELINE_STEP, STEP_TAG

log = logging.getLogger(__name__)

OFFLINE_MEMORY_S = 30.0  # a server this process found dead this recently gets one try, not mlflow.retries

_offline_since: dict[str, float] = {}  # tracking URI -> when this process last found it unreachable


def target_uri(cfg: RunConfig) -> str:
    """The configured store: never the local buffer itself (uploading it would copy it into itself)."""
    from .buffer import buffer_uri

    uri = cfg.tracking_uri()
    if uri == buffer_uri(cfg.state):
        raise ValueError(f"the tracking store {uri} is vidcustom's offline buffer, not a tracking server: set "
                         "mlflow.tracking_uri or $MLFLOW_TRACKING_URI to the server (or unset it for the local "
                         "store); `vidcustom mlflow sync` uploads the buffer")
    return uri


def resolve_store(cfg: RunConfig) -> str:
    """The store this process logs to: the configured one, or the local buffer when it is an unreachable
    server (or this pipeline execution logs there already) and mlflow.offline=buffer. Raises RuntimeError
    naming the server when mlflow.offline=fail."""
    from . import buffer as tracking_buffer, failover as tracking_failover

    uri = target_uri(cfg)
    if not is_remote(uri):
        init_sqlite_store(uri)
        return uri
    buffer = cfg.mlflow.offline == "buffer"
    if buffer and tracking_failover.is_down(uri, cfg.state):
        return tracking_buffer.activate(cfg, uri, cause="stopped answering earlier in this process")
    pipeline_run = os.environ.get(PIPELINE_RUN_ENV)
    if buffer and pipeline_run and tracking_buffer.buffering(cfg.state, uri, pipeline_run):
        return tracking_buffer.activate(cfg, uri, cause=f"was unreachable earlier in pipeline run {pipeline_run}, "
                                        "whose runs stay together in the buffer until sync")
    recent = _offline_since.get(uri)
    # Found dead moments ago by this process (register configures twice): one quick try, not all the waits.
    retries = 1 if recent is not None and time.monotonic() - recent < OFFLINE_MEMORY_S else cfg.mlflow.retries
    try:
        check_server(uri, retries, cfg.mlflow.retry_wait_s)
    except TrackingServerUnreachable as err:
        _offline_since[uri] = time.monotonic()
        if not buffer:
            raise RuntimeError(
                f"{err}. Check that the server is running and answers `curl {uri.rstrip('/')}/health` from "
                "here, and that mlflow.tracking_uri / $MLFLOW_TRACKING_URI names the right host and port; or set "
                "mlflow.offline=buffer to log to a local buffer and upload it later with `vidcustom mlflow sync`. "
                "Step outputs on disk are kept.") from None
        return tracking_buffer.activate(cfg, uri, err)
    _offline_since.pop(uri, None)
    if buffer:
        tracking_failover.arm(uri, cfg.state, cfg.mlflow.experiment, cfg.mlflow.failover_s)
    else:  # offline=fail: a server dying mid-step fails the step within seconds, not minutes
        tracking_failover.bound_http(cfg.mlflow.failover_s)
    return uri


@contextmanager
def _env_kept(*names: str):
    """`mlflow.set_tracking_uri` / `set_registry_uri` rewrite $MLFLOW_TRACKING_URI / $MLFLOW_REGISTRY_URI
    (for subprocesses); put them back, so this process and its children keep the configured server as target,
    never the buffer."""
    before = {n: os.environ.get(n) for n in names}
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def configure(cfg: RunConfig) -> str:
    """Point MLflow (tracking and registry) at the store and select the experiment; returns the store URI,
    which is the local buffer's when the server is unreachable and mlflow.offline=buffer."""
    import mlflow

    uri = resolve_store(cfg)
    with _env_kept("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
    ensure_experiment(mlflow.MlflowClient(uri, uri), cfg.mlflow.experiment, uri)
    mlflow.set_experiment(cfg.mlflow.experiment)
    return uri


def version_numbering(cfg: RunConfig, name: str, version) -> str:
    """"server" when the current registry numbered version `version` of `name` for good; "buffer" when the
    number is the local buffer's (sync renumbers it). Steps that name another step's version in a tag pass
    this on, so sync reads the number right (`source_model` of an export)."""
    import mlflow

    from . import buffer as tracking_buffer, failover as tracking_failover

    uri = mlflow.get_registry_uri()
    if tracking_buffer.is_buffer_uri(uri, cfg.state):
        return "buffer"
    return tracking_failover.numbered_by(uri, name, version)


def logs_to_buffer(cfg: RunConfig) -> bool:
    """Whether this process's registry calls land in the local buffer now (started there or failed over)."""
    import mlflow

    from . import buffer as tracking_buffer, failover as tracking_failover

    uri = mlflow.get_registry_uri()
    return tracking_buffer.is_buffer_uri(uri, cfg.state) or tracking_failover.is_down(uri, cfg.state)


def model_tags(model_config) -> dict[str, str]:
    """The tags that say what model a run trained or used, from a ModelConfig or a checkpoint's record of it
    (its `model_config`): the checkpoint is the record of what was trained, not the run config."""
    get = model_config.get if isinstance(model_config, dict) else lambda k: getattr(model_config, k)
    return {"method": str(get("method")), "attention_design": str(get("attention_design"))}


def base_tags(cfg: RunConfig, step: str, data_version: str | None = None,
              model: dict[str, str] | None = None) -> dict[str, str]:
    tags = {STEP_TAG: step, "preset": cfg.preset, "git_commit": git_commit(), **(model or {})}
    if data_version:
        tags["data_version"] = data_version
    if os.environ.get(PIPELINE_RUN_ENV):
        tags[PIPELINE_RUN_TAG] = os.environ[PIPELINE_RUN_ENV]
    return tags


def _find_parents(client, experiment_id: str, pipeline_run: str) -> list:
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{PIPELINE_RUN_TAG}` = '{pipeline_run}' and "
                              f"tags.`{STEP_TAG}` = '{PIPELINE_STEP}'", max_results=50)
    return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))


def pipeline_parent(cfg: RunConfig, client, experiment_id: str, data_version: str | None = None,
                    target_uri: str | None = None, model: dict[str, str] | None = None) -> str | None:
    """The parent run of this pipeline execution ($VIDCUSTOM_PIPELINE_RUN) in the client's store, created
    when missing; None outside a pipeline. Two steps creating it at once both keep the earlier one (the
    later is deleted), so sequential steps, and mostly even concurrent ones, share one parent."""
    pipeline_run = os.environ.get(PIPELINE_RUN_ENV)
    if not pipeline_run:
        return None
    found = _find_parents(client, experiment_id, pipeline_run)
    if not found:
        tags = base_tags(cfg, PIPELINE_STEP, data_version, model)
        if target_uri:
            tags[BUFFERED_FOR_TAG] = target_uri
        mine = client.create_run(experiment_id, tags=tags, run_name=f"pipeline {pipeline_run}")
        found = _find_parents(client, experiment_id, pipeline_run) or [mine]
        if found[0].info.run_id != mine.info.run_id:  # lost a creation race: use the winner's
            client.delete_run(mine.info.run_id)
    parent = found[0]
    if data_version and not parent.data.tags.get("data_version"):
        client.set_tag(parent.info.run_id, "data_version", data_version)
    return parent.info.run_id


def _set_parent_status(client, parent_id: str, status: str) -> None:
    from .liveness import OWNER_TAG, owner

    try:
        if status == "RUNNING":  # whoever runs now owns it: a stale-run sweep ends it if that process dies
            client.update_run(parent_id, status="RUNNING")
            client.set_tag(parent_id, OWNER_TAG, owner())
        else:
            client.set_terminated(parent_id, status=status)
    except Exception as err:  # noqa: BLE001 - the parent's status is cosmetic; the step's run matters
        log.warning("could not set pipeline run %s to %s: %s", parent_id, status, err)


def begin_pipeline(cfg: RunConfig) -> dict:
    """Create (or find) the parent run of the pipeline execution $VIDCUSTOM_PIPELINE_RUN, before any step;
    returns {"store": URI, "parent_run_id": id}. Leaves MLflow's global tracking URI alone."""
    import mlflow

    from . import buffer as tracking_buffer
    from .liveness import end_stale_runs

    uri = resolve_store(cfg)
    client = mlflow.MlflowClient(uri, uri)
    exp_id = ensure_experiment(client, cfg.mlflow.experiment, uri)
    end_stale_runs(client, exp_id)
    buffered = tracking_buffer.is_buffer_uri(uri, cfg.state)
    target = target_uri(cfg)
    model = model_tags(cfg.model) if cfg.step is None else None  # the driver holds the whole config
    parent = pipeline_parent(cfg, client, exp_id, target_uri=target if buffered else None, model=model)
    if parent and buffered:
        tracking_buffer.record_run(cfg.state, client.get_run(parent), target, cfg.mlflow.experiment)
    if parent:
        _set_parent_status(client, parent, "RUNNING")
    return {"store": uri, "parent_run_id": parent}


def end_pipeline(pipeline: dict, succeeded: bool) -> None:
    """Mark the parent run FINISHED or FAILED; never raises (a server gone by now: the buffer keeps it)."""
    if not pipeline.get("parent_run_id"):
        return
    try:
        import mlflow

        client = mlflow.MlflowClient(pipeline["store"], pipeline["store"])
        _set_parent_status(client, pipeline["parent_run_id"], "FINISHED" if succeeded else "FAILED")
    except Exception as err:  # noqa: BLE001
        log.warning("could not close pipeline run %s: %s", pipeline["parent_run_id"], err)


def _end_run(status: str) -> None:
    import mlflow

    try:
        mlflow.end_run(status)
    except Exception as err:  # noqa: BLE001 - must not hide why the step failed
        log.warning("could not end the step's MLflow run as %s: %s", status, err)


@contextmanager
def step_run(cfg: RunConfig, step: str, data_version: str | None = None, log_config: bool = True,
             model: dict[str, str] | None = None):
    """An MLflow run for one step, tagged with preset, git commit, data version and `model` (`model_tags`: what
    the step trains or uses, from its checkpoint), nested under the pipeline execution's parent run when there
    is one ($VIDCUSTOM_PIPELINE_RUN). It logs the config the step received (`config.json`, its own section as
    params). It ends FINISHED, FAILED (the step raised) or KILLED (SIGTERM, Ctrl-C); so does the parent, until
    a later step."""
    import mlflow

    from . import buffer as tracking_buffer
    from .liveness import OWNER_TAG, StepTerminated, end_stale_runs, owner, sigterm_raises

    uri = configure(cfg)
    client = mlflow.MlflowClient(uri, uri)
    exp_id = ensure_experiment(client, cfg.mlflow.experiment, uri)
    end_stale_runs(client, exp_id, os.environ.get(PIPELINE_RUN_ENV), step)
    buffered = tracking_buffer.is_buffer_uri(uri, cfg.state)
    target = target_uri(cfg) if buffered else None
    tags = base_tags(cfg, step, data_version, model) | {OWNER_TAG: owner()}
    if buffered:
        tags[BUFFERED_FOR_TAG] = target
    parent = pipeline_parent(cfg, client, exp_id, data_version, target)
    nesting = {"nested": True, "parent_run_id": parent} if parent else {}
    if parent:
        _set_parent_status(client, parent, "RUNNING")
    status, run = "FAILED", None
    with sigterm_raises():
        try:
            run = mlflow.start_run(run_name=step, tags=tags, **nesting)
            if buffered:
                if parent:
                    tracking_buffer.record_run(cfg.state, client.get_run(parent), target, cfg.mlflow.experiment)
                tracking_buffer.record_run(cfg.state, run, target, cfg.mlflow.experiment)
            if log_config:
                received = cfg.declared()
                mlflow.log_dict(received, "config.json")
                mlflow.log_params(flatten(received.get(step, {}), prefix=step))
            yield run
            status = "FINISHED"
        except (StepTerminated, KeyboardInterrupt):
            status = "KILLED"
            raise
        finally:
            if run is not None:
                _end_run(status)
            if parent:  # the parent ends with its latest step; a later step sets it RUNNING again
                _set_parent_status(client, parent, status)
            if buffered and run is not None:
                tracking_buffer.record_model_versions(cfg.state, client, run.info.run_id, target)


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, key))
        else:
            out[key] = str(v)[:500]
    return out
