"""Evaluate step: VBench and DreamBooth-style video metrics (METHOD_NOTES §3)."""
