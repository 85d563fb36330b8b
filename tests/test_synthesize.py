"""The synthesize step: sprites backend, shared filters, the dataset it writes, resume and determinism."""

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # repo root; the package is not installed

from components.config import load_config  # noqa: E402
from components.dataset import CATEGORIES, MANIFEST, MANIFEST_COLUMNS, resolve_inside  # noqa: E402
from components.media import read_image, read_video, write_video  # noqa: E402
from components import sprites as S  # noqa: E402
from components.sprites import scoring as SC  # noqa: E402
from components.synthesize.filters import apply_filters, flow_score, score_samples  # noqa: E402
from components.synthesize.sprites_backend import plan_specs as plan  # noqa: E402
from components.synthesize.synthesize import SHARDS, read_ground_truth, run  # noqa: E402

# 4 subjects x 4 samples in shards of 4 -> 4 shards; tiny preset video: 32 x 32, 8 frames, 8 fps.
SMALL = ["synthesize.num_subjects=4", "synthesize.samples_per_subject=4", "synthesize.shard_size=4",
         "synthesize.workers=1", "synthesize.val_fraction=0.25"]


def small_cfg(*extra):
    return load_config(overrides=[*SMALL, *extra])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds") / "sprites"
    summary = run(root, small_cfg())
    return root, summary


def majority_colour(pixels: np.ndarray, background) -> str:  # background: one colour or one per pixel
    labels, _ = SC.classify_colours(pixels, background)
    labels = labels[labels >= 0]
    return list(S.PALETTE)[np.bincount(labels, minlength=len(S.PALETTE)).argmax()]


# ------------------------------------------------------------------------------------ dataset
def test_manifest_schema_paths_and_counts(dataset):
    root, summary = dataset
    df = pd.read_parquet(root / MANIFEST)
    assert list(df.columns) == list(MANIFEST_COLUMNS)
    assert {c: str(t) for c, t in df.dtypes.items()} == MANIFEST_COLUMNS
    assert len(df) == summary["samples_total"] == summary["samples_kept"] == 16
    assert df.sample_id.is_unique and list(df.sample_id) == sorted(df.sample_id)
    assert set(df.source) == {"real", "synthetic"} and (df.source == "synthetic").sum() == 8  # fraction 0.5
    assert set(df.category) <= set(CATEGORIES) and set(df.split) == {"train", "val"}
    # the split is by subject: no subject in both
    assert not set(df[df.split == "train"].subject_id) & set(df[df.split == "val"].subject_id)
    assert (df[["num_frames", "fps", "height", "width"]] == [8, 8, 32, 32]).all().all()
    for col in ("clip_text_score", "dino_identity_score", "frame_consistency", "flow_score"):
        assert df[col].notna().all()
    for rel in [*df.identity_image, *df.video]:
        assert not Path(rel).is_absolute()
        assert resolve_inside(root, rel).is_file()
    frames, fps = read_video(root / df.video[0])
    assert frames.shape == (8, 32, 32, 3) and fps == 8
    assert read_image(root / df.identity_image[0]).shape == (32, 32, 3)
    truth = read_ground_truth(root)
    assert list(truth) == list(df.sample_id)
    assert [truth[i].caption for i in df.sample_id] == list(df.caption)
    assert summary["shards_total"] == summary["shards_generated"] == 4
    assert json.loads((root / "summary.json").read_text())["samples_kept"] == 16


def test_same_seed_same_bytes_whatever_the_worker_count(dataset, tmp_path):
    root, _ = dataset
    other = tmp_path / "again"
    run(other, small_cfg("synthesize.workers=2"))  # forked pool this time
    assert (other / MANIFEST).read_bytes() == (root / MANIFEST).read_bytes()
    assert (other / "ground_truth.jsonl").read_bytes() == (root / "ground_truth.jsonl").read_bytes()
    df = pd.read_parquet(root / MANIFEST)
    for rel in df.identity_image:
        assert (other / rel).read_bytes() == (root / rel).read_bytes(), rel
    # Videos too, byte for byte (components/media.py avoids x264's heap-dependent analyses), and the
    # summary file: the whole directory, hence its DVC version, is a function of the config.
    for rel in [*df.video, "summary.json"]:
        assert (other / rel).read_bytes() == (root / rel).read_bytes(), rel
    different = plan(small_cfg("synthesize.seed=1"))
    assert [s.caption for s, _ in different] != [s.caption for s, _ in plan(small_cfg())]


