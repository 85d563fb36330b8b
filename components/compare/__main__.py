"""python -m components.compare RUN_ID RUN_ID [...] [--output report.html] [--baseline RUN_ID] [--embed] [--no-log]

The same as `vidcustom compare`: one HTML report comparing MLflow evaluate runs (metric deltas vs the
baseline, sample videos side by side, config and data-version diffs, run metadata), logged to MLflow as
a `compare` run; prints the report's path.
"""

import argparse

from components.cli import main_wrapper


def main() -> None:
    from components.compare.report import add_args, run_args

    ap = argparse.ArgumentParser(prog="python -m components.compare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_args(ap)
    args = ap.parse_args()
    main_wrapper(lambda: run_args(args) and 0)


if __name__ == "__main__":
    main()
