"""Trace the pipeline's networks to ONNX (needs torch; the sampler that runs them does not).

Graphs: `denoiser.onnx` (the raw denoiser, dynamic batch: the sampler stacks the guidance branches it plans and
combines them in NumPy), `image_encoder.onnx` (DINOv2 + CLIP), `text_encoder.onnx` (T5), `decoder.onnx`
(latents -> pixels). Beside them: `alphas_cumprod.npy`, `scheduler_config.json`, `sampler.json` and the tokenizer.
Exports before the branch plan hold a `denoiser.onnx` with the three branches and the guidance inside
(`GuidedDenoiser`, LEGACY_DENOISER_INPUTS); the sampler tells them apart by the graph's input names.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from model.guidance import combine_dual_guidance

DENOISER_INPUTS = ["latents", "timestep", "dino", "clip", "text", "keep_dino", "keep_clip", "keep_text"]
LEGACY_DENOISER_INPUTS = ["latents", "timestep", "dino", "clip", "text", "uncond_text", "scales", "keep_dino_image",
                          "negative"]


class GuidedDenoiser(nn.Module):
    """The denoiser graph of exports before the branch plan (still loaded: registered versions hold it):
    (latents, t, dino, clip, text, uncond_text, scales (2,), keep_dino_img (1,), negative (1,)) -> guided v.

    Branch keep flags are built in-graph from the two scalars, as `model.guidance.branch_keeps` does.
    """

    def __init__(self, denoiser):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, latents, timestep, dino, clip, text, uncond_text, scales, keep_dino_image, negative):
        n = latents.shape[0]
        one, zero = torch.ones(n), torch.zeros(n)
        kd = keep_dino_image.expand(n)
        text_u = negative.expand(n)
        v = self.denoiser(latents.repeat(3, 1, 1, 1, 1), timestep.expand(3 * n), dino.repeat(3, 1, 1),
                          clip.repeat(3, 1, 1), torch.cat([uncond_text, uncond_text, text]),
                          torch.cat([zero, kd, kd]), torch.cat([zero, one, one]), torch.cat([text_u, text_u, one]))
        return combine_dual_guidance(v, scales[0], scales[1])


class _Decoder(nn.Module):
    def __init__(self, codec):
        super().__init__()
        self.codec = codec

    def forward(self, latents):
        return self.codec.decode(latents).clamp(-1, 1)


class _TextEncoder(nn.Module):
    def __init__(self, t5):
        super().__init__()
        self.t5 = t5

    def forward(self, input_ids):
        return self.t5(input_ids=input_ids).last_hidden_state


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], opset: int,
            dynamic: dict) -> None:
    torch.onnx.export(module.eval(), args, str(path), input_names=inputs, output_names=outputs, opset_version=opset,
                      dynamic_axes=dynamic, dynamo=False)


def _example(pipe, n: int) -> dict[str, torch.Tensor]:
    cfg = pipe.config
    h, w = cfg.latent_size
    img = torch.rand(n, 3, cfg.height, cfg.width)
    dino, clip = pipe.image_encoders(img)
    ids = pipe.tokenize(["a prompt"] * n)
    return {"latents": torch.randn(n, cfg.latent_frames, cfg.latent_channels, h, w), "images": img, "dino": dino,
            "clip": clip, "ids": ids, "text": pipe.text_encoder(input_ids=ids).last_hidden_state}


@torch.no_grad()
def export_denoiser(pipe, path: str | Path, opset: int = 17, guided: bool = False) -> Path:
    """The raw denoiser (batch dynamic in every input), or with guided=True the pre-plan `GuidedDenoiser` graph."""
    batch = {0: "batch"}
    if guided:
        e = _example(pipe, 1)
        _export(GuidedDenoiser(pipe.denoiser), (e["latents"], torch.tensor([500]), e["dino"], e["clip"], e["text"],
                                                e["text"], torch.tensor([3.0, 3.0]), torch.ones(1), torch.zeros(1)),
                Path(path), LEGACY_DENOISER_INPUTS, ["velocity"], opset,
                {k: batch for k in ("latents", "dino", "clip", "text", "uncond_text", "velocity")})
        return Path(path)
    # Traced at batch 2 so that no size-1 broadcast is baked in; the sampler runs any batch.
    e = _example(pipe, 2)
    keep = torch.tensor([0.0, 1.0])
    _export(pipe.denoiser, (e["latents"], torch.tensor([500, 500]), e["dino"], e["clip"], e["text"], keep, keep, keep),
            Path(path), DENOISER_INPUTS, ["velocity"], opset, {k: batch for k in [*DENOISER_INPUTS, "velocity"]})
    return Path(path)


@torch.no_grad()
def export_pipeline(pipe, out: str | Path, opset: int = 17) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = pipe.config
    h, w = cfg.latent_size
    export_denoiser(pipe, out / "denoiser.onnx", opset)
    e = _example(pipe, 1)
    lat, img, ids = e["latents"], e["images"], e["ids"]
    batch = {0: "batch"}
    _export(pipe.image_encoders, (img,), out / "image_encoder.onnx", ["images"], ["dino", "clip"],
            opset, {"images": batch, "dino": batch, "clip": batch})
    _export(_TextEncoder(pipe.text_encoder), (ids,), out / "text_encoder.onnx", ["input_ids"], ["text"], opset,
            {"input_ids": batch, "text": batch})
    _export(_Decoder(pipe.codec), (lat,), out / "decoder.onnx", ["latents"], ["video"], opset,
            {"latents": batch, "video": batch})
    np.save(out / "alphas_cumprod.npy", pipe.scheduler.alphas_cumprod.numpy().astype(np.float64))
    (out / "scheduler_config.json").write_text(json.dumps(dict(pipe.scheduler.config), default=str, indent=2))
    pipe.tokenizer.save_pretrained(out / "tokenizer")
    sampler = {"height": cfg.height, "width": cfg.width, "num_frames": cfg.num_frames, "fps": cfg.fps,
               "latent_shape": [cfg.latent_frames, cfg.latent_channels, h, w],
               "max_length": cfg.text_encoder.max_length, "noise": cfg.noise_args, **cfg.sampler.model_dump()}
    (out / "sampler.json").write_text(json.dumps(sampler, indent=2))
    return out
