"""Is the tracking server there: a bounded health check before a step starts logging."""

from __future__ import annotations

import time


class TrackingServerUnreachable(RuntimeError):
    def __init__(self, uri: str, tries: int, last: BaseException | None):
        self.uri, self.tries, self.last = uri, tries, last
        super().__init__(f"MLflow tracking server {uri} is unreachable after {tries} tries ({last})")


def is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def check_server(uri: str, retries: int = 3, wait_s: float = 2.0) -> None:
    """GET <uri>/health up to `retries` times, waiting wait_s, 2*wait_s, ... between tries."""
    if not is_remote(uri):
        return
    import urllib.request

    last = None
    for attempt in range(retries):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5):
                return
        except OSError as err:
            last = err
            if attempt + 1 < retries:
                time.sleep(wait_s * (attempt + 1))
    raise TrackingServerUnreachable(uri, retries, last)
