"""The served ONNX sampler: raw denoiser + branch plan against PyTorch, exports from before the plan, `generate`
(batching, callback), and the acceleration gate refusing what breaks parity (recorded in sampler.json)."""

import json

import numpy as np
import pytest
import torch

from components.export.parity import photo

STEPS = 3


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from components.export.onnx_export import export_pipeline
    from model.config import model_config
    from model.pipeline import SugarPipeline

    pipe = SugarPipeline.from_config(model_config("tiny", num_frames=4)).eval()
    out = tmp_path_factory.mktemp("onnx")
    export_pipeline(pipe, out)
    return pipe, out


def _torch_video(pipe, image, prompt, seed, **kw) -> np.ndarray:
    from components.preprocess import identity_image

    c = pipe.config
    with torch.no_grad():
        lat = pipe(identity_image(image, c.height, c.width), prompt, seed=seed, num_inference_steps=STEPS,
                   output_type="latent", **kw).frames
        return pipe.codec.decode(lat).clamp(-1, 1)[0].permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("scales", [(1.0, 1.0), (2.0, 2.0), (2.5, 7.5)])
def test_raw_denoiser_with_the_plan_matches_the_pytorch_pipeline(exported, scales):
    from components.export.sampler import OnnxSugarSampler

    pipe, out = exported
    sampler = OnnxSugarSampler(out, accelerations=("branch_plan",))
    assert not sampler.legacy and sampler.accelerations == ("branch_plan",)
    image = photo(60, 40, 5)
    kw = {"image_scale": scales[0], "text_scale": scales[1], "early_dino_drop": 0.34}
    want = _torch_video(pipe, image, "a red box", 7, **kw)
    got = sampler(image, "a red box", seed=7, num_inference_steps=STEPS, output_type="float", **kw)
    assert np.abs(got - want).max() < 1e-3


def test_an_export_from_before_the_plan_still_loads_and_samples(exported, tmp_path):
    """Registered versions hold a guided `denoiser.onnx` (three branches and the guidance in-graph)."""
    import shutil

    from components.export.onnx_export import export_denoiser
    from components.export.sampler import OnnxSugarSampler

    pipe, out = exported
    old = shutil.copytree(out, tmp_path / "old")
    export_denoiser(pipe, old / "denoiser.onnx", guided=True)
    config = json.loads((old / "sampler.json").read_text())
    config.pop("runtime", None)  # as an old export's sampler.json: no runtime record
    (old / "sampler.json").write_text(json.dumps(config))
    sampler = OnnxSugarSampler(old)
    assert sampler.legacy
    image = photo(50, 50, 6)
    got = sampler(image, "a red box", seed=3, num_inference_steps=STEPS, text_scale=2.0, output_type="float")
    assert np.abs(got - _torch_video(pipe, image, "a red box", 3, text_scale=2.0)).max() < 1e-3
    both = sampler.generate([image, image], ["a red box", "a cat"], [3, 4], STEPS, text_scale=2.0, output_type="float")
    assert np.abs(both[0] - got).max() < 1e-5


def test_generate_batches_rows_and_each_row_equals_itself_alone(exported):
    from components.export.sampler import OnnxSugarSampler

    sampler = OnnxSugarSampler(exported[1])
    calls = _count_denoiser_calls(sampler)
    rows = [(photo(40, 30, 1), "a red box", 1), (photo(80, 20, 2), "a blue ball", 2), (photo(32, 32, 3), "", 9)]
    batch = sampler.generate(*map(list, zip(*rows)), num_inference_steps=STEPS, output_type="float")
    assert len(calls) == STEPS and all(n == 3 for n in calls)  # one denoiser call a step for all rows
    for (image, prompt, seed), video in zip(rows, batch):
        assert np.abs(video - sampler(image, prompt, seed=seed, num_inference_steps=STEPS, output_type="float")
                      ).max() < 1e-5
    uint8 = sampler.generate([rows[0][0]], [rows[0][1]], [1], STEPS)
    assert uint8[0].dtype == np.uint8 and uint8[0].shape == (4, 32, 32, 3)


def test_a_raising_callback_stops_the_work_after_that_step(exported):
    from components.export.sampler import OnnxSugarSampler

    sampler = OnnxSugarSampler(exported[1])
    calls, seen = _count_denoiser_calls(sampler), []

    class Cancelled(Exception):
        pass

    def callback(i, total):
        seen.append((i, total))
        if i == 1:
            raise Cancelled

    with pytest.raises(Cancelled):
        sampler.generate([photo(32, 32, 1)], ["a red box"], [0], num_inference_steps=5, callback=callback)
    assert seen == [(0, 5), (1, 5)] and len(calls) == 2


def test_the_gate_refuses_what_breaks_parity_and_sampler_json_records_it(exported, tmp_path, run_config):
    import shutil

    from components.export.accelerate import gate_accelerations
    from components.export.sampler import INT8_DENOISER, OnnxSugarSampler
    from components.sprites import generate, heldout_specs_for

    pipe, out = exported
    out = shutil.copytree(out, tmp_path / "onnx")
    c = pipe.config
    cases = [(generate(s, c.height, c.width, c.num_frames)[0], s.caption, s)
             for s in heldout_specs_for(run_config(), 2)]
    runtime = {"fewer_steps_fraction": 0.5, "cache_interval": 2, "intra_op_threads": 0, "allow_spinning": False,
               "graph_optimization": "all"}
    report = gate_accelerations(out, cases, [0], 4, ["branch_plan", "int8", "fewer_steps"], atol=1e-4,
                                identity_drop=0.01, runtime=runtime, providers=("CPUExecutionProvider",))
    assert report["accepted"] == ["branch_plan"] and report["refused"] == ["int8", "fewer_steps"]
    by_flag = {d["acceleration"]: d for d in report["decisions"]}
    assert by_flag["branch_plan"]["max_abs_diff"] < 1e-4
    assert by_flag["fewer_steps"]["on_top_of"] == ["branch_plan"] and "max |Δ|" in by_flag["fewer_steps"]["reasons"][0]
    config = json.loads((out / "sampler.json").read_text())
    assert config["runtime"]["accelerations"] == ["branch_plan"]
    assert config["acceleration_gate"]["refused"] == ["int8", "fewer_steps"]
    assert not (out / INT8_DENOISER).exists()  # refused: not shipped
    assert OnnxSugarSampler(out).accelerations == ("branch_plan",)  # the served sampler reads the decision


def test_export_config_accelerations():
    from components.config import load_config

    assert load_config(overrides=["export.accelerations=[branch_plan,int8]"]).export.accelerations == [
        "branch_plan", "int8"]
    for bad in ("[branch_plan,branch_plan]", "[turbo]"):
        with pytest.raises(ValueError, match="export.accelerations"):
            load_config(overrides=[f"export.accelerations={bad}"])


def _count_denoiser_calls(sampler) -> list[int]:
    """Wraps the denoiser session; returns the list of batch sizes it is called with."""
    calls, session = [], sampler.sessions["denoiser"]

    class Counting:
        def __getattr__(self, name):
            return getattr(session, name)

        def run(self, outputs, feeds):
            calls.append(feeds["latents"].shape[0])
            return session.run(outputs, feeds)

    sampler.sessions["denoiser"] = Counting()
    return calls
