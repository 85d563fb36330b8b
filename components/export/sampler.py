"""The ONNX sampler: onnxruntime sessions and the DDIM loop in NumPy. Imports no torch.

Execution providers are chosen at load: TensorRT -> CUDA -> CPU, whichever this onnxruntime offers.
The denoiser graph is the raw denoiser: the sampler stacks the guidance branches the plan needs
(model.guidance.guidance_branches, the rule the PyTorch sampler follows) into one batch with the rows of a
`generate` call, and combines them here. Exports from before the plan hold the guided graph (three branches
and the guidance in-graph, LEGACY_INPUTS); they load and sample as they did.

Accelerations (ACCELERATIONS), each used only when the export step's gate accepted it (sampler.json
"runtime"; components/export/accelerate.py) or when the caller names it:
  branch_plan  run only the branches whose guidance coefficient is not zero (exact up to float rounding)
  io_binding   fixed inputs bound once, output into a preallocated buffer
  int8         the denoiser with dynamically quantised int8 weights (denoiser_int8.onnx); rows then run one by
               one, as its activation scale is per tensor (a row must not depend on the rows batched with it)
  fewer_steps  round(steps * fewer_steps_fraction) DDIM steps instead of `steps`
  step_cache   the denoiser runs every `cache_interval`-th step; the steps between reuse its guided output
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from components.export.runtime import DenoiserRun, session_options
from components.preprocess import fit
from model.guidance import (ALL_BRANCHES, TEXT_BRANCH, branch_keep_flags, combine_dual_guidance, combine_planned,
                            early_drop_steps, guidance_branches)
from model.noise import diffusion_noise

DEFAULT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
ACCELERATIONS = ("branch_plan", "io_binding", "int8", "fewer_steps", "step_cache")
DEFAULT_ACCELERATIONS = ("branch_plan",)  # an export without a gate record: the plan (exact) only
INT8_DENOISER = "denoiser_int8.onnx"
LEGACY_INPUTS = {"uncond_text", "scales", "keep_dino_image", "negative"}
RUNTIME_DEFAULTS = {"fewer_steps_fraction": 0.5, "cache_interval": 2, "intra_op_threads": 0,
                    "allow_spinning": False, "graph_optimization": "all"}


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
    """Identity image (uint8 (H, W, 3)) + prompt -> video (T, H, W, 3) uint8, with onnxruntime only.

    accelerations: None = those sampler.json's "runtime" records (the export gate's accepted ones; an export
    without it: DEFAULT_ACCELERATIONS); else exactly these (() = the reference: three branches, fp32, every
    step). runtime: overrides of sampler.json's runtime settings (RUNTIME_DEFAULTS' keys).
    """

    def __init__(self, path: str | Path, providers: tuple[str, ...] = DEFAULT_PROVIDERS,
                 accelerations: tuple[str, ...] | list[str] | None = None, **runtime):
        import onnxruntime as ort
        from transformers import AutoTokenizer

        self.path = Path(path)
        self.config = json.loads((self.path / "sampler.json").read_text())
        recorded = self.config.get("runtime", {})
        unknown = set(runtime) - set(RUNTIME_DEFAULTS)
        if unknown:
            raise TypeError(f"unknown runtime settings {sorted(unknown)}; known: {sorted(RUNTIME_DEFAULTS)}")
        self.runtime = {k: runtime.get(k, recorded.get(k, v)) for k, v in RUNTIME_DEFAULTS.items()}
        if accelerations is None:
            accelerations = recorded.get("accelerations", DEFAULT_ACCELERATIONS)
        bad = set(accelerations) - set(ACCELERATIONS)
        if bad:
            raise ValueError(f"unknown accelerations {sorted(bad)}; known: {ACCELERATIONS}")
        self.accelerations = tuple(a for a in ACCELERATIONS if a in accelerations)
        available = set(ort.get_available_providers())
        self.providers = [p for p in providers if p in available] or ["CPUExecutionProvider"]
        opts = session_options(self.runtime["intra_op_threads"], self.runtime["allow_spinning"],
                               self.runtime["graph_optimization"])
        if "int8" in self.accelerations and not (self.path / INT8_DENOISER).is_file():
            raise FileNotFoundError(f"{self.path / INT8_DENOISER} is missing: int8 needs the quantised denoiser "
                                    "(components/export/accelerate.quantize_denoiser; the export ships it only "
                                    "when its gate accepted int8)")
        files = {"denoiser": INT8_DENOISER if "int8" in self.accelerations else "denoiser.onnx",
                 "image_encoder": "image_encoder.onnx", "text_encoder": "text_encoder.onnx", "decoder": "decoder.onnx"}
        self.sessions = {name: ort.InferenceSession(str(self.path / f), opts, providers=self.providers)
                         for name, f in files.items()}
        self.legacy = bool(LEGACY_INPUTS & {i.name for i in self.sessions["denoiser"].get_inputs()})
        self.scheduler = json.loads((self.path / "scheduler_config.json").read_text())
        self.alphas = np.load(self.path / "alphas_cumprod.npy")
        self.tokenizer = AutoTokenizer.from_pretrained(self.path / "tokenizer")
        # A server calls one sampler from several threads: sessions are thread-safe, a fast tokenizer whose
        # padding and truncation each call sets is not ("Already borrowed").
        self._tokenizer_lock = threading.Lock()

    def encode_prompt(self, prompts: list[str]) -> np.ndarray:
        with self._tokenizer_lock:
            ids = self.tokenizer(prompts, padding="max_length", max_length=self.config["max_length"],
                                 truncation=True, return_tensors="np").input_ids.astype(np.int64)
        # One prompt a run: graphs of older exports were traced at batch 1.
        return np.concatenate([self.sessions["text_encoder"].run(None, {"input_ids": ids[i:i + 1]})[0]
                               for i in range(len(prompts))])

    def encode_image(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (H, W, 3) of any size -> dino (1, Ld, Dd), clip (1, 1, Dc)."""
        c = self.config
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"identity image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        # The image graph is traced at the model's size: the identity contract fits any other size to it.
        pixels = (fit(image, c["height"], c["width"]).astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        dino, clip = self.sessions["image_encoder"].run(None, {"images": pixels})
        return dino, clip

    def initial_noise(self, n: int, seed: int) -> np.ndarray:
        """The PyTorch pipeline's noise for `seed` (model.noise; exports without a "noise" entry are white)."""
        return diffusion_noise(np.random.default_rng(seed), (n, *self.config["latent_shape"]),
                               **self.config.get("noise", {}))

    def __call__(self, image: np.ndarray, prompt: str, seed: int = 0, num_inference_steps: int | None = None,
                 image_scale: float | None = None, text_scale: float | None = None,
                 early_dino_drop: float | None = None, noise: np.ndarray | None = None,
                 negative_prompt: str | None = None, output_type: str = "uint8") -> np.ndarray:
        """output_type="uint8" -> (T, H, W, 3) uint8; "float" -> (T, H, W, 3) float32 in [-1, 1]."""
        return self.generate([image], [prompt], [seed], num_inference_steps, image_scale, text_scale,
                             output_type=output_type, early_dino_drop=early_dino_drop, negative_prompt=negative_prompt,
                             noise=None if noise is None else np.asarray(noise, np.float32).reshape(
                                 1, *self.config["latent_shape"]))[0]

    def generate(self, images: list[np.ndarray], prompts: list[str], seeds: list[int],
                 num_inference_steps: int | None = None, image_scale: float | None = None,
                 text_scale: float | None = None, callback: Callable[[int, int], None] | None = None,
                 output_type: str = "uint8", *, early_dino_drop: float | None = None,
                 negative_prompt: str | None = None, noise: np.ndarray | None = None) -> list[np.ndarray]:
        """One video per (identity image, prompt, seed) row; the rows share one denoiser call per step.

        Each row's noise is `initial_noise(1, seed)`, so a row gives the video it gives alone (within float
        rounding). callback(step_index, total_steps) runs after each denoising step; what it raises propagates
        and stops the work (a server's cancel or time limit). output_type: "uint8" or "float" (in [-1, 1]).
        noise: (N, F, C, h, w) to start from instead of the seeds' noise.
        """
        if output_type not in ("uint8", "float"):
            raise ValueError(f"output_type must be 'uint8' or 'float', got {output_type!r}")
        n = len(images)
        if not n or len(prompts) != n or len(seeds) != n:
            raise ValueError(f"generate needs as many prompts and seeds as images (got {n} images, {len(prompts)} "
                             f"prompts, {len(seeds)} seeds), at least one")
        c, s = self.config, self.scheduler
        encoded = [self.encode_image(im) for im in images]
        dino, clip = np.concatenate([d for d, _ in encoded]), np.concatenate([k for _, k in encoded])
        text = self.encode_prompt(list(prompts))
        negative = c["guidance"] == "negative_prompt"
        uncond = (self.encode_prompt([c["negative_prompt"] if negative_prompt is None else negative_prompt] * n)
                  if negative else np.zeros_like(text))
        steps = num_inference_steps or c["num_inference_steps"]
        if "fewer_steps" in self.accelerations:
            steps = max(1, int(round(steps * self.runtime["fewer_steps_fraction"])))
        si = float(c["image_scale"] if image_scale is None else image_scale)
        st = float(c["text_scale"] if text_scale is None else text_scale)
        dropped_until = early_drop_steps(steps, c["early_dino_drop"] if early_dino_drop is None else early_dino_drop)
        x = (np.concatenate([self.initial_noise(1, int(seed)) for seed in seeds]) if noise is None
             else np.asarray(noise, np.float32))
        conds = {"dino": dino, "clip": clip, "text": text, "uncond": uncond, "negative": negative}
        if self.legacy:
            denoise = self._legacy_denoiser(conds, si, st)
        elif "int8" in self.accelerations:  # per row: int8's activation scale spans the whole batch
            rows = [self._planned_denoiser({name: val[i:i + 1] if isinstance(val, np.ndarray) else val
                                            for name, val in conds.items()}, si, st) for i in range(n)]
            denoise = lambda x, t, dropped: np.concatenate(  # noqa: E731
                [r(x[i:i + 1], t, dropped) for i, r in enumerate(rows)])
        else:
            denoise = self._planned_denoiser(conds, si, st)
        ts = ddim_timesteps(s["num_train_timesteps"], steps, s["timestep_spacing"], s.get("steps_offset", 0))
        final_alpha = 1.0 if s.get("set_alpha_to_one", True) else float(self.alphas[0])
        stride = s["num_train_timesteps"] // steps
        interval = self.runtime["cache_interval"] if "step_cache" in self.accelerations else 1
        v = None
        for i, t in enumerate(ts):
            if v is None or i % interval == 0:
                v = denoise(x, int(t), i < dropped_until)
            x = ddim_step(v, int(t), x, self.alphas, int(t) - stride, final_alpha, s["prediction_type"])
            if callback is not None:
                callback(i, len(ts))
        # (T, 3, H, W) in [-1, 1] per row; one row a run, as the decoder of an older export was traced
        videos = [self.sessions["decoder"].run(None, {"latents": x[i:i + 1]})[0][0].transpose(0, 2, 3, 1)
                  for i in range(n)]
        return videos if output_type == "float" else [to_uint8(v) for v in videos]

    def _planned_denoiser(self, conds: dict, image_scale: float, text_scale: float):
        """(x (N, ...), t, dino dropped) -> guided v (N, ...) from one call of the raw denoiser on the planned
        branches stacked branch-major, as model.guidance.DualGuidanceSampler stacks them."""
        n = conds["dino"].shape[0]
        if "branch_plan" in self.accelerations:
            branches, coeffs = guidance_branches(image_scale, text_scale)
        else:
            branches, coeffs = ALL_BRANCHES, None
        b = len(branches)
        fixed = {"dino": np.concatenate([conds["dino"]] * b), "clip": np.concatenate([conds["clip"]] * b),
                 "text": np.concatenate([conds["text"] if k == TEXT_BRANCH else conds["uncond"] for k in branches])}
        keeps = {d: {name: np.repeat(np.asarray(f, np.float32), n)
                     for name, f in branch_keep_flags(conds["negative"], d, branches).items()} for d in (True, False)}
        io = "io_binding" in self.accelerations
        runs = {d: DenoiserRun(self.sessions["denoiser"], {**fixed, **keeps[d]}, io) for d in (True, False)}

        def denoise(x: np.ndarray, t: int, dropped: bool) -> np.ndarray:
            v = runs[dropped](latents=np.concatenate([x] * b) if b > 1 else x,
                              timestep=np.full(b * n, t, np.int64))
            if coeffs is None:  # the reference: the formula as written, as the PyTorch sampler without the plan
                return combine_dual_guidance(v, image_scale, text_scale)
            return combine_planned(v, coeffs)

        return denoise

    def _legacy_denoiser(self, conds: dict, image_scale: float, text_scale: float):
        """The pre-plan guided graph (three branches and the guidance in-graph), one row a call, as it was
        traced and always ran."""
        scales = np.array([image_scale, text_scale], np.float32)
        negative = np.array([1.0 if conds["negative"] else 0.0], np.float32)
        session = self.sessions["denoiser"]

        def denoise(x: np.ndarray, t: int, dropped: bool) -> np.ndarray:
            return np.concatenate([session.run(None, {
                "latents": x[i:i + 1], "timestep": np.array([t], np.int64), "dino": conds["dino"][i:i + 1],
                "clip": conds["clip"][i:i + 1], "text": conds["text"][i:i + 1],
                "uncond_text": conds["uncond"][i:i + 1], "scales": scales,
                "keep_dino_image": np.array([0.0 if dropped else 1.0], np.float32), "negative": negative})[0]
                for i in range(x.shape[0])])

        return denoise

