"""python -m components.compare RUN_ID RUN_ID [...] [--output report.html] [--baseline RUN_ID] [--embed] [--no-log]

The same as `vidcustom compare`: one HTML report comparing MLflow evaluate runs (metric deltas vs the
baseline, sample videos side by side, config and data-version diffs, run metadata), logged to MLflow as
a `compare` run; prints the report's path.
"""

from components.cli import StepCLI


def _add_args(parser) -> None:
    from components.compare.report import add_args  # the same arguments as `vidcustom compare`

    add_args(parser)


def _compare(args, cfg) -> None:
    from components.compare.report import run_args

    run_args(args)  # prints the report's path; reads the config flags itself (cfg is None)


cli = StepCLI("components.compare", __doc__, _compare, [_add_args], config=False)
build_parser, main = cli.build_parser, cli.main

if __name__ == "__main__":
    raise SystemExit(main())
