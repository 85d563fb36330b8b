"""The registry of synthesis backends: the one `synthesize.backend` names, built from the run config."""

from __future__ import annotations

from .backend import Backend


def build_backend(cfg) -> Backend:
    """The backend `cfg.synthesize.backend` names, configured from the run config."""
    name = cfg.synthesize.backend
    if name == "sprites":
        from .sprites_backend import SpritesBackend

        return SpritesBackend(cfg)
    if name == "diffusers":
        from .scale.backend import DiffusersBackend

        return DiffusersBackend(cfg)
    if name == "ingest":
        from .ingest import IngestBackend

        return IngestBackend(cfg)
    raise ValueError(f"synthesize.backend={name!r} is unknown; choose sprites, diffusers or ingest")
