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


def mlflow_hint(tracking_uri: str, store: str | None = None) -> list[str]:
    """How to look at the runs, right for the store that holds them: a tracking server is a web page already
    (`mlflow ui --backend-store-uri http://...` fails); a database or folder is served by `mlflow ui`. `store`:
    where the runs went, when not `tracking_uri` (the local buffer of an unreachable server)."""
    if store and store != tracking_uri:
        return [f"  MLflow:   the server {tracking_uri} was unreachable; the runs are buffered in {store}",
                f"            upload them with: vidcustom mlflow sync   (then open {tracking_uri})",
                f"            or look now with: mlflow ui --backend-store-uri {shlex.quote(store)}"]
    scheme = tracking_uri.split("://", 1)[0].lower() if "://" in tracking_uri else ""
    if scheme in ("http", "https"):
        return [f"  MLflow:   open {tracking_uri} in a browser"]
    if tracking_uri.lower().startswith("databricks"):
        return ["  MLflow:   open the experiment in your Databricks workspace"]
    return [f"  MLflow:   mlflow ui --backend-store-uri {shlex.quote(tracking_uri)}   (then http://127.0.0.1:5000)"]


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
    lines.append("Look further:")
    lines += mlflow_hint(result["tracking_uri"], result.get("mlflow_store"))
    if evaluate is not None:
        store = result.get("mlflow_store") or result["tracking_uri"]
        where = "" if store == result["tracking_uri"] else f" --tracking-uri {shlex.quote(store)}"
        lines.append(f"  samples:  vidcustom compare {evaluate.info.run_id}{where} --output compare_report.html")
    if log_file:
        lines.append(f"  full log: {log_file}")
    return "\n".join(lines)
