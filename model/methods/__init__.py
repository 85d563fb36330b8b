"""Customization methods behind one training interface (base.TrainingMethod); `model.method` picks one."""

from .base import Batch, TrainingMethod
from .sugar import SugarMethod

METHODS: dict[str, type[TrainingMethod]] = {SugarMethod.name: SugarMethod}


def get_method(config) -> TrainingMethod:
    """The method `config.method` names (config: the run's ModelConfig)."""
    try:
        return METHODS[config.method](config)
    except KeyError:
        raise ValueError(f"model.method={config.method!r} is unknown; choose one of {sorted(METHODS)}") from None


__all__ = ["METHODS", "Batch", "SugarMethod", "TrainingMethod", "get_method"]
