"""Rank 0's loss in MLflow while training runs, not only after it.

A background thread posts each logged record (`loss` and `loss/<stage>` on the global step axis) to the
step's run, so the training loop never waits on the tracking server. Best effort: the first failure (a
dead or hung server: MLflow's HTTP retries and timeout are bounded by the step, see
components/tracking/failover.bound_http) stops live logging with one warning. Nothing is lost either way:
metrics.jsonl holds every record, and the train step logs the points the run lacks afterwards (through its
failover, so into the offline buffer if the server went away).
"""

from __future__ import annotations

import logging
import queue
import threading

log = logging.getLogger(__name__)

CLOSE_WAIT_S = 30.0  # at exit, how long the last records may take to reach the server


def metric_points(record: dict, global_step: int) -> list:
    """The MLflow metrics of one metrics.jsonl record: `loss` and `loss/<stage>` at the global step."""
    from mlflow.entities import Metric

    ts = int(record["timestamp"] * 1000)
    return [Metric("loss", record["loss"], ts, global_step),
            Metric(f"loss/{record['stage']}", record["loss"], ts, global_step)]


class LiveMetrics:
    def __init__(self, tracking_uri: str, run_id: str):
        self.uri, self.run_id = tracking_uri, run_id
        self._queue: queue.Queue = queue.Queue()
        self.failed: BaseException | None = None
        self._thread = threading.Thread(target=self._post, name="live-metrics", daemon=True)
        self._thread.start()

    def log(self, record: dict, global_step: int) -> None:
        if self.failed is None:
            self._queue.put(metric_points(record, global_step))

    def _post(self) -> None:
        from mlflow import MlflowClient

        client = MlflowClient(self.uri)
        while (metrics := self._queue.get()) is not None:
            if self.failed is not None:
                continue
            try:
                client.log_batch(self.run_id, metrics=metrics)
            except Exception as err:  # noqa: BLE001 - live logging must never stop training
                self.failed = err
                log.warning("live loss logging to %s stopped (%s); the step logs the rest when training ends",
                            self.uri, err)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(CLOSE_WAIT_S)
