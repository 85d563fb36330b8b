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


@pytest.mark.parametrize("design", list("abcde"))
def test_token_influence_follows_the_design(design):
    """Behavioural check through a real diffusers Attention with our processor: perturbing key token j changes
    query token i's output exactly when the design lets i attend to j (METHOD_NOTES §1.2)."""
    from diffusers.models.attention_processor import Attention

    from model.attention import SugarSelectiveAttnProcessor2_0

    torch.manual_seed(0)
    attn = Attention(query_dim=16, dim_head=8, heads=2, qk_norm="layer_norm", eps=1e-6, bias=True, out_bias=True,
                     processor=SugarSelectiveAttnProcessor2_0()).eval()
    n_cond = SIZES["n_dino"] + SIZES["n_clip"] + SIZES["n_text"]
    x = torch.randn(1, 21, 16)
    mask = selective_attention_mask(design, **SIZES)

    def run(inp):
        video, cond = attn(hidden_states=inp[:, n_cond:], encoder_hidden_states=inp[:, :n_cond], attention_mask=mask)
        return torch.cat([cond, video], dim=1)[0]

    group = [g for g, sl in _slices().items() for _ in range(sl.stop - sl.start)]
    with torch.no_grad():
        base = run(x)
        for j in range(21):
            bumped = x.clone()
            bumped[0, j] += 3.0
            moved = (run(bumped) - base).abs().amax(dim=-1) > 1e-6
            for i in range(21):
                want = i == j or allowed(design, group[i], group[j])
                assert bool(moved[i]) == want, (design, i, group[i], j, group[j])


@pytest.mark.parametrize("design", list("abcd"))
def test_text_sees_image_option_opens_only_text_to_image_and_never_in_design_a(design):
    base = selective_attention_mask(design, **SIZES)
    opened = selective_attention_mask(design, **SIZES, text_sees_image=True)
    sl = _slices()
    diff = base ^ opened
    if design == "a":
        assert not diff.any()  # (a) keeps the video unconditioned: no path from the image through the text
        return
    assert opened[sl["text"], sl["dino"]].all() and opened[sl["text"], sl["clip"]].all()
    diff[sl["text"], sl["dino"]] = False
    diff[sl["text"], sl["clip"]] = False
    assert not diff.any()


def test_processor_is_named_and_marked_as_diffusers_processors_are():
    """`<Model><Variant>AttnProcessor2_0` with its docstring, like CogVideoXAttnProcessor2_0; the attention-backend
    hooks of diffusers' newer processors, so `set_attention_backend` reaches it."""
    from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0

    from model.attention import SelectiveAttnProcessor, SugarSelectiveAttnProcessor2_0

    cls = SugarSelectiveAttnProcessor2_0
    assert cls.__name__.endswith("AttnProcessor2_0") and "selective attention" in cls.__doc__
    assert cls._attention_backend is None and cls._parallel_config is None
    assert SelectiveAttnProcessor is cls  # the old name still imports
    # the stock processor's call signature, so it swaps in and out with set_attn_processor
    import inspect

    assert list(inspect.signature(cls.__call__).parameters) == list(
        inspect.signature(CogVideoXAttnProcessor2_0.__call__).parameters)


def test_attention_backend_reaches_the_processor_and_native_sdpa_keeps_the_numbers():
    from model.attention import SugarSelectiveAttnProcessor2_0
    from model.config import model_config
    from model.transformer import SugarTransformer3DModel, tiny_transformer_kwargs

    torch.manual_seed(0)
    model = SugarTransformer3DModel(**tiny_transformer_kwargs(model_config("tiny", num_frames=2)), dino_dim=8,
                                    clip_dim=8, num_dino_tokens=3, num_text_tokens=5).eval()
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(2, 2, 48, 8, 8, generator=g), torch.tensor([3, 900]), torch.randn(2, 3, 8, generator=g),
         torch.randn(2, 1, 8, generator=g), torch.randn(2, 5, 64, generator=g), *torch.ones(3, 2))
    with torch.no_grad():
        default = model(*x)
        model.set_attention_backend("native")
        processors = set(map(id, model.attn_processors.values()))
        assert all(isinstance(p, SugarSelectiveAttnProcessor2_0) and p._attention_backend == "native"
                   for p in model.attn_processors.values()) and len(processors) == 1
        assert torch.equal(model(*x), default)
