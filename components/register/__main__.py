"""python -m components.register CHECKPOINT_DIR EVALUATION_DIR [--data-version HASH] [--params ...] [--set ...]

Logs the checkpoint as the MLflow pyfunc model `register.model_name` (default vidcustom), tags the version
with data version, git commit, preset, metrics and the checkpoint's content hash, sets alias `challenger`,
and `champion` when the gate holds: every floor in `register.gate`, every pair in `register.must_beat`,
and no metric in `register.no_regression` below the current champion's by more than `register.tolerance`.
The decision and its reasons are tagged on the version (`gate`, `gate_reasons`) and written to its
description. Registering a checkpoint already registered (same content hash) reuses that version.
"""

from components.cli import StepCLI, arg, data_version_option


def _register(args, cfg):
    import json
    from pathlib import Path

    from components.register.register import run

    result = run(args.checkpoint_dir, args.evaluation_dir, cfg, args.data_version)
    if args.output_json:
        Path(args.output_json).write_text(json.dumps(result))
    return result


cli = StepCLI("components.register", __doc__, _register, [
    arg("checkpoint_dir"),
    arg("evaluation_dir", help="the evaluate step's output (metrics.json)"),
    data_version_option(),
    arg("--output-json", default=None, help="also write the result (version, aliases) to this file"),
])
build_parser, main = cli.build_parser, cli.main

if __name__ == "__main__":
    raise SystemExit(main())
