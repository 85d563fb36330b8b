"""What every stage shares: model locations, pipeline loading, seeded generators, image resizing."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np

from components.storage import local_path


class ModelLoadError(RuntimeError):
    """A configured model folder exists but does not load; the message names the config field."""


def default_cache_dir(cfg) -> Path:
    """Where object-store models are fetched: `synthesize.scale.cache_dir`, else <state>/models."""
    scale = cfg.synthesize.scale
    return Path(scale.cache_dir) if scale.cache_dir else cfg.state / "models"


def model_dir(scale_cfg, field: str, cache_dir: str | Path | None = None) -> Path:
    """The local folder of `synthesize.scale.<field>`; the error names the field when it is unset or missing."""
    uri = getattr(scale_cfg, field)
    if not uri:
        raise ValueError(f"synthesize.scale.{field} is not set; point it at a model folder")
    return local_path(uri, scale_cfg.cache_dir or cache_dir, what=f"synthesize.scale.{field}")


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def load_pipeline(path: Path, field: str, scale_cfg, auto: str | None = None):
    """A diffusers pipeline from a local folder, on `scale_cfg.device` in `scale_cfg.dtype`, progress bar off.

    auto: a diffusers AutoPipeline class name ("AutoPipelineForImage2Image", ...) that maps a text-to-image
    folder onto its img2img/inpaint sibling; None loads the class model_index.json names.
    """
    import diffusers

    dtype = torch_dtype(scale_cfg.dtype)
    try:
        if auto is not None:
            try:
                pipe = getattr(diffusers, auto).from_pretrained(path, dtype=dtype, local_files_only=True)
            except ValueError:
                # A pipeline class the AutoPipeline table does not know (a custom subject-driven model):
                # load what model_index.json names and trust it to take the same call.
                pipe = diffusers.DiffusionPipeline.from_pretrained(path, dtype=dtype, local_files_only=True)
        else:
            pipe = diffusers.DiffusionPipeline.from_pretrained(path, dtype=dtype, local_files_only=True)
        pipe = pipe.to(scale_cfg.device)
    except Exception as err:  # noqa: BLE001 - any load failure is reported against the config field
        raise ModelLoadError(f"synthesize.scale.{field}: cannot load a diffusers pipeline from {path} "
                             f"({type(err).__name__}: {err})") from err
    pipe.set_progress_bar_config(disable=True)  # the synthesize step shows one bar for all samples
    return pipe


def seeded_generator(seed: int, job_index: int, stage: int):
    """A CPU torch.Generator for (seed, job, stage): the same numbers whatever the device or worker.

    One generator per stage, so adding or skipping a stage does not shift another stage's noise.
    """
    import torch

    from components.sample_rules import seeded_rng

    value = int(seeded_rng([seed, 40, job_index, stage]).integers(0, 2**63 - 1))
    return torch.Generator("cpu").manual_seed(value)


def call_pipeline(pipe, **kwargs):
    """Call `pipe` with the keyword arguments its __call__ takes (e.g. an I2V pipeline without a prompt)."""
    params = inspect.signature(pipe.__call__).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return pipe(**kwargs)


# ------------------------------------------------------------------------------------------ images
def to_uint8(images) -> np.ndarray:
    """A pipeline's images as uint8 (..., H, W, 3): float arrays/tensors in [0, 1] or lists of PIL images."""
    if isinstance(images, (list, tuple)):
        return np.stack([to_uint8(x) for x in images])
    if hasattr(images, "convert"):  # PIL
        return np.asarray(images.convert("RGB"))
    if hasattr(images, "detach"):  # torch, channels first: (..., 3, H, W)
        images = images.detach().float().cpu().numpy()
        images = np.moveaxis(images, -3, -1)
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.clip(np.rint(images.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w, 3) uint8 -> (height, width, 3) uint8, bicubic; unchanged when already that size."""
    from PIL import Image

    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BICUBIC))


def fit_size(height: int, width: int, box_h: int, box_w: int, multiple: int = 1) -> tuple[int, int]:
    """(h, w) of a (height, width) image scaled to fit inside (box_h, box_w), aspect kept, sides a multiple."""
    scale = min(box_h / height, box_w / width)
    h = max(multiple, int(height * scale + 0.5) // multiple * multiple)
    w = max(multiple, int(width * scale + 0.5) // multiple * multiple)
    return min(h, box_h), min(w, box_w)


def border_colour(image: np.ndarray) -> np.ndarray:
    """(3,) uint8: the median colour of the image's outermost pixel ring (the background, for a centred subject)."""
    ring = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return np.median(ring, axis=0).astype(np.uint8)


def letterbox(image: np.ndarray, height: int, width: int, fill) -> tuple[np.ndarray, np.ndarray]:
    """Fit `image` (h, w, 3) into (height, width), centred, the rest filled with `fill`.

    Returns the canvas (height, width, 3) uint8 and the padding mask (height, width) bool, True where filled.
    """
    h, w = fit_size(image.shape[0], image.shape[1], height, width)
    top, left = (height - h) // 2, (width - w) // 2
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = np.asarray(fill, np.uint8)
    canvas[top:top + h, left:left + w] = resize(image, h, w)
    pad = np.ones((height, width), bool)
    pad[top:top + h, left:left + w] = False
    return canvas, pad
