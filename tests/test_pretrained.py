"""Loading a pretrained CogVideoX transformer from a local diffusers folder (METHOD_NOTES §1.1), and loading
SUGAR checkpoints in the layout written before the pipeline was a DiffusionPipeline.

Tiny saved models of both kinds: sincos positions (2B-style) and 3D RoPE on video tokens (5B-style).
SUGAR must add its modules around them without changing any pretrained weight.
"""

import json

import numpy as np
import pytest
import torch
from diffusers import CogVideoXTransformer3DModel
from diffusers.models.embeddings import CogVideoXPatchEmbed

from model.attention import SugarSelectiveAttnProcessor2_0
from model.config import model_config
from model.pipeline import CHECKPOINT_META, SugarPipeline
from model.transformer import AnyLengthConditionPatchEmbed, SugarTransformer3DModel, tiny_transformer_kwargs

KINDS = {"2b-sincos": False, "5b-rope": True}


@pytest.fixture(params=list(KINDS))
def pretrained(request, tmp_path):
    """A tiny CogVideoX transformer saved with diffusers' save_pretrained, as a hub folder would hold it."""
    rope = KINDS[request.param]
    cfg = model_config("tiny", transformer={"use_rotary_positional_embeddings": rope})
    torch.manual_seed(1234)
    model = CogVideoXTransformer3DModel(**tiny_transformer_kwargs(cfg))
    folder = tmp_path / "CogVideoX-tiny" / "transformer"
    model.save_pretrained(folder)
    return folder, rope, {k: v.clone() for k, v in model.state_dict().items()}


def _assert_same_weights(module, reference):
    state = module.state_dict()
    assert state.keys() == reference.keys()  # no key added to, renamed in or removed from the pretrained model
    changed = [k for k in reference if not torch.equal(state[k], reference[k])]
    assert not changed, f"pretrained weights changed: {changed[:5]}"


def test_loading_adds_sugar_without_touching_pretrained_weights(pretrained, tmp_path):
    folder, rope, reference = pretrained
    cfg = model_config("tiny", transformer_path=str(folder), transformer={"use_rotary_positional_embeddings": rope})
    pipe = SugarPipeline.from_config(cfg, seed=7)
    transformer = pipe.denoiser
    _assert_same_weights(transformer.to_cogvideox(), reference)
    # The only keys SUGAR adds are its conditioner's; every stock key keeps its name and value.
    assert reference.keys() < transformer.state_dict().keys()
    assert all(k.startswith("conditioner.") for k in transformer.state_dict().keys() - reference.keys())
    # The SUGAR modules are there: selective attention on every block, the conditioning projections and nulls.
    assert all(isinstance(p, SugarSelectiveAttnProcessor2_0) for p in transformer.attn_processors.values())
    assert isinstance(transformer.patch_embed, CogVideoXPatchEmbed)
    assert type(transformer.patch_embed) is AnyLengthConditionPatchEmbed
    assert transformer.patch_embed.use_positional_embeddings == (not rope)
    names = {n for n, _ in pipe.denoiser.conditioner.named_parameters()}
    assert {"dino_proj.weight", "clip_proj.weight", "null_dino", "null_clip", "null_text"} <= names

    ident = np.full((32, 32, 3), 255, np.uint8)
    ident[10:22, 10:22] = (230, 30, 30)
    video = pipe(ident, "a cat walks to the left on a black background", num_inference_steps=2).frames
    assert video.shape == (1, 8, 32, 32, 3) and video.dtype == np.uint8
    _assert_same_weights(transformer.to_cogvideox(), reference)  # sampling does not write weights either

    # The saved SUGAR checkpoint carries the pretrained weights unchanged and reloads them bit-exactly.
    pipe.save_pretrained(tmp_path / "sugar")
    _assert_same_weights(SugarPipeline.from_pretrained(tmp_path / "sugar").denoiser.to_cogvideox(), reference)


def test_a_stock_folder_loads_every_weight_into_the_sugar_transformer(pretrained):
    folder, rope, reference = pretrained
    sugar = SugarTransformer3DModel.from_cogvideox(folder, attention_design="b", dino_dim=64, clip_dim=64,
                                                   num_dino_tokens=17, num_text_tokens=32)
    state = sugar.state_dict()
    assert reference.keys() <= state.keys()  # the stock keys, unrenamed
    assert {k.split(".")[0] for k in state.keys() - reference.keys()} == {"conditioner"}
    assert all(torch.equal(state[k], v) for k, v in reference.items())
    assert sugar.config.use_rotary_positional_embeddings == rope and sugar.config.num_dino_tokens == 17


