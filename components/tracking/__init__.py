"""MLflow tracking for the steps and the pipeline driver.

    tags      the tag and environment names on runs and versions
    server    the bounded health check of a tracking server
    store     local SQLite stores (created under a lock), experiments, the git commit
    liveness  runs of dead processes ended KILLED, SIGTERM ending the step's run
    buffer    the local offline buffer and its manifest of pending runs
    failover  a server dying mid-step: the step continues in the buffer
    runs      what steps use: the store in use, one run per step under the pipeline's parent run
    sync      `vidcustom mlflow sync` (imported only by its CLI): the buffer uploaded to the server

Steps import from this package (`from components.tracking import step_run`); the facade is `runs`.
"""

from .runs import (base_tags, begin_pipeline, configure, end_pipeline, flatten, logs_to_buffer, model_tags,
                   resolve_store, step_run, target_uri, version_numbering)
from .server import TrackingServerUnreachable, is_remote
from .store import ensure_experiment, git_commit, init_sqlite_store
from .tags import PIPELINE_RUN_ENV, PIPELINE_RUN_TAG, PIPELINE_STEP, STEP_TAG
