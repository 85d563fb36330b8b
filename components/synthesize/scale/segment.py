"""Grounded SAM: the subject's mask from its noun (the paper's identity-image step for real videos).

Grounding DINO (`synthesize.scale.detector_path`, transformers `GroundingDinoForObjectDetection` + its
processor) finds the highest-scoring box for the text query "<noun>."; SAM (`synthesize.scale.sam_path`,
`SamModel` + `SamProcessor`) turns that box into a mask, keeping the candidate mask SAM rates best.
Used by the `diffusers` backend for identity images and by the real-video ingestion backend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from components.synthesize.backend import SampleError

from .loading import ModelLoadError, model_dir, torch_dtype


class GroundedSamSegmenter:
    """`segmenter(image, noun) -> mask`; both models load on the first call.

    cache_dir: where object-store models are fetched when `scale_cfg.cache_dir` is unset.
    """

    def __init__(self, scale_cfg, cache_dir: str | Path | None = None):
        self.cfg = scale_cfg
        # Resolved now, so a missing folder fails at start-up naming its config field.
        self.detector_dir = model_dir(scale_cfg, "detector_path", cache_dir)
        self.sam_dir = model_dir(scale_cfg, "sam_path", cache_dir)
        self._models = None

    def _load(self):
        from transformers import AutoProcessor, GroundingDinoForObjectDetection, SamModel

        dtype = torch_dtype(self.cfg.dtype)
        loaded = []
        for field, path, cls in (("detector_path", self.detector_dir, GroundingDinoForObjectDetection),
                                 ("sam_path", self.sam_dir, SamModel)):
            try:
                processor = AutoProcessor.from_pretrained(path, local_files_only=True)
                model = cls.from_pretrained(path, dtype=dtype, local_files_only=True).to(self.cfg.device).eval()
            except Exception as err:  # noqa: BLE001 - any load failure is reported against the config field
                raise ModelLoadError(f"synthesize.scale.{field}: cannot load {cls.__name__} and its processor from "
                                     f"{path} ({type(err).__name__}: {err})") from err
            loaded += [processor, model]
        self._models = tuple(loaded)
        return self._models

    def _inputs(self, batch, model):
        """Processor output on the model's device, floating tensors in the model's dtype."""
        return {k: (v.to(model.device, model.dtype) if v.is_floating_point() else v.to(model.device))
                if hasattr(v, "to") else v for k, v in batch.items()}

    def detect(self, image: np.ndarray, noun: str) -> tuple[list[float], float]:
        """The best box (x0, y0, x1, y1) in pixels of `image` for `noun`, and its score; SampleError if none."""
        import torch
        from PIL import Image

        det_proc, det, _, _ = self._models or self._load()
        h, w = image.shape[:2]
        query = noun.strip().lower().rstrip(".") + "."  # Grounding DINO's query format: "a cat. a dog."
        batch = det_proc(images=Image.fromarray(image), text=query, return_tensors="pt")
        with torch.inference_mode():
            out = det(**self._inputs(batch, det))
        result = det_proc.post_process_grounded_object_detection(
            out, batch["input_ids"], threshold=self.cfg.detection_threshold,
            text_threshold=self.cfg.detection_threshold, target_sizes=[(h, w)])[0]
        if len(result["scores"]) == 0:
            raise SampleError(f"Grounded SAM: no {noun!r} detected above detection_threshold="
                              f"{self.cfg.detection_threshold}")
        best = int(result["scores"].argmax())
        x0, y0, x1, y1 = (float(v) for v in result["boxes"][best])
        # Clip to the image and keep at least one pixel, so SAM always gets a valid box.
        x0, x1 = sorted((min(max(x0, 0.0), w - 1.0), min(max(x1, 0.0), w - 1.0)))
        y0, y1 = sorted((min(max(y0, 0.0), h - 1.0), min(max(y1, 0.0), h - 1.0)))
        return [x0, y0, max(x1, x0 + 1.0), max(y1, y0 + 1.0)], float(result["scores"][best])

    def __call__(self, image: np.ndarray, noun: str) -> np.ndarray:
        """image (H, W, 3) uint8, noun (e.g. "dog") -> mask (H, W) bool of the subject; SampleError if not found."""
        import torch
        from PIL import Image

        image = np.ascontiguousarray(image, dtype=np.uint8)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 image, got shape {image.shape}")
        box, _ = self.detect(image, noun)
        _, _, sam_proc, sam = self._models
        batch = sam_proc(images=Image.fromarray(image), input_boxes=[[box]], return_tensors="pt")
        with torch.inference_mode():
            out = sam(**self._inputs(batch, sam), multimask_output=True)
        masks = sam_proc.post_process_masks(out.pred_masks.float().cpu(), batch["original_sizes"],
                                            batch["reshaped_input_sizes"])[0]  # (boxes=1, candidates, H, W)
        best = int(out.iou_scores[0, 0].float().argmax())
        mask = masks[0, best].numpy().astype(bool)
        if not mask.any():
            raise SampleError(f"Grounded SAM: the {noun!r} box {[round(v, 1) for v in box]} gives an empty mask")
        return mask

