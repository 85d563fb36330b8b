"""MLflow pyfunc wrapper of the PyTorch SUGAR pipeline (serving contract in components/serving.py)."""

from __future__ import annotations

import mlflow.pyfunc


class SugarPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from model.pipeline import SugarPipeline

        self.pipe = SugarPipeline.from_pretrained(context.artifacts["checkpoint"])

    def predict(self, context, model_input, params=None):
        from components.serving import parse_request, response

        c = self.pipe.config
        rows = parse_request(model_input, c.height, c.width, params, c.sampler.num_inference_steps, c.num_frames)
        videos = [self.pipe(r["image"], r["prompt"], seed=r["seed"], num_inference_steps=r["num_inference_steps"],
                            image_scale=r["image_scale"], text_scale=r["text_scale"]).frames[0] for r in rows]
        return response(videos, c.fps)