def test_resume_regenerates_only_the_missing_shard(dataset, tmp_path):
    root, _ = dataset
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    shutil.rmtree(copy / SHARDS / "0001")
    (copy / SHARDS / "0002" / "done.json").unlink()  # an interrupted shard: files there, no done-file
    untouched = {p: p.stat().st_mtime_ns for d in ("0000", "0003") for p in (copy / SHARDS / d).rglob("*")}
    summary = run(copy, small_cfg())
    assert summary["shards_generated"] == 2 and summary["shards_skipped"] == 2
    assert {p: p.stat().st_mtime_ns for p in untouched} == untouched
    assert (copy / MANIFEST).read_bytes() == (root / MANIFEST).read_bytes()
    # an evaluation-only judge does not touch the data; a config that changes content invalidates every shard
    assert run(copy, small_cfg("scoring.text_video_path=/models/xclip"))["shards_generated"] == 0
    assert run(copy, small_cfg("synthesize.seed=5"))["shards_generated"] == 4


def test_identity_and_video_colours_follow_the_spec(dataset):
    root, _ = dataset
    df = pd.read_parquet(root / MANIFEST)
    truth = read_ground_truth(root)
    for row in df.itertuples():
        spec = truth[row.sample_id]
        image = read_image(root / row.identity_image)
        subject_px = image[np.linalg.norm(image.astype(float) - 255, axis=-1) > S.FG_THRESHOLD]
        assert len(subject_px) > 20
        # identity image: the ORIGINAL subject on white, for real and synthetic samples alike
        assert majority_colour(subject_px, S.IDENTITY_BACKGROUND) == spec.subject.colour
        assert (image[0] == 255).all() and (image[:, 0] == 255).all()  # plain white around it
        frames, _ = read_video(root / row.video)
        bg = np.broadcast_to(S.background_image(spec.background, 32, 32), frames.shape)
        fg = SC.foreground(frames, bg)
        video_colour = majority_colour(frames[fg], bg[fg])
        if spec.new_colour:  # synthetic colour change: the video shows the caption's new colour
            assert row.source == "synthetic" and spec.new_colour in row.caption
            assert video_colour == spec.new_colour != spec.subject.colour
        else:
            assert video_colour == spec.subject.colour and spec.subject.colour in row.caption
        if spec.changed:  # every change is stated in the caption
            word = {"colour": spec.new_colour, "texture": S.TEXTURE_WORDS.get(spec.new_texture or "", "-"),
                    "sketch": "sketch", "pixel": "pixel-art", "background": spec.background}[spec.change]
            assert word in row.caption, (spec.change, row.caption)
        if row.source == "real":
            assert not spec.changed


def test_real_identity_image_is_cut_from_its_video():
    subject = S.training_subjects(0, 1)[0]
    spec = S.sample_spec(0, subject, 0, 0, synthetic=False)
    frames, masks = S.render(spec, 32, 32, 8)
    image = S.identity_image(spec, 32, 32, 8, frames, masks)
    t = min(int(spec.identity_frame * 8), 7)
    assert np.sort(image[image.any(-1) & (image != 255).any(-1)].ravel()).tolist() == \
        np.sort(frames[t][masks[t] & (frames[t] != 255).any(-1)].ravel()).tolist()


