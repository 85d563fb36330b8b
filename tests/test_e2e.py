"""End to end: the KFP pipeline under kfp.local on the `ci` preset, then the registered models from MLflow."""

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("VIDCUSTOM_HOME", "MLFLOW_TRACKING_URI", "VIDCUSTOM_PIPELINE_RUN"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / ".vidcustom"


def test_pipeline_runs_end_to_end_and_registered_models_generate(state):
    import mlflow

    from components.serving import decode_mp4, encode_png
    from pipelines.local import run_local

    result = run_local(preset="ci")
    assert result["tracking_uri"] == f"sqlite:///{state / 'mlflow.db'}"
    assert result["export"]["parity"]["passed"]
    mlflow.set_tracking_uri(result["tracking_uri"])
    mlflow.set_registry_uri(result["tracking_uri"])  # earlier tests in this process may have pointed it elsewhere
    client = mlflow.MlflowClient()
    torch_v = client.get_model_version_by_alias("vidcustom", "champion")
    onnx_v = client.get_model_version_by_alias("vidcustom-onnx", "champion")
    assert client.get_model_version_by_alias("vidcustom", "challenger").version == torch_v.version
    for v in (torch_v, onnx_v):
        assert v.tags["data_version"].endswith(".dir")
        assert v.tags["preset"] == "ci" and v.tags["git_commit"]
        assert "metric.sprites_identity" in v.tags
    # Each step logged its own run, all tagged with this pipeline execution.
    runs = mlflow.search_runs(experiment_names=["vidcustom"],
                              filter_string=f"tags.`vidcustom.pipeline_run` = '{result['pipeline_run']}'")
    assert set(runs["tags.vidcustom.step"]) == {"pipeline", "validate", "train", "evaluate", "register", "export"}
    # One parent run per pipeline execution; every step's run nests under it.
    parent = runs[runs["tags.vidcustom.step"] == "pipeline"]
    assert len(parent) == 1 and parent.iloc[0]["status"] == "FINISHED"
    assert parent.iloc[0]["run_id"] == result["mlflow_parent_run"]
    assert parent.iloc[0]["tags.data_version"] == torch_v.tags["data_version"]
    runs = runs[runs["tags.vidcustom.step"] != "pipeline"]
    assert (runs["tags.mlflow.parentRunId"] == result["mlflow_parent_run"]).all()
    # The validate run records the dataset version and what each synthesis filter kept and dropped.
    checked = runs[runs["tags.vidcustom.step"] == "validate"].iloc[0]
    assert checked["tags.data_version"] == torch_v.tags["data_version"] and checked["tags.validation"] == "passed"
    assert checked["metrics.filter.all.kept"] == checked["metrics.rows"] == 32
    assert checked["metrics.filter.static_video.dropped"] == 0

    img = np.full((32, 32, 3), 255, np.uint8)
    img[8:24, 8:24] = (30, 30, 220)
    request = pd.DataFrame([{"identity_image": encode_png(img), "prompt": "a blue box slides left", "seed": 1,
                             "num_inference_steps": 2}])
    for uri in ("models:/vidcustom@champion", "models:/vidcustom-onnx@champion"):
        out = mlflow.pyfunc.load_model(uri).predict(request)
        video = decode_mp4(out["video"][0])
        assert video.shape == (8, 32, 32, 3), uri


def test_failed_validation_stops_the_pipeline_before_training(state):
    from pipelines.local import run_local

    with pytest.raises(RuntimeError):
        run_local(preset="ci", overrides=["validate.min_rows=100000"])
    assert not (state / "train").exists()  # train never started
    # the only run is the failed validation itself, logged for the reviewer, without a data version
    runs = _runs(state)
    parent = runs[runs["tags.vidcustom.step"] == "pipeline"]
    assert len(parent) == 1 and parent.iloc[0]["status"] == "FAILED"
    runs = runs[runs["tags.vidcustom.step"] != "pipeline"]
    assert list(runs["tags.vidcustom.step"]) == ["validate"] and list(runs["tags.validation"]) == ["failed"]
    assert "tags.data_version" not in runs or runs["tags.data_version"].isna().all()


def _runs(state):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{state / 'mlflow.db'}")
    mlflow.set_registry_uri(f"sqlite:///{state / 'mlflow.db'}")
    exp = mlflow.get_experiment_by_name("vidcustom")
    return mlflow.search_runs([exp.experiment_id])
