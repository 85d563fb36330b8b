"""The `sprites` data: procedural subjects, motions and attribute changes, with ground truth.

Shared by the synthesize step (training data), the evaluate step (held-out specs and scores) and export
(parity cases). Everything is numpy and a pure function of a seed, so the tiny preset can prove the
SUGAR mechanism on CPU and the benchmark can score videos against the truth instead of neural judges.

    spec      the attribute space, `SampleSpec`, the held-out partition
    captions  what a caption says (and never says)
    sampling  specs drawn from a seed: training subjects/samples, held-out specs
    render    frames, masks and the identity image of a spec at any size
    scoring   a generated video scored against its spec
"""

from components.dataset import CATEGORY_MOTIONS

from .captions import caption_for, start_region
from .render import Pose, background_image, expected_displacement, fill_holes, generate, identity_image, pose, render, \
    trajectory
from .sampling import (ALL_MOTIONS, DEFAULT_CHANGES, HELDOUT_CHANGES, heldout_specs, heldout_specs_for, sample_spec,
                       training_subjects)
from .scoring import classify_colours, foreground, sprites_scores
from .spec import (BACKGROUNDS, DIRECTION_WORDS, DIRECTIONS, FG_THRESHOLD, HELDOUT_MODULUS, IDENTITY_BACKGROUND, NOUNS,
                   PALETTE, SCENES, SHADE, SHAPES, SIZE_RANGE, STYLES, SUPERSAMPLE, TEXTURE_WORDS,
                   TEXTURES, Motion, SampleSpec, Subject, is_heldout, spec_from_dict, spec_to_dict)
