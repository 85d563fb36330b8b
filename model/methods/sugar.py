"""SUGAR's training objective (METHOD_NOTES §1): the diffusion loss of the denoiser conditioned on DINO and
CLIP image tokens and text, each condition dropped independently (for the dual classifier-free guidance),
with the scheduler's prediction type as target (v-prediction for CogVideoX)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..conditioning import condition_dropout
from ..noise import diffusion_noise
from .base import Batch, TrainingMethod


class SugarMethod(TrainingMethod):
    name = "sugar"

    def build(self, seed: int):
        from ..pipeline import SugarPipeline

        return SugarPipeline.from_config(self.config, seed=seed)

    def trainable(self, pipe):
        return pipe.denoiser

    def blocks(self, pipe):
        return pipe.denoiser.transformer_blocks

    def encode(self, pipe, videos, images, captions):
        latents = pipe.codec.encode(videos)  # first: a VAE's encode samples from the global stream
        dino, clip = pipe.encode_image(images)
        return {"latents": latents, "dino": dino, "clip": clip, "text": pipe.encode_prompt(captions)}

    def prepare_batch(self, pipe, features, gen, rng):
        sched, c = pipe.scheduler, self.config
        x0 = features["latents"]
        n = x0.shape[0]
        noise = torch.from_numpy(diffusion_noise(rng, tuple(x0.shape), **c.noise_args))
        t = torch.randint(0, sched.config.num_train_timesteps, (n,), generator=gen)
        target = {"v_prediction": lambda: sched.get_velocity(x0, noise, t), "epsilon": lambda: noise,
                  "sample": lambda: x0}[sched.config.prediction_type]()
        keep_dino, keep_clip, keep_text = condition_dropout(n, c.conditioning.drop_dino, c.conditioning.drop_clip,
                                                            c.conditioning.drop_text, generator=gen)
        inputs = {"latents": sched.add_noise(x0, noise, t), "timestep": t, "dino": features["dino"],
                  "clip": features["clip"], "text": features["text"], "keep_dino": keep_dino,
                  "keep_clip": keep_clip, "keep_text": keep_text}
        return Batch(inputs, target)

    def compute_loss(self, model, batch):
        i = batch.inputs
        prediction = model(i["latents"], i["timestep"], i["dino"], i["clip"], i["text"], i["keep_dino"],
                           i["keep_clip"], i["keep_text"])
        return F.mse_loss(prediction.float(), batch.target.float())