def test_image_tokens_do_not_shift_video_positions_of_a_pretrained_model(pretrained):
    """The pretrained model with text only and the SUGAR model with extra (dropped-to-zero) image tokens see the
    video at the same positions: under design (a) the image tokens are cut off, so the video output must equal
    the stock forward on the text tokens alone."""
    folder, rope, _ = pretrained
    # T5 length = max_text_seq_length (32 here, 226 in CogVideoX), the only text length the stock model takes.
    cfg = model_config("tiny", attention_design="a", transformer_path=str(folder), text_encoder={"max_length": 32},
                       transformer={"use_rotary_positional_embeddings": rope})
    pipe = SugarPipeline.from_config(cfg, seed=7).eval()
    den = pipe.denoiser
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 8, 48, 8, 8, generator=g)
    t = torch.tensor([500])
    dino, clip = torch.randn(1, 17, 64, generator=g), torch.randn(1, 1, 64, generator=g)
    text = torch.randn(1, 32, 64, generator=g)
    ones = torch.ones(1)
    with torch.no_grad():
        sugar = den(latents, t, dino, clip, text, ones, ones, ones)
        stock = CogVideoXTransformer3DModel.from_pretrained(folder)
        rotary = den._rope(8, 8, 8, "cpu")
        plain = stock(hidden_states=latents, encoder_hidden_states=text, timestep=t, image_rotary_emb=rotary,
                      return_dict=False)[0]
    # Text tokens in design (a) do not attend to the image either, so the two computations agree exactly
    # up to float reordering.
    torch.testing.assert_close(sugar, plain, atol=2e-5, rtol=1e-4)
    den.set_attention_design("e")  # control: once the video may attend to the image tokens, the output moves
    with torch.no_grad():
        assert (den(latents, t, dino, clip, text, ones, ones, ones) - plain).abs().max() > 1e-3


def test_mismatched_pretrained_transformer_is_refused_naming_the_field(pretrained):
    folder, rope, _ = pretrained
    cfg = model_config("tiny", transformer_path=str(folder), transformer={"use_rotary_positional_embeddings": not rope})
    with pytest.raises(ValueError, match="use_rotary_positional_embeddings: pretrained"):
        SugarPipeline.from_config(cfg)


def test_missing_pretrained_folder_is_a_clear_error(tmp_path):
    cfg = model_config("tiny", transformer_path=str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="not a diffusers model folder"):
        SugarPipeline.from_config(cfg)


def _save_in_the_layout_before_model_index(pipe: SugarPipeline, path, metadata: dict) -> None:
    """What SugarPipeline.save_pretrained wrote before it was a DiffusionPipeline (checkpoints registered then
    are still in users' registries): a stock transformer/ beside conditioner/, image_encoders/{dino,clip}/."""
    pipe.denoiser.to_cogvideox().save_pretrained(path / "transformer")
    pipe.denoiser.conditioner.save_pretrained(path / "conditioner")
    pipe.vae.save_pretrained(path / "vae")
    pipe.text_encoder.save_pretrained(path / "text_encoder")
    pipe.tokenizer.save_pretrained(path / "tokenizer")
    pipe.image_encoder_dino.save_pretrained(path / "image_encoders" / "dino")
    pipe.image_encoder_clip.save_pretrained(path / "image_encoders" / "clip")
    pipe.scheduler.save_pretrained(path / "scheduler")
    c = pipe.config
    (path / CHECKPOINT_META).write_text(json.dumps({
        "method": c.method, "preset": c.preset, "attention_design": c.attention_design,
        "null_condition": c.conditioning.null_condition, **metadata, "model_config": c.model_dump(mode="json")}))


def test_checkpoints_in_the_layout_before_model_index_load_and_convert(tmp_path):
    cfg = model_config("tiny", num_frames=2, attention_design="c", conditioning={"image_input_norm": True})
    pipe = SugarPipeline.from_config(cfg, seed=4).eval()
    old = tmp_path / "old"
    _save_in_the_layout_before_model_index(pipe, old, {"data_version": "abc.dir", "training_stage": "stage2"})
    assert not (old / "model_index.json").exists()
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    video = pipe(img, "a red cat walks left", num_inference_steps=2, seed=3).frames

    loaded = SugarPipeline.from_pretrained(old)
    # The old copies of model settings beside model_config are dropped: the model config is the one record.
    assert loaded.metadata == {"preset": "tiny", "data_version": "abc.dir", "training_stage": "stage2"}
    assert (loaded.config.method, loaded.config.attention_design) == ("sugar", "c")
    assert loaded.denoiser.config.attention_design == "c" and loaded.denoiser.config.image_input_norm
    assert loaded.config.model_dump() == cfg.model_dump()
    want = pipe.denoiser.state_dict()
    assert list(loaded.denoiser.state_dict()) == list(want)
    assert all(torch.equal(v, want[k]) for k, v in loaded.denoiser.state_dict().items())
    assert np.array_equal(loaded(img, "a red cat walks left", num_inference_steps=2, seed=3).frames, video)

    # Saving converts it: the current layout, the same weights, the metadata kept.
    new = loaded.save_pretrained(tmp_path / "new")
    assert (new / "model_index.json").is_file() and not (new / "conditioner").exists()
    again = SugarPipeline.from_pretrained(new)
    assert again.metadata["training_stage"] == "stage2"
    assert np.array_equal(again(img, "a red cat walks left", num_inference_steps=2, seed=3).frames, video)
    ablation = SugarPipeline.from_pretrained(new, attention_design="a")  # the same weights under another design
    assert ablation.denoiser.config.attention_design == ablation.config.attention_design == "a"


def test_a_folder_that_is_no_checkpoint_is_named(tmp_path):
    (tmp_path / CHECKPOINT_META).write_text(json.dumps({"model_config": model_config("tiny").model_dump(mode="json")}))
    with pytest.raises(FileNotFoundError, match="neither model_index.json nor transformer/"):
        SugarPipeline.from_pretrained(tmp_path)
