"""Register step: the PyTorch pipeline as an MLflow pyfunc model with aliases and a promotion gate."""
