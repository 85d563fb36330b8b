"""`vidcustom pretrain` publishes a text-to-video base through the project's own steps, and a base is only
loaded when its weights match the pinned sha256."""

import json

import pytest
import yaml

RECIPE = {
    "preset": "tiny",
    "synthesize": {"seed": 1, "num_subjects": 6, "samples_per_subject": 4, "caption_colour": False, "workers": 1},
    "validate": {"min_rows": 4},
    "train": {"strategy": "mix", "stage1_steps": 4, "stage2_steps": 0, "batch_size": 2, "num_procs": 1,
              "checkpoint_every": 100},
    "model": {"transformer_path": None, "attention_design": "a",
              "conditioning": {"drop_dino": 1.0, "drop_clip": 1.0}},
}


@pytest.mark.slow
def test_pretrain_publishes_a_pinned_base_that_the_model_loads(tmp_path, monkeypatch):
    from model.config import model_config
    from model.pipeline import SugarPipeline
    from model.transformer import WEIGHTS_FILE, build_transformer, file_sha256
    from pipelines.pretrain import pretrain

    monkeypatch.setenv("VIDCUSTOM_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    record = pretrain(recipe, tmp_path / "base")
    weights = tmp_path / "base" / "transformer" / WEIGHTS_FILE
    assert json.loads((tmp_path / "base" / "provenance.json").read_text()) == record
    assert record["sha256"] == file_sha256(weights) and record["data_version"].endswith(".dir")
    assert record["steps"] == 4 and record["bytes"] == weights.stat().st_size < 5 * 2**20
    assert record["model_settings"]["scheduler"]["snr_shift_scale"] == 4.0  # what a fine-tune must share
    assert record["model_settings"]["noise"] == {"low_frequency": 1.5, "grid": 4}  # the tiny preset's noise

    # The published weights are the trained checkpoint's transformer, and a pinned model starts from them.
    trained = SugarPipeline.from_pretrained(tmp_path / "state" / "pretrain" / "checkpoint").denoiser.to_cogvideox()
    cfg = model_config("tiny", transformer_path=str(weights.parent), transformer_sha256=record["sha256"])
    loaded = build_transformer(cfg)
    for (k, a), (_, b) in zip(trained.state_dict().items(), loaded.state_dict().items()):
        assert (a == b).all(), k

    # A corrupted or swapped file is refused before loading, naming the pin.
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="transformer_sha256"):
        build_transformer(cfg)


def test_a_recipe_that_lets_the_image_in_is_refused(tmp_path):
    from pipelines.pretrain import pretrain

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({**RECIPE, "model": {**RECIPE["model"], "attention_design": "b"}}))
    with pytest.raises(ValueError, match="attention_design=a"):
        pretrain(recipe, tmp_path / "base")


def test_unknown_bundled_base_is_named():
    from model.config import model_config
    from model.transformer import build_transformer

    with pytest.raises(FileNotFoundError, match="no bundled base 'nope'"):
        build_transformer(model_config("tiny", transformer_path="bundled:nope"))


def test_the_shipped_base_is_pinned_and_its_settings_applied():
    """The tiny run preset starts from model/bundled/tiny-t2v, pinned by the sha256 its provenance records."""
    from components.config import load_config
    from model.transformer import BUNDLED, WEIGHTS_FILE, file_sha256

    record = json.loads((BUNDLED / "tiny-t2v" / "provenance.json").read_text())
    weights = BUNDLED / "tiny-t2v" / record["weights"]
    assert weights.name == WEIGHTS_FILE and weights.stat().st_size == record["bytes"] < 5 * 2**20
    assert file_sha256(weights) == record["sha256"]
    m = load_config(None, preset="tiny").model
    assert m.transformer_path == "bundled:tiny-t2v" and m.transformer_sha256 == record["sha256"]
    assert m.noise.model_dump() == record["model_settings"]["noise"]
    assert m.text_encoder.max_length == record["model_settings"]["text_encoder"]["max_length"]
