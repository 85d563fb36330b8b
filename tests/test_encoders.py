"""Frozen encoders and the tiny word-level tokenizer."""

import re

import torch

from model.config import model_config
from model.encoders import TINY_WORDS, ImageEncoders, TextEncoder


def test_tiny_tokenizer_covers_sprites_captions_and_round_trips(tmp_path):
    from transformers import AutoTokenizer

    from components.sprites import heldout_specs, sample_spec, training_subjects

    captions = [sample_spec(0, s, i, j, j % 2 == 0).caption for i, s in enumerate(training_subjects(0, 60))
                for j in range(4)] + [s.caption for s in heldout_specs(0, 60)]
    captions += [sample_spec(0, s, i, j, j % 2 == 0, name_colour=False).caption
                 for i, s in enumerate(training_subjects(0, 30)) for j in range(4)]
    unknown = {w for c in captions for w in re.findall(r"\w+|[^\w\s]+", c.lower()) if w not in TINY_WORDS}
    assert not unknown, f"sprites captions use words the tiny tokenizer lacks: {sorted(unknown)}"
    te = TextEncoder.from_config(model_config("tiny"))
    ids = te.tokenize(captions[:4])
    assert ids.shape == (4, 24) and (ids == 2).sum() == 0  # 2 = <unk>
    te.tokenizer.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(captions[0]).input_ids == te.tokenizer(captions[0]).input_ids


def test_prompts_that_differ_in_one_word_encode_differently():
    te = TextEncoder.from_config(model_config("tiny"))
    a, b = te(["a red cat walks left on a black background", "a red cat walks left on a white background"])
    assert (a - b).abs().max() > 1e-3  # the regression: byte truncation once made these identical


def test_long_prompt_is_truncated_with_a_warning(caplog):
    te = TextEncoder.from_config(model_config("tiny"))
    assert te.tokenize(["cat " * 100]).shape == (1, 24)
    assert "truncated" in caplog.text


def test_image_encoders_shapes():
    enc = ImageEncoders.from_config(model_config("tiny"))
    dino, clip = enc(torch.rand(2, 3, 32, 32))
    assert dino.shape == (2, 17, 64) and clip.shape == (2, 1, 64)
    assert enc.num_dino_tokens() == 17
