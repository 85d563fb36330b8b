"""The run config: preset < params.yaml < overrides, and clear errors naming the field."""

import pytest

from components.config import load_config, parse_override


def test_overrides_win_over_params_file(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("train:\n  stage1_steps: 7\n  batch_size: 3\n")
    cfg = load_config(p, ["train.batch_size=5", "model.sampler.image_scale=2.5"])
    assert (cfg.train.stage1_steps, cfg.train.batch_size, cfg.model.sampler.image_scale) == (7, 5, 2.5)


def test_invalid_value_names_the_field():
    with pytest.raises(ValueError, match=r"train\.batch_size"):
        load_config(overrides=["train.batch_size=0"])
    with pytest.raises(ValueError, match=r"train\.nonsense"):
        load_config(overrides=["train.nonsense=1"])
    with pytest.raises(ValueError, match="attention_design"):
        load_config(overrides=["model.attention_design=z"])


def test_bad_shapes_and_unknown_preset_are_refused():
    with pytest.raises(ValueError, match="multiples"):
        load_config(overrides=["model.height=36"])
    with pytest.raises(ValueError, match="unknown preset"):
        load_config(preset="huge")
    with pytest.raises(ValueError, match="section.key=value"):
        parse_override("train.batch_size")


def test_missing_params_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_scale_presets_point_at_local_paths():
    cfg = load_config(preset="cogvideox-5b")
    assert cfg.model.transformer.use_rotary_positional_embeddings
    assert cfg.model.transformer_path and not cfg.model.transformer_path.startswith(("http", "hf://"))


@pytest.mark.parametrize("override, message", [
    ("export.opset=3", "export.opset=3 is outside what the ONNX export supports: set export.opset between 14"),
    ("export.opset=21", "export.opset=21 is outside"),
    ("register.model_name=", "register.model_name is empty; give it a name"),
    ("export.model_name=a/b", "export.model_name='a/b' contains '/' or ':'"),
    ("export.model_name=vidcustom", "export.model_name and register.model_name are both 'vidcustom'"),
    ("mlflow.experiment=''", "mlflow.experiment is empty"),
    ("evaluate.benchmark=nosuch", "evaluate.benchmark='nosuch' is unknown; set it to one of sprites, sugar_dreambench"),
    ("evaluate.benchmark=sugar_dreambench", "evaluate.benchmark=sugar_dreambench needs evaluate.benchmark_images"),
])
def test_values_that_failed_late_are_refused_at_load_naming_field_and_fix(override, message):
    """These passed start-up and failed in evaluate (after training), export or register."""
    with pytest.raises(ValueError) as info:
        load_config(overrides=[override])
    assert str(info.value).startswith(f"invalid configuration:\n  {message}")  # one line: the field, then the fix


def test_opset_range_is_what_the_exporter_supports():
    from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET

    from components.config import ONNX_OPSETS

    # onnx_export.py uses the TorchScript exporter (dynamo=False); at 13 the transformer's attention has no ONNX op.
    assert ONNX_OPSETS == (14, ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET)
    assert [load_config(overrides=[f"export.opset={o}"]).export.opset for o in ONNX_OPSETS] == [14, 20]


def test_ranks_beyond_the_cores_need_the_explicit_override():
    import torch

    from components.config import available_cores, check_machine

    if torch.cuda.is_available():
        pytest.skip("with GPUs a rank per GPU is checked instead")
    cores = available_cores()
    check_machine(load_config(overrides=[f"train.num_procs={cores}"]))
    with pytest.raises(ValueError, match=rf"^train\.num_procs={cores + 1} is more ranks than the {cores} CPU core\(s\) "
                       rf"available here; set train\.num_procs to at most {cores}, or train\.allow_oversubscribe=true"):
        check_machine(load_config(overrides=[f"train.num_procs={cores + 1}"]))
    check_machine(load_config(overrides=[f"train.num_procs={cores + 1}", "train.allow_oversubscribe=true"]))


def test_a_benchmark_path_is_checked_on_the_machine_that_runs(tmp_path):
    from components.config import check_machine

    cfg = load_config(overrides=[f"evaluate.benchmark={tmp_path}/mine.yaml"])  # may exist only where it runs
    with pytest.raises(ValueError, match=rf"^evaluate\.benchmark: benchmark definition {tmp_path}/mine\.yaml does "
                       "not exist"):
        check_machine(cfg)
    images = tmp_path / "images"
    cfg = load_config(overrides=["evaluate.benchmark=videomaker_object", f"evaluate.benchmark_images={images}"])
    with pytest.raises(ValueError, match=rf"evaluate\.benchmark_images={images} is not a folder here"):
        check_machine(cfg)
