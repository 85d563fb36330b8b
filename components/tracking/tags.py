"""The tags and environment names vidcustom's tracking puts on MLflow entities, in one place."""

PIPELINE_RUN_TAG = "vidcustom.pipeline_run"
PIPELINE_RUN_ENV = "VIDCUSTOM_PIPELINE_RUN"
STEP_TAG = "vidcustom.step"
PIPELINE_STEP = "pipeline"  # the STEP_TAG value of a pipeline's parent run
PARENT_TAG = "mlflow.parentRunId"
OWNER_TAG = "vidcustom.owner"  # on RUNNING runs: "<host>:<pid>:<process start>" (liveness.py)

# Offline buffer and sync (buffer.py, failover.py, sync.py)
CONTINUES_TAG = "vidcustom.continues"  # on buffer runs/logged models/versions: the server entity they continue
SERVER_NUMBERS_TAG = "vidcustom.server_numbers"  # on buffer versions: version numbers in their tags are the server's
BUFFERED_FOR_TAG = "vidcustom.buffered_for"  # on buffered runs: the server they were meant for
SYNCED_FROM_TAG = "vidcustom.synced_from"  # on uploaded runs/logged models/versions: their buffer id
SYNC_COMPLETE_TAG = "vidcustom.sync_complete"  # on uploaded runs: every part arrived
SYNCED_TO_TAG = "vidcustom.synced_to"  # on buffered runs: "<server URI> <server run id>"
BUFFERED_CREATED_TAG = "vidcustom.buffered_created"  # on uploaded versions: creation time (ms) in the buffer
NOT_COPIED = {PARENT_TAG, SYNCED_TO_TAG, SYNCED_FROM_TAG, SYNC_COMPLETE_TAG, CONTINUES_TAG, SERVER_NUMBERS_TAG}

# Registry tags that name other versions (sync renumbers them)
GATE_CHAMPION_TAG = "gate_champion"  # register: the champion version the gate compared against, or "none"
SOURCE_MODEL_TAG = "source_model"  # export: "<torch model name>/<version>"
CHAMPION = "champion"
