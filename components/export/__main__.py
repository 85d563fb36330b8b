"""python -m components.export CHECKPOINT_DIR OUTPUT_DIR [--registration JSON] [--params ...] [--set ...]

Exports the pipeline to ONNX (the raw denoiser with a dynamic batch, encoders, decoder) with a NumPy
scheduler loop for onnxruntime, checks parity against PyTorch (same seed, same inputs, tolerance
export.atol), gates each of export.accelerations against the unaccelerated sampler (export.accel_atol,
export.accel_identity_drop; the accepted ones are what the served sampler uses) and, when parity holds,
registers `export.model_name` (default vidcustom-onnx) with the aliases of the PyTorch version given by
--registration (the register step's JSON output).
"""

from components.cli import StepCLI, arg, data_version_option


def _export(args, cfg):
    import json

    from components.export.export import run

    registration = json.loads(args.registration) if args.registration else None
    return run(args.checkpoint_dir, args.output_dir, cfg, args.data_version, registration)


cli = StepCLI("components.export", __doc__, _export, [
    arg("checkpoint_dir"),
    arg("output_dir"),
    data_version_option(),
    arg("--registration", default=None, help="the register step's JSON output"),
])
build_parser, main = cli.build_parser, cli.main

if __name__ == "__main__":
    raise SystemExit(main())
