"""Stage 1, subject-driven text-to-image: the subject with one attribute changed, as the prompt says.

[RECON] The paper uses Toffee, which is not public. The default is diffusers img2img
(`AutoPipelineForImage2Image`, e.g. StableDiffusionImg2ImgPipeline) started from the subject image with
`t2i_strength`: low strength keeps the identity, high strength lets the prompt's change through. Any
pipeline whose __call__ takes (prompt, image, strength, ...) fits, so a subject-driven model packaged as a
diffusers pipeline drops in through `synthesize.scale.t2i_path`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .loading import call_pipeline, load_pipeline, model_dir, resize, to_uint8


class SubjectDrivenT2I:
    """The img2img pipeline at `synthesize.scale.t2i_path`, loaded on first use."""

    field = "t2i_path"

    def __init__(self, scale_cfg, cache_dir: str | Path | None = None):
        self.cfg = scale_cfg
        self.path = model_dir(scale_cfg, self.field, cache_dir)  # fails now, naming the field, if missing
        self._pipe = None

    @property
    def pipe(self):
        if self._pipe is None:
            self._pipe = load_pipeline(self.path, self.field, self.cfg, auto="AutoPipelineForImage2Image")
        return self._pipe

    def __call__(self, subject: np.ndarray, prompt: str, generator=None) -> np.ndarray:
        """subject (h, w, 3) uint8 -> the changed subject (h, w, 3) uint8 (sides multiples of 8 suit SD VAEs)."""
        from PIL import Image

        strength = self.cfg.t2i_strength
        # img2img runs int(steps * strength) denoising steps; zero steps would fail inside the pipeline.
        steps = max(self.cfg.num_inference_steps, math.ceil(1.0 / strength))
        out = call_pipeline(self.pipe, prompt=prompt, image=Image.fromarray(subject), strength=strength,
                            num_inference_steps=steps, guidance_scale=self.cfg.guidance_scale, generator=generator,
                            output_type="np")
        image = to_uint8(out.images)[0]
        return resize(image, subject.shape[0], subject.shape[1])  # the pipeline may round sides to its VAE
