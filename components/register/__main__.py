"""python -m components.register CHECKPOINT_DIR EVALUATION_DIR [--data-version HASH] [--params ...] [--set ...]

Logs the checkpoint as the MLflow pyfunc model `register.model_name` (default vidcustom), tags the version
with data version, git commit, preset, metrics and the checkpoint's content hash, sets alias `challenger`,
and `champion` when the gate holds: every floor in `register.gate`, every pair in `register.must_beat`,
and no metric in `register.no_regression` below the current champion's by more than `register.tolerance`.
The decision and its reasons are tagged on the version (`gate`, `gate_reasons`) and written to its
description. Registering a checkpoint already registered (same content hash) reuses that version.
"""

import argparse
import json

from components.cli import add_config_args, config_from_args, data_version_arg, main_wrapper


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m components.register", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint_dir")
    ap.add_argument("evaluation_dir", help="the evaluate step's output (metrics.json)")
    ap.add_argument("--data-version", default=None, type=data_version_arg)
    ap.add_argument("--output-json", default=None, help="also write the result (version, aliases) to this file")
    add_config_args(ap)
    args = ap.parse_args()

    def go():
        from components.register.register import run

        result = run(args.checkpoint_dir, args.evaluation_dir, config_from_args(args), args.data_version)
        if args.output_json:
            from pathlib import Path

            Path(args.output_json).write_text(json.dumps(result))
        print(json.dumps(result, indent=2))

    main_wrapper(go)


if __name__ == "__main__":
    main()
