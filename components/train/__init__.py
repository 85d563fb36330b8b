"""Train step: SUGAR two-stage training under DeepSpeed ZeRO (stage plan in plan.py, ranks in worker.py)."""
