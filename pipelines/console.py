"""What `vidcustom run` shows a person: one line per pipeline step, while every log goes to a file.

kfp.local echoes each task's inputs (the whole config JSON), its subprocess output and every progress bar:
thousands of lines. `quiet_console(log_file)` sends process-level stdout and stderr (file descriptors 1
and 2, so task subprocesses follow) to `log_file` and follows that file from a thread, printing to the
real terminal one line per step as it ends, with its wall time; on a terminal the running step's line is
updated in place with the step's progress bar.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_START = re.compile(r"Executing task '([^']+)'")
_END = re.compile(r"Task '([^']+)' finished with status (\w+)")
_BAR = re.compile(r"([\w ]+?):\s+(\d+)%\|[^|]*\|\s*(\d+)/(\d+)")  # tqdm: "train stage1:  45%|###| 405/900"
TASK_LABELS = {"resolve-config": "config"}


@dataclass
class StepTimes:
    """Each step's wall time and status as the console saw them, in order."""

    steps: list[tuple[str, float, str]] = field(default_factory=list)  # (name, seconds, status)


def _fmt(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m {s:02d}s" if m else f"{s}s"


class _Follower(threading.Thread):
    def __init__(self, path: Path, out, times: StepTimes, live: bool):
        super().__init__(daemon=True)
        self.path, self.out, self.times, self.live = path, out, times, live
        self.stop = threading.Event()
        self.current: tuple[str, float] | None = None

    def _say(self, text: str, final: bool) -> None:
        if self.live:
            self.out.write("\r\x1b[2K" + text + ("\n" if final else ""))
        elif final:
            self.out.write(text + "\n")
        self.out.flush()

    def _line(self, line: str) -> None:
        line = _ANSI.sub("", line)
        if m := _START.search(line):
            name = TASK_LABELS.get(m.group(1), m.group(1))
            self.current = (name, time.monotonic())
            self._say(f"  … {name}", final=False)
        elif m := _END.search(line):
            name = TASK_LABELS.get(m.group(1), m.group(1))
            took = time.monotonic() - self.current[1] if self.current else 0.0
            ok = m.group(2) == "SUCCESS"
            self.times.steps.append((name, took, m.group(2)))
            self._say(f"  {'✓' if ok else '✗'} {name:<12} {_fmt(took):>8}" + ("" if ok else f"  ({m.group(2)})"),
                      final=True)
            self.current = None
        elif self.current and self.live and (bars := _BAR.findall(line)):
            desc, pct, done, total = bars[-1]
            name, start = self.current
            self._say(f"  … {name:<12} {_fmt(time.monotonic() - start):>8}  {desc.strip()} {done}/{total}",
                      final=False)

    def run(self) -> None:
        with self.path.open("r", errors="replace", newline="") as f:
            pending = ""
            while True:
                chunk = f.read()
                if chunk:
                    pending += chunk
                    # tqdm redraws with \r: treat it as a line end so the latest bar is seen
                    *lines, pending = re.split(r"\r\n|\r|\n", pending)
                    for line in lines:
                        self._line(line)
                elif self.stop.is_set():
                    return
                else:
                    time.sleep(0.2)


@contextlib.contextmanager
def quiet_console(log_file: str | Path, stream=None):
    """Within the block, stdout/stderr (fds 1, 2) go to `log_file`; `stream` (default: the terminal) gets one
    line per pipeline step. Yields StepTimes, filled as steps end."""
    log_file = Path(log_file)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    out = stream or os.fdopen(os.dup(saved[0]), "w", encoding="utf-8", errors="replace", closefd=True)
    times = StepTimes()
    with log_file.open("w", encoding="utf-8") as log:  # a fresh file: the follower reads it from the start
        follower = _Follower(log_file, out, times, live=out.isatty())
        follower.start()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield times
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            follower.stop.set()
            follower.join(timeout=5)
            if stream is None:
                out.close()
