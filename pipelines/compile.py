"""Compile the pipeline to its KFP IR YAML (the reviewed snapshot lives beside this file)."""

from __future__ import annotations

from pathlib import Path

SNAPSHOT = Path(__file__).with_name("vidcustom_pipeline.yaml")


def compile_pipeline(path: str | Path = SNAPSHOT) -> Path:
    from kfp import compiler

    from pipelines.pipeline import cluster_pipeline

    compiler.Compiler().compile(cluster_pipeline, str(path))
    return Path(path)
