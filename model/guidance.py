"""Dual image/text classifier-free guidance (METHOD_NOTES §1.4) and the sampling loop.

Three branches run in one batched forward, in this order:
  0: (no image, no text)   1: (image, no text)   2: (image, text)
eq. 1 ("null_text"): "no text" is the learned null text; eq. 2 ("negative_prompt"): it is the negative
prompt's embedding. v = v0 + s_I (v1 - v0) + s_T (v2 - v1).
Early DINO drop: for the first K = round(fraction * steps) steps every branch that carries the image
keeps CLIP but swaps DINO for its null (§1.4; [RECON] K as a fraction, applied to branches 1 and 2).
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

NUM_BRANCHES = 3


def combine_dual_guidance(v: torch.Tensor, image_scale: float, text_scale: float) -> torch.Tensor:
    """v: (3N, ...) stacked as [uncond; image-only; image+text] -> guided (N, ...)."""
    v0, v1, v2 = v.chunk(NUM_BRANCHES)
    return v0 + image_scale * (v1 - v0) + text_scale * (v2 - v1)


def branch_keeps(n: int, negative_prompt: bool, drop_dino: bool) -> dict[str, torch.Tensor]:
    """Keep flags (3N,) per condition for the three branches; see the module docstring."""
    one, zero = torch.ones(n), torch.zeros(n)
    image = zero if drop_dino else one
    text_u = one if negative_prompt else zero  # eq. 2 keeps the negative prompt's embedding
    return {"keep_dino": torch.cat([zero, image, image]), "keep_clip": torch.cat([zero, one, one]),
            "keep_text": torch.cat([text_u, text_u, one])}


def early_drop_steps(num_steps: int, fraction: float) -> int:
    return int(round(num_steps * fraction))


class DualGuidanceSampler:
    """Runs a diffusers scheduler over the SUGAR denoiser with dual guidance."""

    def __init__(self, denoiser, scheduler):
        self.denoiser, self.scheduler = denoiser, scheduler

    @torch.no_grad()
    def __call__(self, latents: torch.Tensor, dino: torch.Tensor, clip: torch.Tensor, text: torch.Tensor,
                 uncond_text: torch.Tensor, num_inference_steps: int, image_scale: float, text_scale: float,
                 negative_prompt: bool = False, early_dino_drop: float = 0.0, use_image: bool = True,
                 progress: bool = True) -> torch.Tensor:
        """latents: initial noise (N, F, C, h, w); text/uncond_text: (N, Lt, Dt). Returns denoised latents.

        use_image=False swaps the image for its null in every branch (the "image dropped" ablation).
        """
        n = latents.shape[0]
        self.scheduler.set_timesteps(num_inference_steps, device=latents.device)
        latents = latents * self.scheduler.init_noise_sigma
        conds = {"dino": dino.repeat(3, 1, 1), "clip": clip.repeat(3, 1, 1),
                 "text": torch.cat([uncond_text, uncond_text, text])}
        k = early_drop_steps(num_inference_steps, early_dino_drop)
        keeps = [{k: v.to(latents.device) for k, v in branch_keeps(n, negative_prompt, drop_dino=d).items()}
                 for d in (True, False)]
        if not use_image:
            for kp in keeps:
                kp["keep_dino"] = kp["keep_clip"] = torch.zeros(3 * n, device=latents.device)
        for i, t in enumerate(tqdm(self.scheduler.timesteps, desc="sampling", disable=not progress, leave=False)):
            x = self.scheduler.scale_model_input(latents.repeat(3, 1, 1, 1, 1), t)
            v = self.denoiser(x, t.expand(3 * n), **conds, **keeps[0 if i < k else 1])
            guided = combine_dual_guidance(v, image_scale, text_scale)
            latents = self.scheduler.step(guided, t, latents).prev_sample
        return latents
