"""MLflow pyfunc wrapper of the ONNX sampler: serves without PyTorch (serving contract in components/serving.py)."""

from __future__ import annotations

import mlflow.pyfunc


class OnnxSugarPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from components.export.sampler import OnnxSugarSampler

        self.sampler = OnnxSugarSampler(context.artifacts["onnx"])

    def predict(self, context, model_input, params=None):
        from components.serving import parse_request, response

        c = self.sampler.config
        rows = parse_request(model_input, c["height"], c["width"], params, c["num_inference_steps"], c["num_frames"])
        videos = [self.sampler(r["image"], r["prompt"], seed=r["seed"], num_inference_steps=r["num_inference_steps"],
                               image_scale=r["image_scale"], text_scale=r["text_scale"]) for r in rows]
        return response(videos, c["fps"])
