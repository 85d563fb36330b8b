"""Start the model server: load the model, add the job API to KServe's FastAPI app, run until SIGTERM.

SIGTERM (or Ctrl-C): uvicorn stops accepting connections and lets open ones finish (up to the grace period);
then KServe unloads the model, which cancels queued jobs, gives running ones the grace period and stops them.
"""

from __future__ import annotations

import logging
import sys

from components.server.limits import Limits

log = logging.getLogger(__name__)


def _kserve():
    """Import KServe's model server without letting it parse our command line (it parses sys.argv on import,
    and argparse would take --model for its --model_name)."""
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        from kserve import ModelServer
        from kserve import model_server as server_module
    finally:
        sys.argv = argv
    return ModelServer, server_module.app


def serve(model_uri: str, name: str = "vidcustom", http_port: int = 8080, limits: Limits = Limits()) -> None:
    ModelServer, app = _kserve()
    from components.server.model import VidcustomModel
    from components.server.routes import install

    model = VidcustomModel(name, model_uri, limits)
    log.info("loading %s", model_uri)
    model.load()
    log.info("serving %s as %r on port %d: %s", model.current.label, name, http_port, limits)
    install(app, model)
    ModelServer(http_port=http_port, enable_grpc=False, workers=1, grace_period=int(limits.grace_s),
                enable_docs_url=False).start([model])


def add_args(parser) -> None:
    """The `vidcustom serve` arguments."""
    from components.cli import add_config_args

    d = Limits()
    parser.add_argument("--model", default="models:/vidcustom-onnx@champion",
                        help="registered model to serve: models:/NAME@ALIAS (follows the alias: a new version is "
                             "loaded without a restart), models:/NAME/VERSION, or a local MLflow model folder "
                             "(default: %(default)s)")
    parser.add_argument("--name", default="vidcustom", help="model name in the open inference protocol "
                        "(/v2/models/NAME/infer; default: %(default)s)")
    parser.add_argument("--http-port", type=int, default=8080, help="default: %(default)s")
    parser.add_argument("--max-queue", type=int, default=d.max_queue,
                        help="jobs waiting beyond those running; more are refused with 503 (default: %(default)s)")
    parser.add_argument("--max-concurrency", type=int, default=d.max_concurrency,
                        help="sampler calls at once (worker threads); one uses every core (default: %(default)s)")
    parser.add_argument("--max-batch", type=int, default=d.max_batch,
                        help="videos with the same steps and scales computed in one sampler call (default: "
                             "%(default)s)")
    parser.add_argument("--request-timeout", type=float, default=d.request_timeout_s,
                        help="seconds from submission after which a request is stopped, queued or running; a job "
                             "may ask for less with timeout_s (default: %(default)s)")
    parser.add_argument("--max-request-bytes", type=int, default=d.max_request_bytes,
                        help="larger request bodies are refused with 413 before they are parsed (default: "
                             "%(default)s)")
    parser.add_argument("--grace-seconds", type=float, default=d.grace_s,
                        help="on SIGTERM, how long open requests and running jobs may finish (default: %(default)s)")
    parser.add_argument("--poll-seconds", type=float, default=d.poll_s,
                        help="how often the registry alias is checked for a new version; 0 turns it off (default: "
                             "%(default)s)")
    parser.add_argument("--retain-jobs", type=int, default=d.retain_jobs,
                        help="finished jobs (and their videos) kept for GET; older ones are forgotten (default: "
                             "%(default)s)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow registry (default: mlflow.tracking_uri of --params/--preset, "
                             "$MLFLOW_TRACKING_URI, else the local store in the state dir)")
    add_config_args(parser)


def run_args(args) -> None:
    """Run `serve` for parsed `add_args` arguments."""
    import os

    from components.cli import config_from_args

    for flag in ("max_queue", "max_concurrency", "max_batch", "retain_jobs", "max_request_bytes"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')}={getattr(args, flag)} must be at least 1")
    for flag in ("request_timeout", "grace_seconds"):
        if getattr(args, flag) <= 0:
            raise ValueError(f"--{flag.replace('_', '-')}={getattr(args, flag)} must be a positive number of seconds")
    if args.poll_seconds < 0:
        raise ValueError(f"--poll-seconds={args.poll_seconds} must be 0 (off) or positive")
    os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri or config_from_args(args, check_state=False).tracking_uri()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(args.model, args.name, args.http_port,
          Limits(max_queue=args.max_queue, max_concurrency=args.max_concurrency, max_batch=args.max_batch,
                 request_timeout_s=args.request_timeout, max_request_bytes=args.max_request_bytes,
                 grace_s=args.grace_seconds, poll_s=args.poll_seconds, retain_jobs=args.retain_jobs))
