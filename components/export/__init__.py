"""Export step: the registered PyTorch pipeline as ONNX graphs + a NumPy sampler for onnxruntime."""
