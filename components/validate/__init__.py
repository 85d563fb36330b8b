"""The validate step: a Great Expectations suite over the manifest, per-sample media checks, and the
dataset's DVC version pushed to a remote. `run` lives in .validate; the CLI in __main__; KFP in .component.

Module level stays light (no GX/DVC imports) so `vidcustom --help` and KFP compilation start fast.
"""

from .result import ValidationFailed, ValidationResult
from .validate import run

__all__ = ["ValidationFailed", "ValidationResult", "run"]
