"""Guidance Information Recognition Loss (GIRL), METHOD_NOTES §2.4.

In training the reference latent gets its own small "remind noise" at t' = α·t (α = 0.01), and the UNet's
output at the reference position is asked to predict that noise: L = L_video + β·L_reg (β = 0.1), both MSE
over latents, under the same text and the same t fed to all F+1 frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reference_timesteps(t: torch.Tensor, alpha: float = 0.01) -> torch.Tensor:
    """t' = floor(α·t) as integer (long) timesteps, same shape and device as t.

    [RECON] The paper writes t' = α·t without a rounding rule and the training code is not released; floor
    matches the repository's inference option (`int(0.01·t)`, §2.4) and keeps t' ≤ α·t (1000 -> 10, 999 -> 9,
    50 -> 0). Computed in float64, where floor(0.01·t) equals t // 100 for every t < 2000.
    """
    t = torch.as_tensor(t)
    return torch.floor(t.to(torch.float64) * alpha).to(torch.long)


def noisy_reference(scheduler, reference: torch.Tensor, reference_noise: torch.Tensor, t: torch.Tensor,
                    alpha: float = 0.01) -> torch.Tensor:
    """r_t' = scheduler.add_noise(r, ε_r, t'), t' = `reference_timesteps(t, alpha)`: ordinary DDPM noising of
    the reference (B, C, 1, h, w) with its own noise ε_r (§2.4). At inference the reference is not noised."""
    return scheduler.add_noise(reference, reference_noise, reference_timesteps(t, alpha).to(reference.device))


def girl_terms(prediction: torch.Tensor, noise: torch.Tensor,
               reference_noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_video, L_reg): prediction (B, C, F+1, h, w) from `predict_with_reference`; noise (B, C, F, h, w) the
    video's noise; reference_noise (B, C, 1, h, w) the reference's own ε_r (not the video noise, §2.9).
    Both are means of squared errors, computed in float32."""
    frames = noise.shape[2]
    if prediction.shape[2] != frames + 1 or reference_noise.shape[2] != 1:
        raise ValueError(f"prediction needs F+1={frames + 1} frames and reference_noise 1, got "
                         f"{prediction.shape[2]} and {reference_noise.shape[2]}")
    video = F.mse_loss(prediction[:, :, :frames].float(), noise.float())
    reg = F.mse_loss(prediction[:, :, frames:].float(), reference_noise.float())
    return video, reg


def girl_loss(prediction: torch.Tensor, noise: torch.Tensor, reference_noise: torch.Tensor,
              beta: float = 0.1) -> torch.Tensor:
    """L_video + β·L_reg (§2.4, β = 0.1)."""
    video, reg = girl_terms(prediction, noise, reference_noise)
    return video + beta * reg
