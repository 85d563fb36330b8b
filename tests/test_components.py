"""The KFP component contract (kubeflow/pipelines-components): every components/<step>/component.py compiles
on `__main__` to a YAML naming the component and its inputs and outputs, and every component's function runs
through `python_func` as KFP's executor would call it in the container (synthesize and validate: in
tests/test_synthesize.py and tests/test_validate.py). The golden pipeline YAML is tests/test_pipeline_compile.py.
Tiny throughout: a hand-made dataset, a random tiny checkpoint, a few steps and samples (under a minute on 2
cores)."""

import json
import os
import runpy
import subprocess
import sys
import warnings

import pytest
import yaml
from kfp import dsl

from conftest import ROOT, make_dataset

# step -> (input parameters, input artifacts, output artifacts) of its component; every one returns a string
CONTRACT = {
    "synthesize": ({"config_json"}, {}, {"dataset": "system.Dataset"}),
    "validate": ({"config_json"}, {"dataset": "system.Dataset"},
                 {"report": "system.HTML", "manifest": "system.Artifact"}),
    "train": ({"config_json", "data_version"}, {"dataset": "system.Dataset"}, {"checkpoint": "system.Model"}),
    "evaluate": ({"config_json", "data_version"}, {"checkpoint": "system.Model"},
                 {"evaluation": "system.Artifact", "metrics": "system.Metrics"}),
    "register": ({"config_json", "data_version"}, {"checkpoint": "system.Model", "evaluation": "system.Artifact"},
                 {}),
    "export": ({"config_json", "data_version", "registration"}, {"checkpoint": "system.Model"},
               {"onnx_model": "system.Model"}),
}


def _artifacts(definitions: dict) -> dict:
    return {name: a["artifactType"]["schemaTitle"] for name, a in definitions.get("artifacts", {}).items()}


@pytest.mark.parametrize("step", sorted(CONTRACT))
def test_component_compiles_on_main(step, tmp_path, monkeypatch):
    """`python -m components.<step>.component PATH`, run in this process (runpy) to skip a fresh kfp import."""
    out = tmp_path / f"{step}_component.yaml"
    monkeypatch.setattr(sys, "argv", [f"components/{step}/component.py", str(out)])
    with warnings.catch_warnings():  # runpy warns that the module was imported before (by an earlier test)
        warnings.simplefilter("ignore", RuntimeWarning)
        runpy.run_module(f"components.{step}.component", run_name="__main__")
    spec = yaml.safe_load(out.read_text())
    assert spec["pipelineInfo"]["name"] == step and out.read_text().startswith(f"# PIPELINE DEFINITION\n# Name: {step}\n")
    comp = spec["components"][f"comp-{step}"]
    params, inputs, outputs = CONTRACT[step]
    assert set(comp["inputDefinitions"]["parameters"]) == params
    assert _artifacts(comp["inputDefinitions"]) == inputs
    assert _artifacts(comp.get("outputDefinitions", {})) == outputs
    assert comp["outputDefinitions"]["parameters"]["Output"]["parameterType"] == "STRING"
    assert spec["deploymentSpec"]["executors"][f"exec-{step}"]["container"]["image"].startswith("ghcr.io/vidcustom/")


def test_compile_default_path_is_step_component_yaml(tmp_path):
    """Without PATH, `<step>_component.yaml` in the working directory (a real `python -m`, once)."""
    subprocess.run([sys.executable, "-m", "components.register.component"], cwd=tmp_path, check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True)
    assert "comp-register" in (tmp_path / "register_component.yaml").read_text()


