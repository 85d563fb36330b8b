"""Dual image/text classifier-free guidance (METHOD_NOTES §1.4) and the sampling loop.

Three branches, in this order:
  0: (no image, no text)   1: (image, no text)   2: (image, text)
eq. 1 ("null_text"): "no text" is the learned null text; eq. 2 ("negative_prompt"): it is the negative
prompt's embedding. v = v0 + s_I (v1 - v0) + s_T (v2 - v1) = (1 - s_I) v0 + (s_I - s_T) v1 + s_T v2.
The branch plan (`guidance_branches`) runs only the branches whose coefficient is not zero: at s_I = s_T = 1
branch 2 alone, at s_I = s_T branches 0 and 2. Both samplers, this one and the ONNX one
(components/export/sampler.py), follow it and these keep flags; so that the ONNX one can without torch, torch
is imported only where a tensor is made.
Early DINO drop: for the first K = round(fraction * steps) steps every branch that carries the image
keeps CLIP but swaps DINO for its null (§1.4; [RECON] K as a fraction, applied to branches 1 and 2).
"""

from __future__ import annotations

NUM_BRANCHES = 3
ALL_BRANCHES = (0, 1, 2)
TEXT_BRANCH = 2  # the only branch that sees the prompt; the others see the unconditional text


def guidance_branches(image_scale: float, text_scale: float) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The branch plan: (branch indices, coefficients) of v = Σ c_b v_b, without the branches whose
    coefficient is zero. The coefficients sum to 1, so at least one branch always runs."""
    coeffs = (1.0 - float(image_scale), float(image_scale) - float(text_scale), float(text_scale))
    plan = [(b, c) for b, c in zip(ALL_BRANCHES, coeffs) if c != 0.0]
    return tuple(b for b, _ in plan), tuple(c for _, c in plan)


def combine_dual_guidance(v, image_scale: float, text_scale: float):
    """v: (3N, ...) stacked as [uncond; image-only; image+text] -> guided (N, ...), the reference formula."""
    n = v.shape[0] // NUM_BRANCHES
    v0, v1, v2 = v[:n], v[n:2 * n], v[2 * n:]
    return v0 + image_scale * (v1 - v0) + text_scale * (v2 - v1)


def combine_planned(v, coeffs: tuple[float, ...]):
    """v: (len(coeffs)·N, ...) stacked branch by branch in the plan's order -> Σ c_b v_b (N, ...). Torch tensors
    or NumPy arrays; a lone branch of coefficient 1 is returned as it is (bit for bit)."""
    if tuple(coeffs) == (1.0,):
        return v
    n = v.shape[0] // len(coeffs)
    out = coeffs[0] * v[:n]
    for k, c in enumerate(coeffs[1:], 1):
        out = out + c * v[k * n:(k + 1) * n]
    return out


def branch_keep_flags(negative_prompt: bool, drop_dino: bool,
                      branches: tuple[int, ...] = ALL_BRANCHES) -> dict[str, list[float]]:
    """Keep flag of each condition, one per branch (in `branches` order); see the module docstring."""
    image = 0.0 if drop_dino else 1.0
    text_u = 1.0 if negative_prompt else 0.0  # eq. 2 keeps the negative prompt's embedding
    table = {"keep_dino": (0.0, image, image), "keep_clip": (0.0, 1.0, 1.0), "keep_text": (text_u, text_u, 1.0)}
    return {k: [flags[b] for b in branches] for k, flags in table.items()}


def branch_keeps(n: int, negative_prompt: bool, drop_dino: bool, branches: tuple[int, ...] = ALL_BRANCHES):
    """Keep flags (len(branches)·N,) per condition as torch tensors, branch-major like the stacked batch."""
    import torch

    return {k: torch.tensor(f).repeat_interleave(n)
            for k, f in branch_keep_flags(negative_prompt, drop_dino, branches).items()}


def early_drop_steps(num_steps: int, fraction: float) -> int:
    return int(round(num_steps * fraction))


class DualGuidanceSampler:
    """Runs a diffusers scheduler over the SUGAR denoiser with dual guidance."""

    def __init__(self, denoiser, scheduler):
        self.denoiser, self.scheduler = denoiser, scheduler

    def __call__(self, latents, dino, clip, text, uncond_text, num_inference_steps: int, image_scale: float,
                 text_scale: float, negative_prompt: bool = False, early_dino_drop: float = 0.0,
                 use_image: bool = True, progress: bool = True, branch_plan: bool = True):
        """latents: initial noise (N, F, C, h, w); text/uncond_text: (N, Lt, Dt). Returns denoised latents.

        use_image=False swaps the image for its null in every branch (the "image dropped" ablation).
        branch_plan=False runs all three branches at every step whatever the scales (the sampler before the
        plan: the same result within float rounding; kept to reproduce it and to measure what the plan saves).
        """
        import torch
        from tqdm.auto import tqdm

        n = latents.shape[0]
        branches, coeffs = guidance_branches(image_scale, text_scale) if branch_plan else (ALL_BRANCHES, None)
        b = len(branches)
        with torch.no_grad():
            self.scheduler.set_timesteps(num_inference_steps, device=latents.device)
            latents = latents * self.scheduler.init_noise_sigma
            conds = {"dino": dino.repeat(b, 1, 1), "clip": clip.repeat(b, 1, 1),
                     "text": torch.cat([text if k == TEXT_BRANCH else uncond_text for k in branches])}
            k = early_drop_steps(num_inference_steps, early_dino_drop)
            keeps = [{k: v.to(latents.device) for k, v in branch_keeps(n, negative_prompt, d, branches).items()}
                     for d in (True, False)]
            if not use_image:
                for kp in keeps:
                    kp["keep_dino"] = kp["keep_clip"] = torch.zeros(b * n, device=latents.device)
            for i, t in enumerate(tqdm(self.scheduler.timesteps, desc="sampling", disable=not progress, leave=False)):
                x = self.scheduler.scale_model_input(latents.repeat(b, 1, 1, 1, 1), t)
                v = self.denoiser(x, t.expand(b * n), **conds, **keeps[0 if i < k else 1])
                guided = combine_dual_guidance(v, image_scale, text_scale) if coeffs is None else \
                    combine_planned(v, coeffs)
                latents = self.scheduler.step(guided, t, latents).prev_sample
        return latents
