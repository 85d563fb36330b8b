"""Synthesize step: the `sprites` procedural backend, the shared data filters and the dataset writer.

`python -m components.synthesize OUTPUT_DIR` runs it; `component.py` is its KFP component.
Module level stays light: `run` lives in `components.synthesize.synthesize`.
"""
