"""python -m components.train DATASET_DIR CHECKPOINT_DIR [--data-version HASH] [--params ...] [--set ...]

Two-stage SUGAR training (stage plan from train.strategy) under DeepSpeed ZeRO with train.num_procs ranks
(CPU processes over gloo without a GPU). Re-running after a failure resumes from the last saved step.
"""

from components.cli import StepCLI, arg, data_version_option


def _train(args, cfg):
    from components.train.train import run

    return run(args.dataset_dir, args.checkpoint_dir, cfg, args.data_version)


cli = StepCLI("components.train", __doc__, _train, [
    arg("dataset_dir", help="a validated dataset directory (manifest.parquet + media)"),
    arg("checkpoint_dir", help="where the trained pipeline is saved"),
    data_version_option("the dataset's DVC hash, recorded in the checkpoint"),
])
build_parser, main = cli.build_parser, cli.main

if __name__ == "__main__":
    raise SystemExit(main())
