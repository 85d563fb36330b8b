"""What a customization method gives the trainer (as finetrainers' model specifications do): the pipeline to
train, the module DeepSpeed wraps, the blocks a stage plan freezes, the frozen encodings of the data (done
once, outside the engine), a training batch and its loss.

The DeepSpeed worker (components/train/worker.py) is a generic stage loop over this interface: data order,
stages, checkpoints, resume and logging are its; everything about the model and its objective is the
method's. SUGAR is `sugar.SugarMethod`; a second method implements the same class without touching the
worker.

Random draws: `prepare_batch` receives the worker's torch generator (data order, timesteps, dropout) and
NumPy generator (diffusion noise); the worker saves and restores both with every checkpoint, so a resumed
run draws exactly what an uninterrupted one would. A method must draw from nothing else.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn


@dataclass
class Batch:
    """One training batch: the model's inputs by name, and what its output is compared with."""

    inputs: dict[str, torch.Tensor]
    target: torch.Tensor
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # what the loss needs beyond the output

    def to(self, device: torch.device | None, dtype: torch.dtype | None = None) -> "Batch":
        """Moved to `device`; floating inputs cast to `dtype` (DeepSpeed's bf16 casts the weights, the inputs
        must follow). The target and extras keep their precision: the loss is computed in fp32."""
        def move(x: torch.Tensor, cast: bool) -> torch.Tensor:
            if device is not None:
                x = x.to(device)
            return x.to(dtype) if cast and dtype is not None and x.is_floating_point() else x

        return Batch({k: move(v, True) for k, v in self.inputs.items()}, move(self.target, False),
                     {k: move(v, False) for k, v in self.extra.items()})


class TrainingMethod(ABC):
    """A customization method, as the trainer sees it. `config` is the run's ModelConfig."""

    name: ClassVar[str]

    def __init__(self, config):
        self.config = config

    @abstractmethod
    def build(self, seed: int):
        """The pipeline to train: pretrained parts from the config's paths, the rest initialised from `seed`."""

    @abstractmethod
    def trainable(self, pipe) -> nn.Module:
        """The module the DeepSpeed engine wraps (frozen encoders stay outside it)."""

    @abstractmethod
    def blocks(self, pipe) -> Sequence[nn.Module]:
        """The blocks a stage plan freezes from the first on (`frozen_blocks`, TSF), in depth order."""

    def set_trainable(self, pipe, frozen_blocks: int) -> list[nn.Parameter]:
        """Freeze the first `frozen_blocks` blocks and return the parameters the optimizer trains."""
        for i, block in enumerate(self.blocks(pipe)):
            block.requires_grad_(i >= frozen_blocks)
        return [p for p in self.trainable(pipe).parameters() if p.requires_grad]

    @abstractmethod
    def encode(self, pipe, videos: torch.Tensor, images: np.ndarray, captions: list[str]) -> dict[str, torch.Tensor]:
        """Frozen encodings of a chunk of the dataset, run once before training: videos (N, F, 3, H, W) in
        [-1, 1], identity images uint8 (N, H, W, 3), captions. Returns tensors with N first."""

    @abstractmethod
    def prepare_batch(self, pipe, features: dict[str, torch.Tensor], gen: torch.Generator,
                      rng: np.random.Generator) -> Batch:
        """A training batch from the selected rows' encodings (noise, timesteps, condition dropout)."""

    @abstractmethod
    def compute_loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """The scalar loss of `model` (the wrapped trainable module) on `batch`."""

    def save(self, pipe, output, metadata: dict) -> None:
        """Write the trained pipeline as a checkpoint (fp32, whatever the training precision)."""
        self.trainable(pipe).float()
        pipe.save_pretrained(output, metadata=metadata)
