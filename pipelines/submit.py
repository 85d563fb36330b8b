"""Submit the pipeline to a Kubeflow Pipelines endpoint."""

from __future__ import annotations

from pathlib import Path

from components.config import load_config


def submit(host: str, params: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
           preset: str | None = None, experiment: str = "vidcustom", namespace: str | None = None) -> str:
    """Validate the config locally, then create a run on `host`; returns the run id."""
    import kfp

    from pipelines.pipeline import cluster_pipeline

    cfg = load_config(params, overrides, preset)
    try:
        client = kfp.Client(host=host, namespace=namespace)
        run = client.create_run_from_pipeline_func(
            cluster_pipeline, experiment_name=experiment, namespace=namespace,
            arguments={"preset": cfg.preset, "params_yaml": Path(params).read_text() if params else "",
                       "overrides": list(overrides)})
    except Exception as err:  # kfp raises urllib3/ApiException types; name the endpoint either way
        raise RuntimeError(f"could not submit to Kubeflow Pipelines at {host}: {err}") from None
    return run.run_id
