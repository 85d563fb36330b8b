"""`vidcustom run`'s console: task output (subprocesses included) goes to the log file, the terminal gets one
line per step with its time, and the summary reads the headline figures back."""

import io
import os
import subprocess
import sys

from pipelines.console import quiet_console
from pipelines.summary import headline_lines

KFP_LINES = [
    "\x1b[36m'synthesize'\x1b[0m",
    "Executing task \x1b[36m'synthesize'\x1b[0m",
    "{\"config\": \"a very long config json that must not reach the terminal\"}",
    "Task \x1b[36m'synthesize'\x1b[0m finished with status \x1b[32mSUCCESS\x1b[0m",
    "Executing task \x1b[36m'train'\x1b[0m",
    "train stage1:  45%|####5     | 405/900 [00:10<00:12, 40.1step/s]\r"
    "train stage1: 100%|##########| 900/900 [00:20<00:00, 40.1step/s]",
    "Task \x1b[36m'train'\x1b[0m finished with status \x1b[31mFAILURE\x1b[0m",
]


def test_task_output_goes_to_the_log_and_the_console_shows_one_line_per_step(tmp_path):
    log = tmp_path / "logs" / "run.log"
    terminal = io.StringIO()
    script = "import sys\nfor line in sys.argv[1:]: print(line, flush=True)"
    with quiet_console(log, stream=terminal) as times:
        os.write(1, b"from this process\n")  # what print() does outside pytest's capture
        subprocess.run([sys.executable, "-c", script, *KFP_LINES], check=True)  # a task subprocess: fd 1
    shown = terminal.getvalue().splitlines()
    assert [line.split()[:2] for line in shown] == [["✓", "synthesize"], ["✗", "train"]]
    assert "(FAILURE)" in shown[1] and "config" not in terminal.getvalue()
    text = log.read_text()
    assert "from this process" in text and "a very long config json" in text and "900/900" in text
    assert [(n, s) for n, _, s in times.steps] == [("synthesize", "SUCCESS"), ("train", "FAILURE")]


def test_headline_lines_show_the_image_and_its_paired_effect():
    metrics = {"sprites_identity": 0.61, "ablation_no_image/sprites_identity": 0.30,
               "baseline_untrained/sprites_identity": 0.12, "image_effect/sprites_identity": 0.31,
               "image_effect/sprites_identity_lo": 0.25, "image_effect/sprites_identity_hi": 0.37,
               "sprites_motion": 0.4}
    lines = headline_lines(metrics)
    assert lines[0].split() == ["identity", "0.610", "with", "the", "image", "|", "0.300", "image", "dropped", "|",
                                "0.120", "untrained"]
    assert "image effect +0.310 (paired, 95 % CI +0.250 … +0.370)" in lines[1]
    assert lines[2].split()[:2] == ["motion", "0.400"]
