"""What every step's CLI shares: the config flags, logging, the environment checks (preflight.py), and
turning expected errors (a bad value, a read-only or full state dir, a store the installed MLflow cannot
read) into one clear line. `--debug` or VIDCUSTOM_DEBUG=1 shows the traceback instead. StepCLI is the one
body of every `python -m components.<step>`; each __main__.py declares only its arguments and its run."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import STATE_DIR_ENV, STEP_READS, RunConfig, config_from_json, load_config
from .preflight import check_mlflow_store, preflight
from .storage import FULL_ERRNOS, READ_ONLY_ERRNOS, StorageError, write_problem

# KFP components run in this image on a cluster; kfp.local (SubprocessRunner, use_venv=False) ignores it.
BASE_IMAGE = "ghcr.io/vidcustom/vidcustom:0.1.0"
DEBUG_ENV = "VIDCUSTOM_DEBUG"


class _Debug(argparse.Action):
    """--debug sets VIDCUSTOM_DEBUG=1, so main_wrapper and the step subprocesses of a run all see it."""

    def __call__(self, parser, namespace, values, option_string=None):
        os.environ[DEBUG_ENV] = "1"


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=None, help="params.yaml to read (default: the preset's values)")
    parser.add_argument("--preset", default=None, help="tiny | ci | cogvideox-2b | cogvideox-5b")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value, e.g. --set train.stage1_steps=100 (repeatable)")
    parser.add_argument("--config-json", default=None, help=argparse.SUPPRESS)  # used by KFP components
    parser.add_argument("--debug", nargs=0, action=_Debug, help="show the traceback of an error, not one line "
                        f"(or set {DEBUG_ENV}=1)")


def config_from_args(args: argparse.Namespace, check_state: bool = True) -> RunConfig:
    """The run config of a CLI's flags; with check_state, the state dir and MLflow store are checked too."""
    if getattr(args, "config_json", None):
        cfg = config_from_json(args.config_json)
    else:
        cfg = load_config(args.params, args.overrides, args.preset)
    if check_state:
        preflight(cfg)
    return cfg


def _home() -> tuple[Path, str]:
    """The state dir and the setting that chose it, from the environment alone (the top level has no config)."""
    if os.environ.get(STATE_DIR_ENV):
        return Path(os.environ[STATE_DIR_ENV]).resolve(), STATE_DIR_ENV
    return Path(".vidcustom").resolve(), f"state_dir (or ${STATE_DIR_ENV})"


def _chain(err: BaseException | None):
    """err and the exceptions it was raised from (not those a `raise ... from None` hid)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or (None if err.__suppress_context__ else err.__context__)


_SQLITE_FAULTS = ("readonly database", "database or disk is full", "unable to open database file",
                  "disk I/O error", "out-of-date database schema")


def error_line(err: BaseException) -> str | None:
    """The one line an expected failure prints, or None for a bug (whose traceback is then shown)."""
    if isinstance(err, (ValueError, FileNotFoundError, RuntimeError)):  # raised with a message for people
        return str(err)
    home, home_setting = _home()
    for e in _chain(err):
        if isinstance(e, OSError) and e.errno in (*READ_ONLY_ERRNOS, *FULL_ERRNOS):  # the environment, mid-run
            path = e.filename2 or e.filename
            if not path:
                return (f"a write failed: {e.strerror}; check the free space and permissions of {home_setting} "
                        f"({home}) and of the output paths given")
            return write_problem(path, e, home_setting if Path(path).resolve().is_relative_to(home) else None)
        if any(fault in str(e) for fault in _SQLITE_FAULTS):
            # The store in use: mlflow.set_tracking_uri (every step's configure) sets $MLFLOW_TRACKING_URI.
            uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
            in_home = uri.startswith("sqlite:///") and Path(uri[len("sqlite:///"):]).resolve().is_relative_to(home)
            setting = home_setting if in_home else "mlflow.tracking_uri / $MLFLOW_TRACKING_URI"
            try:  # the same checks as at start-up say which fault it is
                check_mlflow_store(uri, setting)
            except StorageError as found:
                return str(found)
            return f"the MLflow store {uri} failed: {str(e).splitlines()[0]}; check it, or point {setting} elsewhere"
    return None


def _no_traceback(record: logging.LogRecord) -> bool:
    return record.exc_info is None


def guarded(fn: Callable[[], int | None]) -> int:
    """fn()'s exit status (None is 0), with logging set up; an expected failure prints one line naming the
    cause and exits 2. Parse the arguments first: --debug must be set before this looks."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    if not debug:  # MLflow logs a traceback for each database error it then raises; error_line reports it once
        logging.getLogger("mlflow.store.db.utils").addFilter(_no_traceback)
    try:
        return fn() or 0
    except Exception as err:
        line = error_line(err)
        if line is None or debug:
            raise
        print(f"error: {line}", file=sys.stderr)
        sys.exit(2)


