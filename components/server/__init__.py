"""`vidcustom serve`: the registered ONNX sampler behind KServe's Python model server.

Modules: `jobs` (the bounded queue, workers, batching, cancel and time limits), `loader` (a registered model by
alias or version, reloaded when the alias moves), `model` (the `kserve.Model`: open inference protocol),
`routes` (the async job API and the request-size limit), `metrics` (Prometheus), `app` (wiring and start-up).
"""
