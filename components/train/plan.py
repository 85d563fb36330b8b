"""Training strategies as a list of stages (METHOD_NOTES §1.3).

p is the probability of drawing a synthetic sample. Mix(p): one stage; TS: stage 1 on real videos
(p = 0), stage 2 on the mix; TSF: as TS with the first `freeze_fraction` of the blocks frozen in stage 2.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from components.config import TrainConfig


@dataclass(frozen=True)
class Stage:
    name: str
    steps: int
    synthetic_p: float
    frozen_blocks: int  # the first `frozen_blocks` transformer blocks get no updates

    def as_dict(self) -> dict:
        return asdict(self)


def stage_plan(cfg: TrainConfig, num_blocks: int) -> list[Stage]:
    if cfg.strategy == "mix":
        return [Stage("mix", cfg.stage1_steps + cfg.stage2_steps, cfg.mix_p, 0)]
    frozen = int(round(cfg.freeze_fraction * num_blocks)) if cfg.strategy == "tsf" else 0
    return [s for s in (Stage("stage1", cfg.stage1_steps, 0.0, 0), Stage("stage2", cfg.stage2_steps, cfg.mix_p, frozen))
            if s.steps > 0]
