"""The end of `vidcustom run`: step times, the headline metrics with and without the subject image, the
gate's decision and reasons, and the commands to look further (read back from the run's MLflow records)."""

from __future__ import annotations

import shlex

from pipelines.console import StepTimes, _fmt

HEADLINE = (("sprites_identity", "identity"), ("sprites_motion", "motion"), ("sprites_attribute", "attribute"),
            ("dino_i", "DINO-I"))


def _step_runs(client, pipeline_run: str) -> dict:
    from components.tracking import PIPELINE_RUN_TAG, STEP_TAG

    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`{PIPELINE_RUN_TAG}` = '{pipeline_run}'", order_by=["attributes.start_time ASC"])
    return {r.data.tags.get(STEP_TAG): r for r in runs}


def headline_lines(metrics: dict) -> list[str]:
    """`identity  0.612 with the image | 0.301 image dropped | 0.120 untrained`, per metric present."""
    out = []
    for key, label in HEADLINE:
        if key not in metrics:
            continue
        parts = [f"{metrics[key]:.3f} with the image"]
        for prefix, what in (("ablation_no_image", "image dropped"), ("baseline_untrained", "untrained")):
            if f"{prefix}/{key}" in metrics:
                parts.append(f"{metrics[f'{prefix}/{key}']:.3f} {what}")
        out.append(f"  {label:<10} " + " | ".join(parts))
        if f"image_effect/{key}" in metrics:
            m, lo, hi = (metrics[f"image_effect/{key}{s}"] for s in ("", "_lo", "_hi"))
            out.append(f"  {'':<10} image effect {m:+.3f} (paired, 95 % CI {lo:+.3f} … {hi:+.3f})")
    return out


def summary_text(result: dict, times: StepTimes | None, log_file: str | None) -> str:
    """The closing block `vidcustom run` prints. `result` is `run_local`'s return value."""
    import mlflow

    lines = []
    if times and times.steps:
        total = sum(t for _, t, _ in times.steps)
        lines.append("Steps: " + ", ".join(f"{n} {_fmt(t)}" for n, t, _ in times.steps) + f"  (total {_fmt(total)})")
    client = mlflow.MlflowClient(tracking_uri=result["mlflow_store"], registry_uri=result["mlflow_store"])
    runs = _step_runs(client, result["pipeline_run"])
    evaluate, register = runs.get("evaluate"), runs.get("register")
    if evaluate is not None:
        lines.append("Held-out metrics (evaluate run " + evaluate.info.run_id + "):")
        lines += headline_lines(evaluate.data.metrics)
    if register is not None:
        tags = register.data.tags
        try:
            gate = mlflow.artifacts.load_dict(f"{register.info.artifact_uri}/gate.json")
        except Exception:  # an older or partial run: the tags still say the decision
            gate = {"reasons": []}
        decision = "PASSED: champion" if tags.get("gate") == "passed" else "FAILED: challenger only, not champion"
        lines.append(f"Gate: {decision} ({gate.get('model_name', 'vidcustom')} v{tags.get('model_version', '?')})")
        lines += [f"  - {r}" for r in gate.get("reasons", [])]
    uri = result["tracking_uri"]
    lines.append("Look further:")
    if uri.startswith(("http://", "https://")):
        lines.append(f"  MLflow:   open {uri}")
    else:
        lines.append(f"  MLflow:   mlflow ui --backend-store-uri {shlex.quote(uri)}   (then http://127.0.0.1:5000)")
    if evaluate is not None:
        lines.append(f"  samples:  vidcustom compare {evaluate.info.run_id} --output compare_report.html")
    if result.get("mlflow_store") not in (None, uri):
        lines.append(f"  The server was unreachable: runs are buffered in {result['mlflow_store']}; upload them "
                     "with:  vidcustom mlflow sync")
    if log_file:
        lines.append(f"  full log: {log_file}")
    return "\n".join(lines)