# ------------------------------------------------------------------------------ ground truth
def test_sprites_scores_high_on_truth_low_on_wrong(tmp_path):
    subject = S.training_subjects(3, 1)[0]
    walk = S.Motion("right", 0.6, 0.1, 0.5, kind="walk", amplitude=0.03, cycles=2.0)
    spec = dataclasses.replace(S.sample_spec(3, subject, 0, 0, synthetic=False), background="gray", motion=walk)
    frames, _ = S.render(spec, 32, 32, 8)
    write_video(tmp_path / "v.mp4", frames, 8)  # scores survive the codec
    decoded, _ = read_video(tmp_path / "v.mp4")
    for video in (frames, decoded):
        s = SC.sprites_scores(video, spec)
        assert s["identity"] > 0.8 and s["motion"] > 0.9 and s["attribute"] == 1.0
    other = next(c for c in S.PALETTE if c != subject.colour)
    wrong_colour = S.render(dataclasses.replace(spec, subject=dataclasses.replace(subject, colour=other)), 32, 32, 8)
    wrong = SC.sprites_scores(wrong_colour[0], spec)
    assert wrong["identity_colour"] < 0.05 and wrong["identity_shape"] > 0.9  # the parts tell what is wrong
    assert 0.4 < wrong["identity"] < s["identity"] - 0.25
    opposite = {"left": "right", "right": "left", "up": "down", "down": "up"}[spec.motion.direction]
    backwards = S.render(dataclasses.replace(spec, motion=dataclasses.replace(spec.motion, direction=opposite)),
                         32, 32, 8)
    assert SC.sprites_scores(backwards[0], spec)["motion"] == 0.0
    still = np.repeat(frames[:1], 8, axis=0)
    assert SC.sprites_scores(still, spec)["motion"] == 0.0
    assert SC.sprites_scores(np.full_like(frames, 120), spec) == {
        "identity": 0.0, "identity_shape": 0.0, "identity_colour": 0.0, "identity_texture": 0.0, "motion": 0.0,
        "attribute": 1.0}

    recoloured = dataclasses.replace(spec, source="synthetic", new_colour=other)
    assert SC.sprites_scores(S.render(recoloured, 32, 32, 8)[0], recoloured)["attribute"] > 0.9
    assert SC.sprites_scores(frames, recoloured)["attribute"] < 0.1  # change requested, not made
    sketch = dataclasses.replace(spec, source="synthetic", style="sketch")
    assert SC.sprites_scores(S.render(sketch, 32, 32, 8)[0], sketch)["attribute"] > 0.9
    assert SC.sprites_scores(frames, sketch)["attribute"] < 0.2


@pytest.mark.parametrize("change", ["texture", "pixel", "background"])
def test_each_attribute_change_is_scored_when_made_and_not_when_skipped(change):
    # every held-out change kind, on its held-out specs: made -> attribute high, skipped -> ~0
    specs = [s for s in S.heldout_specs(0, 60) if s.change == change]
    assert len(specs) >= 6
    for spec in specs:
        made = SC.sprites_scores(S.render(spec, 32, 32, 8)[0], spec)
        plain = dataclasses.replace(spec, new_texture=None, style=None,
                                    background="black" if change == "background" else spec.background)
        skipped = SC.sprites_scores(S.render(plain, 32, 32, 8)[0], spec)
        assert made["attribute"] > 0.75 and made["identity"] > 0.7 and made["motion"] > 0.75, (spec, made)
        assert skipped["attribute"] < 0.2, (spec, skipped)


