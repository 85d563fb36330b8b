"""Is the tracking server there: a bounded health check before a step starts logging."""

from __future__ import annotations

HEALTH_TIMEOUT_S = 5


class TrackingServerUnreachable(RuntimeError):
    def __init__(self, uri: str, tries: int, last: BaseException | None):
        self.uri, self.tries, self.last = uri, tries, last
        super().__init__(f"MLflow tracking server {uri} is unreachable after {tries} tries ({last})")


def is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def check_server(uri: str, retries: int = 3, wait_s: float = 2.0) -> None:
    """GET <uri>/health, `retries` tries in all, waiting wait_s, 2*wait_s, 4*wait_s, ... between them (MLflow's
    own HTTP retry session: connection errors and 429/5xx answers are retried)."""
    if not is_remote(uri):
        return
    from mlflow.utils.rest_utils import MlflowHostCreds, http_request

    try:
        response = http_request(MlflowHostCreds(uri.rstrip("/")), "/health", "GET", max_retries=max(0, retries - 1),
                                backoff_factor=wait_s, backoff_jitter=0, timeout=HEALTH_TIMEOUT_S)
    except Exception as err:  # noqa: BLE001 - MLflow wraps the transport error; its message says which
        raise TrackingServerUnreachable(uri, retries, err) from None
    if response.status_code != 200:
        raise TrackingServerUnreachable(uri, retries, RuntimeError(f"/health answered {response.status_code}"))
