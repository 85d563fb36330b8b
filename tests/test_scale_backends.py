"""The `diffusers` synthesis backend (components/synthesize/scale) on tiny random models built here.

Like diffusers' own fast tests, every model is a tiny random config built in code and saved with
`save_pretrained`; unlike them, tokenizers are built in code too (nothing can be fetched from a hub):
a character-level CLIP BPE for Stable Diffusion, the project's word-level T5 tokenizer for CogVideoX, a
word-piece BERT vocabulary for Grounding DINO. The outputs are noise; the tests check shapes, dtypes,
which pixels each stage may touch, determinism and the errors.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest

H = W = 32  # the tiny/ci presets' video size
T = 8  # and frame count


# ------------------------------------------------------------------------------------ tiny models
def _clip_tokenizer(root: Path):
    """Character-level CLIP BPE: every letter and digit, alone and word-final, and no merges."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in string.ascii_lowercase + string.digits + ".,-'":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (root / "vocab.json").write_text(json.dumps(vocab))
    (root / "merges.txt").write_text("#version: 0.2\n")
    # model_max_length 16 = the text encoder's max_position_embeddings: SD pads every prompt to it.
    return CLIPTokenizer(str(root / "vocab.json"), str(root / "merges.txt"), model_max_length=16,
                         pad_token="<|endoftext|>"), len(vocab)


def _stable_diffusion(tokenizer, vocab_size: int, unet_in_channels: int) -> dict:
    """Components of a tiny SD 1.x; unet_in_channels 4 for img2img, 9 (latents + mask + masked latents) to inpaint."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=unet_in_channels,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,  # = the text encoder's hidden size
        norm_num_groups=8)
    # Two blocks: VAE scale factor 2, so 32 x 32 images are 16 x 16 latents.
    vae = AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        latent_channels=4, norm_num_groups=8)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=32, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, vocab_size=vocab_size, max_position_embeddings=16))
    return dict(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                scheduler=DDIMScheduler(steps_offset=1), safety_checker=None, feature_extractor=None,
                requires_safety_checker=False)


def _cogvideox_i2v():
    import torch
    from diffusers import (AutoencoderKLCogVideoX, CogVideoXImageToVideoPipeline, CogVideoXTransformer3DModel,
                           DDIMScheduler)
    from transformers import T5Config, T5EncoderModel

    from model.encoders import TINY_VOCAB_SIZE, tiny_word_tokenizer

    torch.manual_seed(0)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16,  # RoPE needs a head dim divisible by 16
        in_channels=8,  # noisy latents + image latents, 4 channels each
        out_channels=4, time_embed_dim=2, text_embed_dim=32,  # = the T5's d_model
        num_layers=1,
        sample_width=4, sample_height=4,  # latent 4 x 4 -> 32 x 32 frames (VAE: 8x spatial)
        sample_frames=9,  # latent frames (9 - 1) / 4 + 1 = 3
        patch_size=2, temporal_compression_ratio=4,
        max_text_seq_length=226,  # the pipeline's default max_sequence_length
        # RoPE and no learned position embeddings: any frame size and text length works.
        use_rotary_positional_embeddings=True, use_learned_positional_embeddings=False)
    vae = AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=4,
        layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4)
    text_encoder = T5EncoderModel(T5Config(vocab_size=TINY_VOCAB_SIZE, d_model=32, d_kv=8, d_ff=37, num_layers=1,
                                           num_heads=4))
    return CogVideoXImageToVideoPipeline(transformer=transformer, vae=vae, text_encoder=text_encoder,
                                         tokenizer=tiny_word_tokenizer(), scheduler=DDIMScheduler(steps_offset=1))


NOUNS = ["cat", "dog", "ball", "robot", "vase", "box", "lamp", "bird"]


def _grounding_dino(root: Path):
    """Tiny Grounding DINO with a Swin backbone and a 2-layer BERT, plus its processor (64 px images)."""
    import torch
    from transformers import (BertTokenizer, GroundingDinoConfig, GroundingDinoForObjectDetection,
                              GroundingDinoImageProcessor, GroundingDinoProcessor, SwinConfig)

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *NOUNS]
    (root / "vocab.txt").write_text("\n".join(words) + "\n")
    torch.manual_seed(0)
    swin = SwinConfig(window_size=7, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], image_size=64,
                      out_indices=[2, 3, 4])  # three feature maps: 64 px -> 8, 4, 2
    config = GroundingDinoConfig(
        d_model=32, encoder_layers=1,
        decoder_layers=2,  # one layer trips transformers' bbox-head weight tying
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=8, decoder_ffn_dim=8, num_queries=4,
        num_feature_levels=3,  # = the backbone's maps; a 4th would be a 1 x 1 map GroupNorm refuses
        encoder_n_points=2, decoder_n_points=2, use_timm_backbone=False, backbone_config=swin, max_text_len=16,
        text_config={"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "intermediate_size": 8, "max_position_embeddings": 32, "vocab_size": len(words)})
    model = GroundingDinoForObjectDetection(config)
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 64}),
        tokenizer=BertTokenizer(str(root / "vocab.txt")))
    return model, processor


def _sam():
    """Tiny SAM: 32 px input, 2 px patches -> 16 x 16 embeddings -> 64 x 64 low-res masks."""
    import torch
    from transformers import (SamConfig, SamImageProcessor, SamMaskDecoderConfig, SamModel, SamProcessor,
                              SamPromptEncoderConfig, SamVisionConfig)

    torch.manual_seed(0)
    vision = SamVisionConfig(image_size=32, patch_size=2, hidden_size=16,
                             output_channels=16,  # = the prompt encoder's and mask decoder's hidden size
                             num_hidden_layers=1, num_attention_heads=2, window_size=4, global_attn_indexes=[0],
                             num_pos_feats=8, mlp_dim=32)
    prompt = SamPromptEncoderConfig(image_size=32, patch_size=2, hidden_size=16, mask_input_channels=4)
    decoder = SamMaskDecoderConfig(hidden_size=16, mlp_dim=32, num_hidden_layers=1, num_attention_heads=2,
                                   iou_head_hidden_dim=16)
    model = SamModel(SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder))
    processor = SamProcessor(image_processor=SamImageProcessor(size={"longest_edge": 32},
                                                               pad_size={"height": 32, "width": 32}))
    return model, processor


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """{config field: folder} of every stage's tiny model, saved once for the module."""
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline

    root = tmp_path_factory.mktemp("scale_models")
    tokenizer, vocab_size = _clip_tokenizer(root)
    paths = {f: root / f.removesuffix("_path") for f in
             ("t2i_path", "outpaint_path", "i2v_path", "detector_path", "sam_path")}
    StableDiffusionImg2ImgPipeline(**_stable_diffusion(tokenizer, vocab_size, 4)).save_pretrained(paths["t2i_path"])
    StableDiffusionInpaintPipeline(**_stable_diffusion(tokenizer, vocab_size, 9)).save_pretrained(
        paths["outpaint_path"])
    _cogvideox_i2v().save_pretrained(paths["i2v_path"])
    for field, (model, processor) in (("detector_path", _grounding_dino(root)), ("sam_path", _sam())):
        model.save_pretrained(paths[field])
        processor.save_pretrained(paths[field])
    return paths


