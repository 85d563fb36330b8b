"""The ONNX sampler: onnxruntime sessions and the DDIM loop in NumPy. Imports no torch.

Execution providers are chosen at load: TensorRT -> CUDA -> CPU, whichever this onnxruntime offers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from components.preprocess import fit
from model.noise import diffusion_noise

DEFAULT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def ddim_timesteps(num_train: int, steps: int, spacing: str, offset: int = 0) -> np.ndarray:
    """The timesteps diffusers' DDIMScheduler.set_timesteps picks (same spacings)."""
    if spacing == "trailing":
        ts = np.round(np.arange(num_train, 0, -num_train / steps)).astype(np.int64) - 1
    elif spacing == "leading":
        ts = (np.arange(0, steps) * (num_train // steps)).round()[::-1].astype(np.int64) + offset
    elif spacing == "linspace":
        ts = np.linspace(0, num_train - 1, steps).round()[::-1].astype(np.int64)
    else:
        raise ValueError(f"unsupported timestep_spacing {spacing!r}")
    return ts


def ddim_step(v: np.ndarray, t: int, x: np.ndarray, alphas: np.ndarray, prev_t: int, final_alpha: float,
              prediction_type: str) -> np.ndarray:
    """One deterministic DDIM step (eta = 0), as diffusers' DDIMScheduler.step."""
    a_t = alphas[t]
    a_prev = alphas[prev_t] if prev_t >= 0 else final_alpha
    if prediction_type == "v_prediction":
        x0 = np.sqrt(a_t) * x - np.sqrt(1 - a_t) * v
        eps = np.sqrt(a_t) * v + np.sqrt(1 - a_t) * x
    elif prediction_type == "sample":
        x0 = v
        eps = (x - np.sqrt(a_t) * x0) / np.sqrt(1 - a_t)
    else:
        eps = v
        x0 = (x - np.sqrt(1 - a_t) * eps) / np.sqrt(a_t)
    return (np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev) * eps).astype(np.float32)


def to_uint8(video: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) float in [-1, 1] -> uint8: the served rounding (as the PyTorch pipeline's)."""
    return np.rint((video + 1) * 127.5).clip(0, 255).astype(np.uint8)


class OnnxSugarSampler:
    """Identity image (uint8 (H, W, 3)) + prompt -> video (T, H, W, 3) uint8, with onnxruntime only."""

    def __init__(self, path: str | Path, providers: tuple[str, ...] = DEFAULT_PROVIDERS):
        import onnxruntime as ort
        from transformers import AutoTokenizer

        self.path = Path(path)
        available = set(ort.get_available_providers())
        self.providers = [p for p in providers if p in available] or ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.sessions = {name: ort.InferenceSession(str(self.path / f"{name}.onnx"), opts, providers=self.providers)
                         for name in ("denoiser", "image_encoder", "text_encoder", "decoder")}
        self.config = json.loads((self.path / "sampler.json").read_text())
        self.scheduler = json.loads((self.path / "scheduler_config.json").read_text())
        self.alphas = np.load(self.path / "alphas_cumprod.npy")
        self.tokenizer = AutoTokenizer.from_pretrained(self.path / "tokenizer")

    def encode_prompt(self, prompts: list[str]) -> np.ndarray:
        ids = self.tokenizer(prompts, padding="max_length", max_length=self.config["max_length"], truncation=True,
                             return_tensors="np").input_ids.astype(np.int64)
        return self.sessions["text_encoder"].run(None, {"input_ids": ids})[0]

    def initial_noise(self, n: int, seed: int) -> np.ndarray:
        """The PyTorch pipeline's noise for `seed` (model.noise; exports without a "noise" entry are white)."""
        return diffusion_noise(np.random.default_rng(seed), (n, *self.config["latent_shape"]),
                               **self.config.get("noise", {}))

    def __call__(self, image: np.ndarray, prompt: str, seed: int = 0, num_inference_steps: int | None = None,
                 image_scale: float | None = None, text_scale: float | None = None,
                 early_dino_drop: float | None = None, noise: np.ndarray | None = None,
                 negative_prompt: str | None = None, output_type: str = "uint8") -> np.ndarray:
        """output_type="uint8" -> (T, H, W, 3) uint8; "float" -> (T, H, W, 3) float32 in [-1, 1]."""
        c, s = self.config, self.scheduler
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"identity image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        # The image graph is traced at the model's size: the identity contract fits any other size to it.
        image = fit(image, c["height"], c["width"])
        pixels = (image.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        dino, clip = self.sessions["image_encoder"].run(None, {"images": pixels})
        text = self.encode_prompt([prompt])
        negative = c["guidance"] == "negative_prompt"
        uncond = (self.encode_prompt([c["negative_prompt"] if negative_prompt is None else negative_prompt])
                  if negative else np.zeros_like(text))
        steps = num_inference_steps or c["num_inference_steps"]
        scales = np.array([c["image_scale"] if image_scale is None else image_scale,
                           c["text_scale"] if text_scale is None else text_scale], np.float32)
        drop = c["early_dino_drop"] if early_dino_drop is None else early_dino_drop
        k = int(round(steps * drop))
        ts = ddim_timesteps(s["num_train_timesteps"], steps, s["timestep_spacing"], s.get("steps_offset", 0))
        final_alpha = 1.0 if s.get("set_alpha_to_one", True) else float(self.alphas[0])
        x = self.initial_noise(1, seed) if noise is None else noise.astype(np.float32)
        stride = s["num_train_timesteps"] // steps
        for i, t in enumerate(ts):
            v = self.sessions["denoiser"].run(None, {
                "latents": x, "timestep": np.array([t], np.int64), "dino": dino, "clip": clip, "text": text,
                "uncond_text": uncond, "scales": scales, "keep_dino_image": np.array([0.0 if i < k else 1.0],
                                                                                      np.float32),
                "negative": np.array([1.0 if negative else 0.0], np.float32)})[0]
            x = ddim_step(v, int(t), x, self.alphas, int(t) - stride, final_alpha, s["prediction_type"])
        video = self.sessions["decoder"].run(None, {"latents": x})[0][0]  # (T, 3, H, W) in [-1, 1]
        if output_type == "float":
            return video.transpose(0, 2, 3, 1)
        return to_uint8(video.transpose(0, 2, 3, 1))
