"""Compare MLflow evaluate runs in one HTML report: metric deltas vs a baseline, sample videos side by side,
config and data-version diffs, run metadata (`vidcustom compare RUN_ID RUN_ID ...`)."""
