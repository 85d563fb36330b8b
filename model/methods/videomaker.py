"""VideoMaker's training objective (METHOD_NOTES §2.4, §2.5): the UNet sees the noisy video plus the reference
latent as frame F+1, the reference noised by GIRL at t' = α·t with its own noise; the loss is the video's noise
MSE plus β times the reference's. Only the spatial self-attention and the motion modules train.

Stages: VideoMaker's own recipe is one stage (all of `videomaker_trainable`, §2.5); a stage plan that freezes
blocks (SUGAR's TSF) still applies, over the UNet's down, mid and up blocks in depth order.
"""

from __future__ import annotations

import torch

from ..noise import diffusion_noise
from ..videomaker.girl import girl_loss, noisy_reference
from ..videomaker.unet import predict_with_reference, videomaker_trainable
from .base import Batch, TrainingMethod


def _white_noise(rng, like: torch.Tensor) -> torch.Tensor:
    """Noise shaped like UNet latents (N, C, F, h, w), drawn as the pipeline draws its initial noise (model.noise,
    in SugarPipeline's (N, F, C, h, w) order) so one NumPy state gives the same numbers to both."""
    n, c, f, h, w = like.shape
    return torch.from_numpy(diffusion_noise(rng, (n, f, c, h, w))).permute(0, 2, 1, 3, 4)


class VideoMakerMethod(TrainingMethod):
    name = "videomaker"

    def build(self, seed: int):
        from ..videomaker.pipeline import VideoMakerPipeline

        return VideoMakerPipeline.from_config(self.config, seed=seed)

    def trainable(self, pipe):
        return pipe.unet

    def blocks(self, pipe):
        unet = pipe.unet
        return [*unet.down_blocks, unet.mid_block, *unet.up_blocks]

    def set_trainable(self, pipe, frozen_blocks: int):
        """attn1 + motion modules (§2.5, `videomaker_trainable`), less the first `frozen_blocks` blocks."""
        videomaker_trainable(pipe.unet, update_motion=self.config.videomaker.update_motion)
        for block in self.blocks(pipe)[:frozen_blocks]:
            block.requires_grad_(False)
        return [p for p in pipe.unet.parameters() if p.requires_grad]

    def encode(self, pipe, videos, images, captions):
        # Videos first: the VAE samples its latents from the global stream, which the worker seeds.
        latents = pipe.encode_video(videos, sample=True)
        reference = pipe.encode_reference(images, sample=True)  # sampled, as the paper does (§2.1)
        return {"latents": latents, "reference": reference, "text": pipe.encode_prompt(captions)}

    def prepare_batch(self, pipe, features, gen, rng):
        """Draws: video noise, then reference noise (NumPy); timesteps, then reference drops (torch)."""
        vm, sched = self.config.videomaker, pipe.scheduler
        x0, reference = features["latents"], features["reference"]
        n = x0.shape[0]
        noise, reference_noise = _white_noise(rng, x0), _white_noise(rng, reference)
        t = torch.randint(0, sched.config.num_train_timesteps, (n,), generator=gen)
        # [RECON] A dropped reference is the all-zeros latent CFG uses (§2.5) with zero remind noise: the UNet sees
        # exactly the null input of inference, and its reference output is asked for that zero noise.
        keep = (torch.rand(n, generator=gen) >= vm.reference_drop).to(reference.dtype).view(n, 1, 1, 1, 1)
        reference_noise = reference_noise * keep
        inputs = {"latents": sched.add_noise(x0, noise, t),
                  "reference": noisy_reference(sched, reference * keep, reference_noise, t, vm.girl_alpha),
                  "timestep": t, "text": features["text"]}
        return Batch(inputs, noise, {"reference_noise": reference_noise})

    def compute_loss(self, model, batch):
        i = batch.inputs
        prediction = predict_with_reference(model, i["latents"], i["reference"], i["timestep"], i["text"])
        return girl_loss(prediction, batch.target, batch.extra["reference_noise"], self.config.videomaker.girl_beta)
