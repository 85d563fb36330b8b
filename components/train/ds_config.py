"""The DeepSpeed config, generated from the one typed config (never a second hand-kept JSON)."""

from __future__ import annotations

from components.config import TrainConfig


def deepspeed_config(cfg: TrainConfig, world_size: int) -> dict:
    return {
        "train_micro_batch_size_per_gpu": cfg.batch_size,
        "gradient_accumulation_steps": 1,
        "train_batch_size": cfg.batch_size * world_size,
        "gradient_clipping": 1.0,
        "zero_optimization": {"stage": cfg.zero_stage, "overlap_comm": False, "contiguous_gradients": True,
                              "reduce_bucket_size": cfg.reduce_bucket_size},
        "bf16": {"enabled": cfg.bf16},
        "steps_per_print": 10**9,  # we log ourselves
        "wall_clock_breakdown": False,
    }