def test_motions_suit_their_category_and_move_as_captioned():
    subjects = S.training_subjects(0, 60)
    kinds = {}
    for i, sub in enumerate(subjects):
        spec = S.sample_spec(0, sub, i, 0, synthetic=False)
        kinds.setdefault(sub.category, set()).add(spec.motion.kind)
        assert spec.motion.kind in S.CATEGORY_MOTIONS[sub.category]
        frames, masks = S.render(spec, 32, 32, 8)
        assert masks.any(axis=(1, 2)).all()  # the subject never leaves the frame
        assert not masks[:, 0].any() and not masks[:, -1].any() and not masks[:, :, 0].any()
        if spec.motion.kind == "zoom":
            area = masks.sum(axis=(1, 2))
            assert (area[-1] > area[0]) == (spec.motion.scale_end > 1)
            assert "camera" in spec.caption or "viewer" in spec.caption or "distance" in spec.caption
        else:
            assert S.DIRECTION_WORDS[spec.motion.direction] in spec.caption
    assert kinds == {c: set(m) for c, m in S.CATEGORY_MOTIONS.items()}
    only = S.sample_spec(0, subjects[0], 0, 0, False, motions=("zoom",))
    assert only.motion.kind == "zoom"  # a category without an allowed motion takes any allowed one
    # zoom played backwards and a spin are scored as motion by area change and by displacement
    zoom = next(s for s in S.heldout_specs(0, 60) if s.motion.kind == "zoom")
    back = dataclasses.replace(zoom, motion=dataclasses.replace(zoom.motion, scale_end=1 / zoom.motion.scale_end))
    assert SC.sprites_scores(S.render(zoom, 32, 32, 8)[0], zoom)["motion"] > 0.9
    assert SC.sprites_scores(S.render(back, 32, 32, 8)[0], zoom)["motion"] == 0.0


def test_texture_and_shape_count_towards_identity():
    subject = dataclasses.replace(S.training_subjects(0, 1)[0], texture="stripes", shape="cross")
    spec = dataclasses.replace(S.sample_spec(0, subject, 0, 0, synthetic=False), subject=subject)
    truth = SC.sprites_scores(S.render(spec, 32, 32, 8)[0], spec)["identity"]
    solid = S.render(dataclasses.replace(spec, subject=dataclasses.replace(subject, texture="solid")), 32, 32, 8)[0]
    circle = S.render(dataclasses.replace(spec, subject=dataclasses.replace(subject, shape="circle")), 32, 32, 8)[0]
    assert truth > 0.8
    plain = SC.sprites_scores(solid, spec)
    assert plain["identity_texture"] < 0.2 and plain["identity"] < truth - 0.25
    assert SC.sprites_scores(circle, spec)["identity"] < truth - 0.2


def _blob(spec, h=32, w=32, t_=8):
    """A featureless disc of the subject's size on its true path, in a grey that stands off the background."""
    p, bg = S.pose(spec, h, w, t_), S.background_image(spec.background, h, w)
    tone = np.array([200.0, 200, 200]) if bg.mean() < 128 else np.array([40.0, 40, 40])
    yy, xx = np.mgrid[0:h, 0:w]
    r = spec.subject.size * min(h, w) / 2 * 0.9
    return np.stack([np.where((((xx - cx) ** 2 + (yy - cy) ** 2) <= r * r)[..., None], tone, bg)
                     for cx, cy in p.centres]).astype(np.uint8)


def test_identity_is_monotone_in_faithfulness():
    # exact copy > right shape in the wrong colour > a shapeless blob > noise, on every held-out spec
    rng = np.random.default_rng(0)
    for spec in S.heldout_specs(0, 60):
        exact = S.render(spec, 32, 32, 8)[0]
        other = next(c for c in S.PALETTE if c not in (spec.subject.colour, spec.new_colour))
        recoloured = dataclasses.replace(spec, subject=dataclasses.replace(spec.subject, colour=other),
                                         new_colour=other if spec.new_colour else None)
        wrong = S.render(recoloured, 32, 32, 8)[0]
        noise = rng.integers(0, 256, exact.shape, dtype=np.uint8)
        ident = [SC.sprites_scores(v, spec)["identity"] for v in (exact, wrong, _blob(spec), noise)]
        assert ident[0] > 0.85 and ident[3] < 0.15, (spec, ident)
        if spec.new_colour is None:  # the caption changes the colour: colour is then not part of identity
            assert ident[0] > ident[1] + 0.2, (spec, ident)
        assert ident[1] > ident[2] > ident[3], (spec, ident)


