"""Cross-process locks on local state (filelock: an OS lock, released when the holder dies, even by SIGKILL)."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)


@contextmanager
def held(path: str | Path, what: str, timeout_s: float):
    """Hold the lock file `path` for the block; if another process holds it, say so and wait up to timeout_s,
    then raise TimeoutError naming `what` and the lock file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("another run is using %s; waiting for it (up to %.0f s; lock %s)", what, timeout_s, path)
        try:
            lock.acquire(timeout=timeout_s)
        except Timeout:
            raise TimeoutError(f"{what} is still in use by another run after {timeout_s:.0f} s (lock {path}); "
                               "wait for that run to finish, or stop it, and re-run") from None
    try:
        yield
    finally:
        lock.release()
