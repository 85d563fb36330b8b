"""Selective attention: which query group may attend to which key group, and what the masks do to outputs."""

import pytest
import torch

from model.attention import GROUPS, allowed, selective_attention_mask

# Group sizes chosen all different so a misindexed slice shows up: 3 DINO, 1 CLIP, 5 text, 2 frames of 4 tokens.
SIZES = dict(n_dino=3, n_clip=1, n_text=5, tokens_per_frame=4, n_frames=3)


def _slices():
    starts, out = 0, {}
    for g, n in zip(GROUPS, (3, 1, 5, 4, 8)):
        out[g] = slice(starts, starts + n)
        starts += n
    return out


EXPECTED = {  # (query, key) pairs that must be blocked, read off METHOD_NOTES §1.2 and attention.py's docstring
    "a": {("text", "dino"), ("text", "clip"), ("frame0", "dino"), ("frame0", "clip"), ("rest", "dino"),
          ("rest", "clip"), ("dino", "frame0"), ("dino", "rest"), ("clip", "frame0"), ("clip", "rest")},
    "b": {("text", "dino"), ("text", "clip"), ("rest", "dino"), ("rest", "clip"), ("dino", "rest"), ("clip", "rest")},
    "c": {("text", "dino"), ("text", "clip"), ("rest", "dino"), ("dino", "rest"), ("clip", "rest")},
    "d": {("text", "dino"), ("text", "clip"), ("dino", "frame0"), ("dino", "rest"), ("clip", "frame0"),
          ("clip", "rest")},
}


@pytest.mark.parametrize("design", ["a", "b", "c", "d"])
def test_mask_blocks_exactly_the_designed_group_pairs(design):
    mask = selective_attention_mask(design, **SIZES)
    assert mask.shape == (21, 21) and mask.dtype == torch.bool
    sl = _slices()
    for q in GROUPS:
        for k in GROUPS:
            block = mask[sl[q], sl[k]]
            want = (q, k) not in EXPECTED[design]
            assert bool(block.all()) == want and bool(block.any()) == want, (design, q, k)
            assert allowed(design, q, k) == want


def test_design_e_is_unmasked_and_unknown_design_refused():
    assert selective_attention_mask("e", **SIZES) is None
    with pytest.raises(ValueError, match="attention design"):
        selective_attention_mask("z", **SIZES)


def test_mask_is_cached_between_calls():
    assert selective_attention_mask("b", **SIZES) is selective_attention_mask("b", **SIZES)


def test_every_query_row_attends_to_something():
    for design in "abcd":
        assert selective_attention_mask(design, **SIZES).any(dim=1).all()
