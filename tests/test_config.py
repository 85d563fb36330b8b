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