def test_grey_is_no_palette_colour():
    for name, bg in S.BACKGROUNDS.items():
        greys = np.array([[v, v, v] for v in range(10, 250, 20)], np.float64)
        labels, _ = SC.classify_colours(greys, bg)
        assert (labels == -1).all(), name
    shaded = np.array([np.asarray(c, float) * S.SHADE for c in S.PALETTE.values()])
    assert SC.classify_colours(shaded, (0, 0, 0))[0].tolist() == list(range(len(S.PALETTE)))


def test_heldout_specs_are_disjoint_from_training():
    held = S.heldout_specs(0, 30)
    assert len({s.sample_id for s in held}) == 30
    assert [s.subject.category for s in held[:3]] == ["animal", "active_object", "static_object"]
    assert {s.change for s in held} == set(S.HELDOUT_CHANGES)
    combo = lambda sub: (sub.noun, sub.shape, sub.colour, sub.texture)  # noqa: E731
    for seed in (0, 1, 7):
        train = {combo(sub) for sub in S.training_subjects(seed, 300)}
        assert not train & {combo(s.subject) for s in held}
    for spec in held:
        assert spec.video_colour in spec.caption and spec.subject.noun in spec.caption
        if spec.motion.kind != "zoom":
            assert S.DIRECTION_WORDS[spec.motion.direction] in spec.caption
    assert S.spec_from_dict(json.loads(json.dumps(S.spec_to_dict(held[1])))) == held[1]


# ----------------------------------------------------------------------------------- filters
def test_flow_score_static_vs_moving():
    spec = S.sample_spec(0, S.training_subjects(0, 1)[0], 0, 0, synthetic=False)
    frames, _ = S.render(spec, 32, 32, 8)
    assert flow_score(np.repeat(frames[:1], 8, axis=0)) < 0.05
    assert flow_score(frames) > 0.5
    assert flow_score(frames[:1]) == 0.0


def test_score_samples_shapes_and_ranges():
    from model.scoring import ScoringEncoders

    specs = [s for s, _ in plan(small_cfg())[:3]]
    pairs = [S.generate(s, 32, 32, 8) for s in specs]
    scores = score_samples(ScoringEncoders(), [p[0] for p in pairs], [p[1] for p in pairs],
                           [s.caption for s in specs], batch_size=5)
    for col, values in scores.items():
        assert values.shape == (3,) and np.isfinite(values).all(), col
    assert (np.abs(scores["clip_text_score"]) <= 1).all() and (scores["frame_consistency"] <= 1 + 1e-6).all()


def test_threshold_drops_samples_and_reports_counts(dataset, tmp_path):
    root, _ = dataset
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    flows = np.sort(pd.read_parquet(root / MANIFEST).flow_score.to_numpy())
    threshold = float(flows[5])  # drops the 5 most static clips
    summary = run(copy, small_cfg(f"synthesize.min_flow_score={threshold}"))
    assert summary["shards_generated"] == 0  # a threshold change re-filters without regenerating
    assert summary["filters"]["flow_score"] == {"threshold": threshold, "kept": 11, "dropped": 5}
    assert summary["samples_kept"] == 11 and summary["samples_dropped"] == 5
    df = pd.read_parquet(copy / MANIFEST)
    assert len(df) == 11 and (df.flow_score >= threshold).all()
    assert list(read_ground_truth(copy)) == list(df.sample_id)

    kept, report = apply_filters({"clip_text_score": [0.3, 0.1], "dino_identity_score": [0.9, 0.9],
                                  "frame_consistency": [1.0, float("nan")], "flow_score": [1.0, 1.0]},
                                 small_cfg("synthesize.min_clip_text_score=0.2").synthesize)
    assert kept.tolist() == [True, False]
    assert report["clip_text_score"] == {"threshold": 0.2, "kept": 1, "dropped": 1}
    assert report["frame_consistency"]["dropped"] == 1 and report["all"] == {"kept": 1, "dropped": 1}


