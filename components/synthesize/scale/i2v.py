"""Stage 3, image-to-video: the first frame and the caption -> the sample's video at the model's size.

Any diffusers image-to-video pipeline at `synthesize.scale.i2v_path` (e.g. CogVideoXImageToVideoPipeline;
the paper uses DynamiCrafter). Arguments its __call__ does not take (a prompt, for Stable Video Diffusion)
are left out. A pipeline that returns another frame count or size (CogVideoX rounds frames to its VAE's
temporal stride, SVD has a fixed count) is resampled to exactly (num_frames, H, W).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .loading import call_pipeline, load_pipeline, model_dir, resize, to_uint8


def fit_frames(frames: np.ndarray, num_frames: int, height: int, width: int) -> np.ndarray:
    """(F, h, w, 3) uint8 -> (num_frames, height, width, 3) uint8: nearest frames in time, bicubic in space."""
    idx = np.rint(np.linspace(0, len(frames) - 1, num_frames)).astype(int) if len(frames) > 1 else [0] * num_frames
    return np.stack([resize(frames[i], height, width) for i in idx])


class ImageToVideo:
    """The image-to-video pipeline at `synthesize.scale.i2v_path`, loaded on first use."""

    field = "i2v_path"

    def __init__(self, scale_cfg, cache_dir: str | Path | None = None):
        self.cfg = scale_cfg
        self.path = model_dir(scale_cfg, self.field, cache_dir)
        self._pipe = None

    @property
    def pipe(self):
        if self._pipe is None:
            self._pipe = load_pipeline(self.path, self.field, self.cfg)
        return self._pipe

    def __call__(self, image: np.ndarray, prompt: str, num_frames: int, generator=None) -> np.ndarray:
        """image (H, W, 3) uint8, the first frame -> frames (num_frames, H, W, 3) uint8."""
        from PIL import Image

        height, width = image.shape[:2]
        out = call_pipeline(self.pipe, image=Image.fromarray(image), prompt=prompt, height=height, width=width,
                            num_frames=num_frames, num_inference_steps=self.cfg.num_inference_steps,
                            guidance_scale=self.cfg.guidance_scale, generator=generator, output_type="np")
        frames = to_uint8(out.frames[0])  # frames: (batch, F, h, w, 3) arrays or a list of PIL lists
        return fit_frames(frames, num_frames, height, width)
