"""VideoMaker (Wu et al.; METHOD_NOTES §2) on AnimateDiff: what it adds to a stock `UNetMotionModel`.

- The reference latent is appended as the last frame, sharing the video's timestep and text (§2.1, §2.3):
  `predict_with_reference`.
- Spatial self-attention becomes Personalized Injection Self-Attention: each frame attends to itself and the
  reference; the reference's output is the mean over frames (§2.2): `PISAttnProcessor2_0`, `install_pisa`,
  `set_pisa_frames`.
- Training: spatial self-attention plus the motion modules, no new parameters (§2.5): `videomaker_trainable`;
  the GIRL loss with the reference's own small-t noise (§2.4): `reference_timesteps`, `noisy_reference`,
  `girl_terms`, `girl_loss`.

Options where the notes leave a choice [RECON]: `update_motion` (True, the paper's final model; False is
Table 3's row without "Update Motion"); α (0.01) and β (0.1) of GIRL; t' = floor(α·t) (`reference_timesteps`).
"""

from .attention import PISAttnProcessor2_0, install_pisa, pisa_processors, set_pisa_frames
from .girl import girl_loss, girl_terms, noisy_reference, reference_timesteps
from .unet import predict_with_reference, tiny_unet, videomaker_trainable

__all__ = [
    "PISAttnProcessor2_0", "girl_loss", "girl_terms", "install_pisa", "noisy_reference", "pisa_processors",
    "predict_with_reference", "reference_timesteps", "set_pisa_frames", "tiny_unet", "videomaker_trainable",
]
