"""python -m components.export CHECKPOINT_DIR OUTPUT_DIR [--registration JSON] [--params ...] [--set ...]

Exports the pipeline to ONNX (denoiser with all guidance branches batched, encoders, decoder) with a
NumPy scheduler loop for onnxruntime, checks parity against PyTorch (same seed, same inputs, tolerance
export.atol) and, when it holds, registers `export.model_name` (default vidcustom-onnx) with the aliases
of the PyTorch version given by --registration (the register step's JSON output).
"""

import argparse
import json

from components.cli import add_config_args, config_from_args, data_version_arg, main_wrapper


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m components.export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint_dir")
    ap.add_argument("output_dir")
    ap.add_argument("--data-version", default=None, type=data_version_arg)
    ap.add_argument("--registration", default=None, help="the register step's JSON output")
    add_config_args(ap)
    args = ap.parse_args()

    def go():
        from components.export.export import run

        reg = json.loads(args.registration) if args.registration else None
        print(json.dumps(run(args.checkpoint_dir, args.output_dir, config_from_args(args), args.data_version, reg),
                         indent=2))

    main_wrapper(go)


if __name__ == "__main__":
    main()