def main_wrapper(fn: Callable[[], int | None]) -> None:
    """Run a CLI entry point: expected failures print one line naming the cause, exit 2."""
    sys.exit(guarded(fn))


def data_version_arg(value: str) -> str:
    """`--data-version HASH`, or `@path/validation.json` to read the hash the validate step wrote (dvc.yaml uses it)."""
    if not value.startswith("@"):
        return value
    path = Path(value[1:])
    try:
        return json.loads(path.read_text())["dvc_hash"]
    except (OSError, ValueError, KeyError) as err:
        raise argparse.ArgumentTypeError(f"cannot read dvc_hash from {path}: {err}") from None


# ---------------------------------------------------------------- the step CLIs: `python -m components.<step>`
Arg = tuple[tuple[str, ...], dict]


def arg(*flags: str, **kwargs) -> Arg:
    """One argument of a step's CLI, as argparse's add_argument takes it: arg("dataset_dir", help="...")."""
    return flags, kwargs


def data_version_option(help: str = "the dataset's DVC hash, or @path/validation.json to read the one the "
                                    "validate step wrote") -> Arg:
    return arg("--data-version", default=None, type=data_version_arg, help=help)


@dataclass(frozen=True)
class StepCLI:
    """What each components/<step>/__main__.py declares; the rest (parser, config flags, config and state
    checks, JSON output, one-line errors, exit status) is shared here. A step's own module is passed in as
    `run`, never imported here (the step packages sit above this module).

    prog is `python -m <package>`; `doc` (the module docstring) is the --help description; `arguments` come
    before the shared config flags (an Arg, or a function that adds to the parser); `run(args, cfg)` does the
    step's work, importing its heavy modules itself (so --help stays fast), and a result that is not None is
    printed as JSON. `epilog` (examples) ends the help. With config=False (compare) no config flags are added
    and cfg is None.
    """

    package: str
    doc: str | None
    run: Callable[[argparse.Namespace, RunConfig | None], object]
    arguments: Sequence[Arg | Callable[[argparse.ArgumentParser], None]] = ()
    config: bool = True
    epilog: str | None = None

    def build_parser(self) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog=f"python -m {self.package}", description=self.doc,
                                         epilog=self.epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
        for item in self.arguments:
            if callable(item):
                item(parser)
            else:
                flags, kwargs = item
                parser.add_argument(*flags, **kwargs)
        if self.config:
            add_config_args(parser)
        return parser

    def main(self, argv: list[str] | None = None) -> int:
        """Parse argv (default sys.argv[1:]) and run the step: 0 when it succeeds; an expected failure prints
        one line and exits 2, a bad flag exits 2 with argparse's usage."""
        args = self.build_parser().parse_args(argv)  # before guarded, which reads --debug's setting
        return guarded(lambda: self._go(args))

    def _go(self, args: argparse.Namespace) -> int:
        cfg = config_from_args(args) if self.config else None  # a bad value or state dir: before the heavy imports
        step = self.package.rsplit(".", 1)[-1]
        if cfg is not None and step in STEP_READS:  # the step gets what it reads, as under KFP (one parse)
            cfg = config_from_json(cfg.for_step(step))
        result = self.run(args, cfg)
        if result is not None:
            print(json.dumps(result, indent=2))
        return 0
