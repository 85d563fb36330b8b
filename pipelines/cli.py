"""`vidcustom`: run the pipeline locally, compile it, submit it to Kubeflow Pipelines, restore a dataset."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys


def _config_args(p: argparse.ArgumentParser) -> None:
    from components.cli import add_config_args

    add_config_args(p)


def _run(args) -> None:
    import time

    from components.preflight import preflight
    from components.config import load_config
    from pipelines.local import run_local

    cfg = load_config(args.params, args.overrides, args.preset)  # a bad value fails here, on screen
    preflight(cfg, local_run=True)  # so does the environment, before the log file or any step
    if args.verbose:
        result = run_local(args.params, args.overrides, args.preset)
        print(json.dumps(result, indent=2))
        times, log_file = None, None
    else:
        from pipelines.console import quiet_console

        log_file = cfg.state / "logs" / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
        print(f"vidcustom run: one line per step; full log in {log_file}", flush=True)
        try:
            with quiet_console(log_file) as times:
                result = run_local(args.params, args.overrides, args.preset)
                print(json.dumps(result, indent=2))  # into the log
        except BaseException:
            print(f"The run failed; the full log is {log_file}. Its last lines:", file=sys.stderr)
            print(_tail(log_file, 25), file=sys.stderr)
            raise
    from pipelines.summary import summary_text

    print(summary_text(result, times, str(log_file) if log_file else None))


def _tail(path, n: int) -> str:
    try:
        lines = open(path, errors="replace").read().replace("\r", "\n").splitlines()
    except OSError:
        return ""
    return "\n".join("  | " + line for line in [ln for ln in lines if ln.strip()][-n:])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="vidcustom", description="Zero-shot subject-driven video customization "
                                 "(SUGAR): synthesize -> validate -> train -> evaluate -> register -> export.")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the whole pipeline locally with kfp.local (state in ./.vidcustom)",
                       description="Run synthesize -> validate -> train -> evaluate -> register -> export locally. "
                       "The console shows one line per step and a closing summary; the full log of every task goes "
                       "to <state>/logs/run-<time>.log.")
    r.add_argument("--verbose", "-v", action="store_true", help="print every task's full log to the console too")
    _config_args(r)
    pt = sub.add_parser("pretrain", help="train the text-to-video base that the tiny preset starts from and "
                        "publish it (transformer safetensors + provenance.json) as a bundled base",
                        description="Pretrain a text-to-video transformer with the project's own synthesize, "
                        "validate and train steps (the recipe is a params file: design (a), image conditions always "
                        "dropped) and publish it. Afterwards pin the printed sha256 as model.transformer_sha256.")
    pt.add_argument("--output", default="model/bundled/tiny-t2v", help="bundled base folder to publish into")
    _config_args(pt)
    c = sub.add_parser("compile", help="write the pipeline's KFP YAML")
    c.add_argument("--output", default=None, help="default: pipelines/vidcustom_pipeline.yaml")
    s = sub.add_parser("submit", help="submit the pipeline to a Kubeflow Pipelines endpoint")
    s.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
    s.add_argument("--experiment", default="vidcustom")
    s.add_argument("--namespace", default=None)
    _config_args(s)
    d = sub.add_parser("data", help="dataset versions")
    dsub = d.add_subparsers(dest="data_command", required=True)
    pull = dsub.add_parser("pull", help="restore a dataset version from the DVC remote")
    pull.add_argument("version", help="the DVC hash recorded on the MLflow run / model version")
    pull.add_argument("dest", help="directory to restore into")
    _config_args(pull)
    ml = sub.add_parser("mlflow", help="MLflow tracking: upload runs buffered while the server was unreachable")
    mlsub = ml.add_subparsers(dest="mlflow_command", required=True)
    sync = mlsub.add_parser("sync", help="upload the runs, metrics, artifacts and model versions buffered under "
                            "<state>/mlflow-buffer (mlflow.offline=buffer) to their tracking server, once; "
                            "a second sync uploads nothing")
    sync.add_argument("--tracking-uri", default=None, help="server to upload to (default: the one each run was "
                      "meant for, recorded in <state>/mlflow-buffer/pending.json)")
    sync.add_argument("--include-running", action="store_true", help="also upload runs still RUNNING in the buffer")
    _config_args(sync)
    cmp = sub.add_parser("compare", help="HTML report comparing MLflow evaluate runs: metric deltas, sample videos "
                         "side by side, config and data-version diffs (logged to MLflow as a compare run)")
    from components.compare.report import add_args as _compare_args

    _compare_args(cmp)
    srv = sub.add_parser("serve", help="serve a registered ONNX sampler over HTTP (KServe model server: open "
                         "inference protocol + an async job API for videos)",
                         description="Serve models:/vidcustom-onnx@champion (or another registered version) with "
                         "KServe's Python model server. Endpoints: /v2/health/{live,ready}, "
                         "/v2/models/NAME/infer, /v1/jobs (submit, progress, cancel, video.mp4), /metrics. "
                         "SIGTERM drains: no new work, running jobs get --grace-seconds.")
    from components.server.app import add_args as _serve_args

    _serve_args(srv)
    args = ap.parse_args(argv)

    def go() -> int:
        from components.cli import config_from_args

        if args.command == "run":
            _run(args)
        elif args.command == "pretrain":
            from components.preflight import preflight
            from components.config import load_config
            from pipelines.pretrain import pretrain

            if not args.params:
                raise ValueError("vidcustom pretrain needs --params RECIPE (e.g. model/bundled/tiny-t2v/recipe.yaml)")
            preflight(load_config(args.params, args.overrides), local_run=True)
            print(json.dumps(pretrain(args.params, args.output, args.overrides), indent=2))
        elif args.command == "compile":
            from pipelines.compile import SNAPSHOT, compile_pipeline

            print(compile_pipeline(args.output or SNAPSHOT))
        elif args.command == "submit":
            from pipelines.submit import submit

            print(submit(args.host, args.params, args.overrides, args.preset, args.experiment, args.namespace))
        elif args.command == "data":
            from components.dataset_versioning import pull as dvc_pull

            cfg = config_from_args(args, check_state=False)  # restores into dest; the state dir is not used
            print(dvc_pull(args.version, cfg.dvc_remote(), args.dest, endpoint_url=cfg.validate_.remote_endpoint_url))
        elif args.command == "mlflow":
            from components.tracking.sync import sync as mlflow_sync

            cfg = config_from_args(args)
            with contextlib.redirect_stdout(sys.stderr):  # MLflow's "View run" lines; stdout is the JSON
                done = mlflow_sync(cfg.state, args.tracking_uri, args.include_running, cfg.mlflow.retries,
                                   cfg.mlflow.retry_wait_s)
            print(json.dumps(done, indent=2))
            print(f"\nsynced {len(done['uploaded_runs'])} run(s) and {len(done['model_versions'])} model version(s); "
                  f"{len(done['pending'])} left pending, {done['already_synced']} already synced", file=sys.stderr)
        elif args.command == "compare":
            from components.compare.report import run_args

            run_args(args)
        elif args.command == "serve":
            from components.server.app import run_args as serve

            serve(args)
        return 0

    from components.cli import main_wrapper

    main_wrapper(go)


if __name__ == "__main__":
    main(sys.argv[1:])