def _overrides(paths: dict[str, Path], *fields: str, **settings) -> list[str]:
    """Overrides selecting the diffusers backend with the given stages' models and 2 inference steps."""
    out = ["synthesize.backend=diffusers", "synthesize.scale.num_inference_steps=2"]
    out += [f"synthesize.scale.{f}={paths[f]}" for f in ("i2v_path", *fields)]
    out += [f"synthesize.{k.replace('__', '.')}={v}" for k, v in settings.items()]
    return out


def _subject_csv(tmp_path: Path, rows: list[tuple[str, str, str]], sizes: dict[str, tuple[int, int]]) -> Path:
    """A subjects CSV in tmp_path/subjects with images of the given (h, w): a coloured square on grey."""
    from components.media import write_image

    root = tmp_path / "subjects"
    for name, (h, w) in sizes.items():
        img = np.full((h, w, 3), 200, np.uint8)
        img[h // 4:3 * h // 4, w // 4:3 * w // 4] = (200, 30, 30)
        write_image(root / name, img)
    root.mkdir(parents=True, exist_ok=True)
    (root / "subjects.csv").write_text("image,noun,category\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    return root / "subjects.csv"


# ------------------------------------------------------------------------------------------ plan
def test_plan_splits_by_subject_with_category_motions_and_varied_captions(tiny_models, run_config):
    from components.synthesize.scale.backend import DiffusersBackend
    from components.synthesize.scale.prompts import CATEGORY_MOTIONS

    cfg = run_config(*_overrides(tiny_models, "t2i_path", synthetic_fraction=0.5, val_fraction=0.25))
    backend = DiffusersBackend(cfg)
    jobs = backend.plan()
    s = cfg.synthesize
    assert len(jobs) == s.num_subjects * s.samples_per_subject
    assert len({j["sample_id"] for j in jobs}) == len(jobs)
    assert json.loads(json.dumps(jobs)) == jobs  # JSON-able: jobs travel to worker processes
    assert jobs == DiffusersBackend(cfg).plan()  # a pure function of the config
    splits: dict[str, set] = {}
    for j in jobs:
        splits.setdefault(j["subject"]["subject_id"], set()).add(j["split"])
        assert j["motion"] in CATEGORY_MOTIONS[j["subject"]["category"]]
        assert j["subject"]["noun"] in j["caption"]
        assert (j["source"] == "synthetic") == (j["t2i_prompt"] is not None) == (j["change"] is not None)
    assert all(len(v) == 1 for v in splits.values())  # a subject is wholly train or wholly val
    assert sum(v == {"val"} for v in splits.values()) == 2  # round(8 * 0.25)
    assert sum(j["source"] == "synthetic" for j in jobs) == round(len(jobs) * 0.5)
    assert len({j["caption"] for j in jobs}) > len(jobs) // 2
    assert DiffusersBackend(run_config(*_overrides(tiny_models, "t2i_path", seed=1))).plan() != jobs


def test_plan_without_t2i_is_all_real_like(tiny_models, run_config):
    from components.synthesize.scale.backend import DiffusersBackend

    jobs = DiffusersBackend(run_config(*_overrides(tiny_models, synthetic_fraction=0.5))).plan()
    assert {j["source"] for j in jobs} == {"real"} and all(j["t2i_prompt"] is None for j in jobs)


def test_motions_must_cover_each_category(tiny_models, run_config):
    from components.synthesize.scale.backend import DiffusersBackend

    backend = DiffusersBackend(run_config(*_overrides(tiny_models, motions="[walk]")))
    with pytest.raises(ValueError, match="no motion for (active_object|static_object) subjects"):
        backend.plan()


def test_folder_subjects(tiny_models, run_config, tmp_path):
    from components.media import write_image
    from components.synthesize.scale.backend import DiffusersBackend

    for rel in ("animal/golden_retriever/a.png", "animal/cat/b.jpg", "static_object/vase/c.png"):
        write_image(tmp_path / "subj" / rel, np.zeros((8, 8, 3), np.uint8))
    cfg = run_config(*_overrides(tiny_models, samples_per_subject=1, scale__subjects=tmp_path / "subj"))
    jobs = DiffusersBackend(cfg).plan()
    assert [(j["subject"]["noun"], j["subject"]["category"]) for j in jobs] == [
        ("cat", "animal"), ("golden retriever", "animal"), ("vase", "static_object")]

    write_image(tmp_path / "subj/vehicle/car/d.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="vehicle"):
        DiffusersBackend(cfg).plan()


def test_csv_subject_escaping_its_folder_names_the_row(tiny_models, run_config, tmp_path):
    from components.synthesize.scale.backend import DiffusersBackend

    (tmp_path / "outside.png").write_bytes(b"")
    csv = _subject_csv(tmp_path, [("a.png", "cat", "animal"), ("../outside.png", "dog", "animal")],
                       {"a.png": (16, 16)})
    backend = DiffusersBackend(run_config(*_overrides(tiny_models, scale__subjects=csv)))
    with pytest.raises(ValueError, match=r"row 3 \(image='\.\./outside\.png'\).*escapes"):
        backend.plan()


# ------------------------------------------------------------------------------------------ stages
def test_outpaint_without_pipeline_keeps_the_image_and_pads_with_its_border(run_config):
    from components.synthesize.scale.outpaint import Outpainter

    image = np.full((32, 16, 3), 90, np.uint8)
    image[8:24, 4:12] = (250, 10, 10)
    scale = run_config().synthesize.scale
    frame = Outpainter(scale)(image, H, W)
    assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame[:, 8:24], image)  # centred, unscaled: 16 -> 32 wide
    assert (frame[:, :8] == 90).all() and (frame[:, 24:] == 90).all()  # the border colour


def test_outpaint_pipeline_fills_only_the_padding(tiny_models, run_config):
    import torch

    from components.synthesize.scale.outpaint import Outpainter, pad_to_frame

    cfg = run_config(*_overrides(tiny_models, "outpaint_path"))
    image = np.random.default_rng(0).integers(0, 256, (16, 32, 3), dtype=np.uint8)  # wide: pads top and bottom
    frame = Outpainter(cfg.synthesize.scale)(image, H, W, prompt="a cat", generator=torch.Generator().manual_seed(0))
    canvas, pad = pad_to_frame(image, H, W)
    assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
    assert pad[:8].all() and pad[24:].all() and not pad[8:24].any()
    np.testing.assert_array_equal(frame[~pad], canvas[~pad])
    assert not np.array_equal(frame[pad], canvas[pad])  # the random inpainter painted something


def test_t2i_and_i2v_shapes(tiny_models, run_config):
    import torch

    from components.synthesize.scale.i2v import ImageToVideo, fit_frames
    from components.synthesize.scale.t2i import SubjectDrivenT2I

    scale = run_config(*_overrides(tiny_models, "t2i_path")).synthesize.scale
    subject = np.random.default_rng(0).integers(0, 256, (32, 24, 3), dtype=np.uint8)
    changed = SubjectDrivenT2I(scale)(subject, "a pixel art cat", torch.Generator().manual_seed(0))
    assert changed.shape == subject.shape and changed.dtype == np.uint8

    first = np.full((H, W, 3), 128, np.uint8)
    frames = ImageToVideo(scale)(first, "a cat walks", T, torch.Generator().manual_seed(0))
    assert frames.shape == (T, H, W, 3) and frames.dtype == np.uint8
    # Another frame count or size from a pipeline is resampled to exactly the model's.
    video = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.ones((5, 16, 16, 3), np.uint8)
    fitted = fit_frames(video, T, H, W)
    assert fitted.shape == (T, H, W, 3) and fitted[0, 0, 0, 0] == 0 and fitted[-1, 0, 0, 0] == 4


def test_segmenter_masks_and_refuses_when_nothing_is_detected(tiny_models, run_config):
    from components.synthesize.backend import SampleError
    from components.synthesize.scale.segment import GroundedSamSegmenter

    image = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    scale = run_config(*_overrides(tiny_models, "detector_path", "sam_path",
                                   scale__detection_threshold=0.0)).synthesize.scale
    mask = GroundedSamSegmenter(scale)(image, "cat")
    assert mask.shape == (40, 48) and mask.dtype == bool

    strict = scale.model_copy(update={"detection_threshold": 1.0})  # sigmoid scores never exceed 1
    with pytest.raises(SampleError, match="no 'cat' detected"):
        GroundedSamSegmenter(strict)(image, "cat")


# ------------------------------------------------------------------------------------- end to end
def test_backend_end_to_end_is_deterministic(tiny_models, run_config, tmp_path):
    from components.synthesize.backend import Sample
    from components.synthesize.backends import build_backend

    # A wide subject (16 x 32 -> fits 32 x 32 as 16 x 32) leaves padding for the outpainting stage.
    csv = _subject_csv(tmp_path, [("wide.png", "cat", "animal"), ("tall.png", "vase", "static_object")],
                       {"wide.png": (16, 32), "tall.png": (40, 20)})
    overrides = _overrides(tiny_models, "t2i_path", "outpaint_path", "detector_path", "sam_path",
                           scale__subjects=csv, scale__detection_threshold=0.0, samples_per_subject=2,
                           synthetic_fraction=0.5, val_fraction=0.0)
    backend = build_backend(run_config(*overrides))
    assert backend.name == "diffusers"
    jobs = backend.plan()
    assert len(jobs) == 4 and {j["source"] for j in jobs} == {"real", "synthetic"}
    # One job of each kind: the synthetic one runs every stage, the real-like one skips text-to-image.
    picked = [next(j for j in jobs if j["source"] == kind) for kind in ("synthetic", "real")]
    samples = [backend.generate(j) for j in picked]
    for job, sample in zip(picked, samples):
        assert isinstance(sample, Sample) and sample.sample_id == job["sample_id"]
        assert sample.source == job["source"] and sample.category == job["subject"]["category"]
        assert sample.identity.shape == (H, W, 3) and sample.identity.dtype == np.uint8
        assert sample.frames.shape == (T, H, W, 3) and sample.frames.dtype == np.uint8
        assert sample.caption == job["caption"]
        json.dumps(sample.extra)
    assert not np.array_equal(samples[0].frames, samples[1].frames)
    # A fresh instance, as in another worker process, gives the same bytes.
    other = build_backend(run_config(*overrides)).generate(picked[0])
    np.testing.assert_array_equal(other.frames, samples[0].frames)
    np.testing.assert_array_equal(other.identity, samples[0].identity)
    fp = backend.fingerprint()
    assert json.loads(json.dumps(fp)) == fp and fp["models"]["i2v_path"] == str(tiny_models["i2v_path"])


def test_identity_is_segmented_first_and_centred(tiny_models, run_config, tmp_path):
    """A subject Grounded SAM cannot find drops the job before any diffusion stage runs; a found one is
    centred on white (common.subject_on_white, as the ingest backend's identities)."""
    from components.synthesize.backend import SampleError
    from components.synthesize.scale.backend import DiffusersBackend

    csv = _subject_csv(tmp_path, [("a.png", "cat", "animal")], {"a.png": (32, 32)})
    backend = DiffusersBackend(run_config(*_overrides(
        tiny_models, "t2i_path", "detector_path", "sam_path", scale__subjects=csv, samples_per_subject=1,
        synthetic_fraction=1.0, val_fraction=0.0)))
    (job,) = backend.plan()
    assert job["t2i_prompt"] is not None  # every stage would run
    ran = []

    def stage(name):
        def call(*args, **kwargs):
            ran.append(name)
            raise AssertionError(f"{name} ran before the identity was segmented")
        return call

    def nothing_found(image, noun):
        raise SampleError(f"Grounded SAM: no {noun!r} detected above detection_threshold=1.0")

    backend.t2i, backend.outpaint, backend.i2v = stage("t2i"), stage("outpaint"), stage("i2v")
    backend.segmenter = nothing_found
    with pytest.raises(SampleError, match="no 'cat' detected"):
        backend.generate(job)
    assert ran == []

    def corner(image, noun):
        mask = np.zeros(image.shape[:2], bool)
        mask[:8, :8] = True
        return mask

    backend.segmenter = corner
    identity = backend.identity(np.full((H, W, 3), 100, np.uint8), "cat")
    ys, xs = np.nonzero((identity != 255).any(axis=-1))
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (12, 19, 12, 19)  # the 8 x 8 corner, centred
    assert (identity[12:20, 12:20] == 100).all()


def test_subject_file_errors_name_it_relative_to_the_subjects_folder(tiny_models, run_config, tmp_path):
    from components.synthesize.backend import SampleError
    from components.synthesize.scale.backend import DiffusersBackend

    csv = _subject_csv(tmp_path, [("a.png", "cat", "animal")], {"a.png": (16, 16)})
    backend = DiffusersBackend(run_config(*_overrides(tiny_models, scale__subjects=csv, samples_per_subject=1)))
    (job,) = backend.plan()
    assert job["subject"]["name"] == "a.png"
    (tmp_path / "subjects" / "a.png").write_bytes(b"not a png")
    with pytest.raises(SampleError) as err:
        backend.generate(job)
    assert "a.png" in str(err.value) and str(tmp_path) not in str(err.value)


def test_sprite_subjects_without_optional_stages(tiny_models, run_config):
    from components.synthesize.scale.backend import DiffusersBackend

    backend = DiffusersBackend(run_config(*_overrides(tiny_models)))
    job = backend.plan()[0]
    sample = backend.generate(job)
    assert sample.frames.shape == (T, H, W, 3) and sample.identity.shape == (H, W, 3)
    assert (sample.identity[0] == 255).all()  # a sprite subject alone on white


# ------------------------------------------------------------------------------------------ errors
def test_missing_model_path_is_named(tiny_models, run_config, tmp_path):
    from components.storage import StorageError
    from components.synthesize.scale.backend import DiffusersBackend

    missing = tmp_path / "no-such-model"
    with pytest.raises(StorageError, match=r"synthesize\.scale\.t2i_path.*no-such-model"):
        DiffusersBackend(run_config(*_overrides(tiny_models), f"synthesize.scale.t2i_path={missing}"))


def test_unloadable_model_folder_is_named(tiny_models, run_config, tmp_path):
    from components.synthesize.scale.backend import DiffusersBackend
    from components.synthesize.scale.loading import ModelLoadError

    (tmp_path / "empty").mkdir()
    backend = DiffusersBackend(run_config(*_overrides(tiny_models), f"synthesize.scale.i2v_path={tmp_path / 'empty'}"))
    with pytest.raises(ModelLoadError, match=r"synthesize\.scale\.i2v_path.*empty"):
        backend.generate(backend.plan()[0])


def test_detector_needs_sam(tiny_models, run_config):
    from components.synthesize.scale.backend import DiffusersBackend

    with pytest.raises(ValueError, match="detector_path and synthesize.scale.sam_path go together"):
        DiffusersBackend(run_config(*_overrides(tiny_models, "detector_path")))
