"""Customization methods behind one training interface (base.TrainingMethod); `model.method` picks one."""

from .base import Batch, TrainingMethod
from .sugar import SugarMethod
from .videomaker import VideoMakerMethod

METHODS: dict[str, type[TrainingMethod]] = {m.name: m for m in (SugarMethod, VideoMakerMethod)}


def get_method(config) -> TrainingMethod:
    """The method `config.method` names (config: the run's ModelConfig)."""
    try:
        return METHODS[config.method](config)
    except KeyError:
        raise ValueError(f"model.method={config.method!r} is unknown; choose one of {sorted(METHODS)}") from None


__all__ = ["METHODS", "Batch", "SugarMethod", "TrainingMethod", "VideoMakerMethod", "get_method"]
