"""vidcustom networks and samplers: SUGAR on a CogVideoX transformer.

Knows nothing of MLflow, KFP or DVC (imports point pipelines -> components -> model).
Heavy imports (torch, diffusers, transformers) live in the submodules, not here.
"""
