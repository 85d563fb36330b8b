"""What every step's CLI shares: the config flags, logging, and turning expected errors into one clear line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from .config import RunConfig, load_config

# KFP components run in this image on a cluster; kfp.local (SubprocessRunner, use_venv=False) ignores it.
BASE_IMAGE = "ghcr.io/vidcustom/vidcustom:0.1.0"


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=None, help="params.yaml to read (default: the preset's values)")
    parser.add_argument("--preset", default=None, help="tiny | ci | cogvideox-2b | cogvideox-5b")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value, e.g. --set train.stage1_steps=100 (repeatable)")
    parser.add_argument("--config-json", default=None, help=argparse.SUPPRESS)  # used by KFP components


def config_from_args(args: argparse.Namespace) -> RunConfig:
    if getattr(args, "config_json", None):
        from .config import config_from_json

        return config_from_json(args.config_json)
    return load_config(args.params, args.overrides, args.preset)


def main_wrapper(fn: Callable[[], int | None]) -> None:
    """Run a CLI entry point: expected failures print one line naming the cause, exit 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        sys.exit(fn() or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def data_version_arg(value: str) -> str:
    """`--data-version HASH`, or `@path/validation.json` to read the hash the validate step wrote (dvc.yaml uses it)."""
    if not value.startswith("@"):
        return value
    import json
    from pathlib import Path

    path = Path(value[1:])
    try:
        return json.loads(path.read_text())["dvc_hash"]
    except (OSError, ValueError, KeyError) as err:
        raise argparse.ArgumentTypeError(f"cannot read dvc_hash from {path}: {err}") from None
