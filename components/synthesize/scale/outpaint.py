"""Stage 2, outpaint: the (changed) subject image onto a canvas of the video's aspect and size.

The image is scaled to fit the model's (H, W), centred, and the rest padded. With
`synthesize.scale.outpaint_path` an inpainting pipeline (AutoPipelineForInpainting; the paper uses SDXL
inpainting) paints the padding, prompted with the caption; without it the padding keeps the image's border
colour (the plain background of a subject photo). Either way the image's own pixels come through unchanged:
the pipeline's output is used only where the mask is, since its VAE round trip would blur the subject.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .loading import border_colour, call_pipeline, letterbox, load_pipeline, model_dir, resize, to_uint8


def pad_to_frame(image: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(h, w, 3) uint8 -> canvas (height, width, 3) uint8 padded with the border colour, mask (height, width) bool.

    The mask is True on the padding, the region an inpainting pipeline should fill.
    """
    return letterbox(image, height, width, border_colour(image))


class Outpainter:
    """Pads to the video frame; fills the padding with the inpainting pipeline at `outpaint_path` when set."""

    field = "outpaint_path"

    def __init__(self, scale_cfg, cache_dir: str | Path | None = None):
        self.cfg = scale_cfg
        self.path = model_dir(scale_cfg, self.field, cache_dir) if scale_cfg.outpaint_path else None
        self._pipe = None

    @property
    def pipe(self):
        if self._pipe is None and self.path is not None:
            self._pipe = load_pipeline(self.path, self.field, self.cfg, auto="AutoPipelineForInpainting")
        return self._pipe

    def __call__(self, image: np.ndarray, height: int, width: int, prompt: str = "", generator=None) -> np.ndarray:
        """image (h, w, 3) uint8 -> first frame (height, width, 3) uint8."""
        canvas, pad = pad_to_frame(image, height, width)
        if self.path is None or not pad.any():
            return canvas
        from PIL import Image

        out = call_pipeline(self.pipe, prompt=prompt, image=Image.fromarray(canvas),
                            mask_image=Image.fromarray(pad.astype(np.uint8) * 255), height=height, width=width,
                            strength=1.0, num_inference_steps=self.cfg.num_inference_steps,
                            guidance_scale=self.cfg.guidance_scale, generator=generator, output_type="np")
        painted = resize(to_uint8(out.images)[0], height, width)
        return np.where(pad[..., None], painted, canvas)