# ------------------------------------------------------------------------------ CLI and KFP
def test_cli_and_kfp_component(dataset, tmp_path, capsys):
    from kfp import compiler, dsl

    from components.synthesize.__main__ import build_parser, main
    from components.synthesize.component import synthesize

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    assert "OUTPUT_DIR" in capsys.readouterr().out
    root, _ = dataset
    assert main([str(tmp_path / "cli"), *[a for o in SMALL for a in ("--set", o)]]) == 0
    assert json.loads(capsys.readouterr().out)["samples_kept"] == 16
    assert (tmp_path / "cli" / MANIFEST).read_bytes() == (root / MANIFEST).read_bytes()

    out = tmp_path / "synthesize.yaml"
    compiler.Compiler().compile(synthesize, str(out))
    text = out.read_text()
    assert "config_json" in text and "system.Dataset" in text
    artifact = dsl.Dataset(name="dataset", uri=str(tmp_path / "kfp"), metadata={})
    summary = json.loads(synthesize.python_func(config_json=small_cfg().to_json(), dataset=artifact))
    assert summary["samples_kept"] == artifact.metadata["samples"] == 16
    assert (tmp_path / "kfp" / MANIFEST).read_bytes() == (root / MANIFEST).read_bytes()


def test_caption_colour_off_names_only_a_requested_new_colour():
    subjects = S.training_subjects(0, 40)
    for i, sub in enumerate(subjects):
        for j, synthetic in enumerate((False, True, True, True)):
            named = S.sample_spec(0, sub, i, j, synthetic, name_colour=True)
            quiet = S.sample_spec(0, sub, i, j, synthetic, name_colour=False)
            assert dataclasses.replace(quiet, caption=named.caption) == named  # only the caption differs
            words = quiet.caption.replace(",", " ").split()
            if quiet.new_colour:
                assert quiet.new_colour in words and sub.colour not in words
            else:
                assert sub.colour in named.caption.split() and sub.colour not in words
                assert "  " not in quiet.caption
    held = S.heldout_specs(0, 12, name_colour=False)
    assert all(s.subject.colour not in s.caption.split() for s in held if s.new_colour is None)


def test_subject_size_range_is_respected_and_validated():
    subs = S.training_subjects(0, 50, size_range=(0.5, 0.65))
    assert all(0.5 <= s.size <= 0.65 for s in subs)
    assert [s.size for s in S.training_subjects(0, 5)] == [s.size for s in S.training_subjects(0, 5, S.SIZE_RANGE)]
    assert all(0.5 <= s.subject.size <= 0.65 for s in S.heldout_specs(0, 9, size_range=(0.5, 0.65)))
    frames, _ = S.render(S.sample_spec(0, subs[0], 0, 0, False), 32, 32, 4)
    assert frames.shape == (4, 32, 32, 3)
    with pytest.raises(ValueError, match="subject_size"):
        load_config(preset="tiny", overrides=["synthesize.subject_size=[0.7,0.4]"])


def test_position_captions_name_where_the_subject_starts():
    for spec in S.heldout_specs(0, 30, name_colour=False, name_position=True):
        frames, masks = S.render(spec, 32, 32, 8)
        ys, xs = np.nonzero(masks[0])
        x, y = xs.mean() / 32, ys.mean() / 32
        region = S.start_region(spec.subject, spec.motion)
        assert region in spec.caption
        words = region.split()
        # the named thirds contain the subject's first-frame centroid (within a pixel of a third's edge)
        if "left" in words:
            assert x < 1 / 3 + 1 / 32
        if "right" in words:
            assert x > 2 / 3 - 1 / 32
        if "top" in words:
            assert y < 1 / 3 + 1 / 32
        if "bottom" in words:
            assert y > 2 / 3 - 1 / 32
        if region == "centre":
            assert 1 / 3 - 1 / 32 < x < 2 / 3 + 1 / 32 and 1 / 3 - 1 / 32 < y < 2 / 3 + 1 / 32
    from components.sprites.captions import _where_phrase as where_phrase

    plain = S.heldout_specs(0, 30, name_colour=False)
    assert not any(where_phrase(s.subject, s.motion) in s.caption for s in plain)