# ------------------------------------------------------------------ python_func: the component's own function
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny random checkpoint (no training), as tests/test_register.py makes."""
    from model.config import model_config
    from model.pipeline import SugarPipeline

    path = tmp_path_factory.mktemp("components") / "ckpt"
    SugarPipeline.from_config(model_config("tiny"), seed=0).save_pretrained(
        path, metadata={"training_stage": "stage2", "data_version": "abc.dir"})
    return path


def test_train_python_func(run_config, tmp_path):
    from components.train.component import train

    cfg = run_config("train.stage1_steps=2", "train.stage2_steps=1", "train.batch_size=2", "train.num_procs=1",
                     "train.log_every=1", "train.warmup_steps=0")
    checkpoint = dsl.Model(name="checkpoint", uri=str(tmp_path / "ckpt"), metadata={})
    summary = json.loads(train.python_func(config_json=cfg.to_json(), data_version="abc.dir",
                                           dataset=dsl.Dataset(uri=str(make_dataset(tmp_path / "data"))),
                                           checkpoint=checkpoint))
    assert summary["steps"] == 3 and summary["checkpoint"] == str(tmp_path / "ckpt")
    assert checkpoint.metadata == {"data_version": "abc.dir", "final_loss": summary["final_loss"],
                                   "mlflow_run_id": summary["run_id"]}
    meta = json.loads((tmp_path / "ckpt" / "vidcustom.json").read_text())
    assert meta["data_version"] == "abc.dir" and meta["training_stage"] == "stage2"


def test_evaluate_register_export_python_funcs(run_config, checkpoint, tmp_path):
    """evaluate -> register -> export on one checkpoint, each through its component's function, wired as the
    pipeline wires them: evaluate's artifact is register's input, register's JSON is export's `registration`."""
    from components.evaluate.component import evaluate
    from components.export.component import export
    from components.register.component import register

    cfg = run_config("evaluate.num_samples=2", "evaluate.baselines=false", "evaluate.paper_metrics=false",
                     "evaluate.num_sample_videos=1").to_json()
    model = dsl.Model(name="checkpoint", uri=str(checkpoint), metadata={})

    evaluation = dsl.Artifact(name="evaluation", uri=str(tmp_path / "evaluation"), metadata={})
    metrics = dsl.Metrics(name="metrics", uri=str(tmp_path / "metrics"), metadata={})
    scores = json.loads(evaluate.python_func(config_json=cfg, data_version="abc.dir", checkpoint=model,
                                             evaluation=evaluation, metrics=metrics))
    assert scores == json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    assert "sprites_identity" in scores
    assert metrics.metadata == {k.replace("/", "."): float(v) for k, v in scores.items()}  # KFP's metric names

    registration = json.loads(register.python_func(config_json=cfg, data_version="abc.dir", checkpoint=model,
                                                   evaluation=evaluation))
    assert (registration["model_name"], registration["version"]) == ("vidcustom", "1")
    assert "challenger" in registration["aliases"]

    onnx_model = dsl.Model(name="onnx_model", uri=str(tmp_path / "onnx"), metadata={})
    exported = json.loads(export.python_func(config_json=cfg, data_version="abc.dir",
                                             registration=json.dumps(registration), checkpoint=model,
                                             onnx_model=onnx_model))
    assert exported["parity"]["passed"] and exported["registered"]
    assert onnx_model.metadata == {"parity_max_abs_diff": exported["parity"]["max_abs_diff"],
                                   "model_version": exported["version"]}
    assert (tmp_path / "onnx" / "parity_report.json").is_file()


# ------------------------------------------------------------- the step CLIs: one body (components/cli.py)
STEP_CLIS = {"synthesize": ["OUTPUT_DIR"], "validate": ["dataset_dir", "report_dir"],
             "train": ["dataset_dir", "checkpoint_dir"], "evaluate": ["checkpoint_dir", "output_dir"],
             "register": ["checkpoint_dir", "evaluation_dir"], "export": ["checkpoint_dir", "output_dir"],
             "compare": ["RUN_ID"]}


@pytest.mark.parametrize("step", sorted(STEP_CLIS))
def test_step_cli_declares_only_its_own_arguments(step, capsys):
    import importlib

    cli = importlib.import_module(f"components.{step}.__main__")
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: python -m components.{step} ")
    assert cli.__doc__.splitlines()[0] in text  # the module docstring is the description
    for name in (*STEP_CLIS[step], "--params", "--preset", "--set", "--debug"):  # the shared config flags too
        assert name in text


def test_step_cli_bad_value_is_named_and_exits_2(tmp_path, capsys, monkeypatch):
    """The config is checked before the step's run is imported; the error, not a traceback; exit status 2."""
    from components.train.__main__ import main

    monkeypatch.setenv("VIDCUSTOM_HOME", str(tmp_path / "state"))
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path / "data"), str(tmp_path / "ckpt"), "--preset", "ci", "--set", "train.batch_size=0"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid configuration") and "train.batch_size" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as info:  # argparse's own errors: exit 2 with the usage
        main(["only-one"])
    assert info.value.code == 2 and "usage: python -m components.train" in capsys.readouterr().err
