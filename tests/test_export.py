"""ONNX export: the NumPy DDIM loop equals diffusers' scheduler, and the ONNX sampler matches PyTorch."""

import numpy as np
import pytest
import torch

from components.export.sampler import ddim_step, ddim_timesteps
from model.config import model_config
from model.pipeline import SugarPipeline, build_scheduler


@pytest.mark.parametrize("prediction", ["sample", "v_prediction", "epsilon"])
@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace"])
def test_numpy_ddim_matches_diffusers(spacing, prediction):
    cfg = model_config("tiny", scheduler={"timestep_spacing": spacing, "prediction_type": prediction,
                                          "rescale_betas_zero_snr": prediction != "epsilon"})
    sched = build_scheduler(cfg)
    sched.set_timesteps(7)
    ts = ddim_timesteps(1000, 7, spacing, sched.config.steps_offset)
    assert ts.tolist() == sched.timesteps.tolist()
    g = torch.Generator().manual_seed(0)
    x, v = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    alphas = sched.alphas_cumprod.numpy().astype(np.float64)
    for t in sched.timesteps:
        ref = sched.step(v, t, x).prev_sample.numpy()
        ours = ddim_step(v.numpy(), int(t), x.numpy(), alphas, int(t) - 1000 // 7, 1.0, prediction)
        assert np.allclose(ours, ref, atol=1e-4, rtol=1e-4)


def test_onnx_sampler_matches_pytorch(tmp_path):
    from components.export.onnx_export import export_pipeline
    from components.export.parity import parity_report
    from components.export.sampler import OnnxSugarSampler

    pipe = SugarPipeline.from_config(model_config("tiny", num_frames=4)).eval()
    export_pipeline(pipe, tmp_path / "onnx")
    sampler = OnnxSugarSampler(tmp_path / "onnx")
    assert sampler.providers[-1] == "CPUExecutionProvider"
    img = np.zeros((32, 32, 3), np.uint8)
    img[8:24, 8:24] = (200, 40, 40)
    from components.export.parity import photo

    cases = [(img, "a red box slides left"), (img, ""), (photo(300, 200, 1), "a red box")]
    report = parity_report(pipe, sampler, cases, seeds=[3, 4], steps=5, atol=1e-3)
    assert report["passed"], report
    assert report["max_abs_diff"] < 1e-3 and report["max_uint8_diff"] <= 1 and len(report["cases"]) == 6
    assert report["cases"][-1]["image"] == "300x200"
    video = sampler(img, "a red box slides left", num_inference_steps=2, early_dino_drop=0.5)
    assert video.shape == (4, 32, 32, 3) and video.dtype == np.uint8
    # Any identity-image size is accepted: fitted by the identity contract (the graph is traced at 32x32).
    assert sampler(photo(48, 40, 2), "a red box", num_inference_steps=1).shape == (4, 32, 32, 3)


def test_the_parity_gate_refuses_a_sampler_that_preprocesses_differently(tmp_path):
    """The bug the gate exists for: a server resizing the identity image its own way (a plain stretch)."""
    from components.export.onnx_export import export_pipeline
    from components.export.parity import parity_report, photo
    from components.export.sampler import OnnxSugarSampler

    pipe = SugarPipeline.from_config(model_config("tiny", num_frames=4)).eval()
    export_pipeline(pipe, tmp_path / "onnx")

    class Stretching(OnnxSugarSampler):
        def __call__(self, image, prompt, **kw):
            from PIL import Image

            raw = getattr(self, "raw", image)
            stretched = np.asarray(Image.fromarray(raw).resize((32, 32), Image.BILINEAR))
            return super().__call__(stretched, prompt, **kw)

    sampler = Stretching(tmp_path / "onnx")
    wide = photo(400, 100, 3)
    sampler.raw = wide  # it sees the original photo, not the fitted one
    report = parity_report(pipe, sampler, [(wide, "a red box")], seeds=[0], steps=3, atol=1e-3)
    assert not report["passed"] and report["max_uint8_diff"] > 1, report


def test_onnx_sampler_module_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; import components.export.sampler, components.serving; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
