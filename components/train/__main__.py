"""python -m components.train DATASET_DIR CHECKPOINT_DIR [--data-version HASH] [--params ...] [--set ...]

Two-stage SUGAR training (stage plan from train.strategy) under DeepSpeed ZeRO with train.num_procs ranks
(CPU processes over gloo without a GPU). Re-running after a failure resumes from the last saved step.
"""

import argparse
import json

from components.cli import add_config_args, config_from_args, data_version_arg, main_wrapper


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m components.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset_dir", help="a validated dataset directory (manifest.parquet + media)")
    ap.add_argument("checkpoint_dir", help="where the trained pipeline is saved")
    ap.add_argument("--data-version", default=None, type=data_version_arg, help="the dataset's DVC hash, recorded in the checkpoint")
    add_config_args(ap)
    args = ap.parse_args()

    def go():
        from components.train.train import run

        print(json.dumps(run(args.dataset_dir, args.checkpoint_dir, config_from_args(args), args.data_version),
                         indent=2))

    main_wrapper(go)


if __name__ == "__main__":
    main()
