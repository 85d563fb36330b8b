"""Dual guidance (METHOD_NOTES §1.4) against hand computations, branch keep flags and the early DINO drop."""

import pytest
import torch

from model.guidance import DualGuidanceSampler, branch_keeps, combine_dual_guidance, early_drop_steps


def test_eq1_combination_matches_hand_computation():
    v0, v1, v2 = torch.tensor([1.0]), torch.tensor([3.0]), torch.tensor([4.0])
    # v = v0 + sI (v1 - v0) + sT (v2 - v1) = 1 + 2.5 * 2 + 7.5 * 1 = 13.5
    out = combine_dual_guidance(torch.cat([v0, v1, v2]), 2.5, 7.5)
    assert torch.allclose(out, torch.tensor([13.5]))


def test_scales_of_one_return_the_fully_conditioned_branch():
    v = torch.randn(3 * 2, 4)
    assert torch.allclose(combine_dual_guidance(v, 1.0, 1.0), v[4:])


def test_branch_keeps_eq1_and_eq2():
    k = branch_keeps(2, negative_prompt=False, drop_dino=False)
    assert k["keep_dino"].tolist() == [0, 0, 1, 1, 1, 1]
    assert k["keep_clip"].tolist() == [0, 0, 1, 1, 1, 1]
    assert k["keep_text"].tolist() == [0, 0, 0, 0, 1, 1]
    k2 = branch_keeps(1, negative_prompt=True, drop_dino=False)
    assert k2["keep_text"].tolist() == [1, 1, 1]  # eq. 2: the negative prompt's embedding is kept


def test_early_drop_removes_dino_from_every_image_branch_and_keeps_clip():
    k = branch_keeps(1, negative_prompt=False, drop_dino=True)
    assert k["keep_dino"].tolist() == [0, 0, 0]
    assert k["keep_clip"].tolist() == [0, 1, 1]


class _Recorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, dino, clip, text, keep_dino, keep_clip, keep_text):
        self.calls.append((x.shape[0], keep_dino.tolist(), keep_clip.tolist()))
        return torch.zeros_like(x)


def test_sampler_batches_three_branches_and_drops_dino_for_the_first_k_steps():
    from diffusers import DDIMScheduler

    rec = _Recorder()
    sampler = DualGuidanceSampler(rec, DDIMScheduler(prediction_type="v_prediction", timestep_spacing="trailing"))
    n, steps = 2, 10
    sampler(torch.randn(n, 2, 3, 4, 4), torch.zeros(n, 5, 8), torch.zeros(n, 1, 8), torch.zeros(n, 6, 8),
            torch.zeros(n, 6, 8), steps, 2.0, 3.0, early_dino_drop=0.3, progress=False)
    assert len(rec.calls) == steps and all(c[0] == 3 * n for c in rec.calls)  # one batched forward per step
    k = early_drop_steps(steps, 0.3)
    assert k == 3
    for i, (_, kd, kc) in enumerate(rec.calls):
        assert kd == ([0.0] * 6 if i < k else [0, 0, 1, 1, 1, 1])
        assert kc == [0, 0, 1, 1, 1, 1]


class _LinearDenoiser(torch.nn.Module):
    """v = 1 + 2·mean(dino)·keep_dino + 3·mean(clip)·keep_clip + mean(text or null text): each branch's value can
    be written down by hand. The null text is the constant 10."""

    def forward(self, x, t, dino, clip, text, keep_dino, keep_clip, keep_text):
        k = lambda f: f.view(-1, *([1] * (x.dim() - 1)))  # noqa: E731
        txt = text.mean(dim=(1, 2))
        val = 1 + 2 * dino.mean(dim=(1, 2)) * keep_dino + 3 * clip.mean(dim=(1, 2)) * keep_clip
        val = val + torch.where(keep_text > 0, txt, torch.full_like(txt, 10.0))
        return k(val).expand_as(x).clone()


class _RecordingScheduler:
    """Hands the guided model output back as the next sample, so the sampler's combination can be read off."""

    init_noise_sigma = 1.0

    def __init__(self):
        self.outputs = []

    def set_timesteps(self, n, device=None):
        self.timesteps = torch.arange(n, 0, -1)

    def scale_model_input(self, x, t):
        return x

    def step(self, out, t, latents):
        self.outputs.append(out.clone())
        return type("Out", (), {"prev_sample": latents})()


@pytest.mark.parametrize("negative_prompt", [False, True])
def test_sampler_guidance_matches_hand_written_equations_with_early_drop(negative_prompt):
    dino, clip = torch.full((1, 4, 2), 0.5), torch.full((1, 1, 2), 0.25)
    text, neg = torch.full((1, 3, 2), 2.0), torch.full((1, 3, 2), -1.0)
    uncond = neg if negative_prompt else torch.zeros_like(text)
    s_i, s_t, steps = 2.5, 7.5, 4
    sched = _RecordingScheduler()
    DualGuidanceSampler(_LinearDenoiser(), sched)(torch.zeros(1, 1, 1, 1, 1), dino, clip, text, uncond, steps, s_i,
                                                  s_t, negative_prompt=negative_prompt, early_dino_drop=0.5,
                                                  progress=False)

    def v(image_dino: bool, image_clip: bool, txt: float) -> float:  # the denoiser above, by hand
        return 1 + 2 * 0.5 * image_dino + 3 * 0.25 * image_clip + txt

    u = -1.0 if negative_prompt else 10.0  # eq. 2: the negative prompt; eq. 1: the null text
    for i, out in enumerate(sched.outputs):
        d = i >= 2  # early drop: the first K = 0.5 * 4 = 2 steps have no DINO in any image branch
        # eq. 1 / eq. 2: v = v(∅,U) + s_I [v(I,U) - v(∅,U)] + s_T [v(I,T) - v(I,U)], U = null text or N
        want = v(False, False, u) + s_i * (v(d, True, u) - v(False, False, u)) + s_t * (v(d, True, 2.0) - v(d, True, u))
        assert out.item() == pytest.approx(want), (i, out.item(), want)


SCALES = [(1.0, 1.0), (2.0, 2.0), (2.5, 7.5), (0.0, 1.0), (1.0, 0.0)]


@pytest.mark.parametrize("scales", SCALES)
def test_branch_plan_equals_the_reference_formula(scales):
    from model.guidance import combine_planned, guidance_branches

    branches, coeffs = guidance_branches(*scales)
    assert {(1.0, 1.0): (2,), (2.0, 2.0): (0, 2), (2.5, 7.5): (0, 1, 2), (0.0, 1.0): (0, 1, 2),
            (1.0, 0.0): (1,)}[scales] == branches
    v = torch.randn(3 * 2, 5, generator=torch.Generator().manual_seed(0))
    planned = combine_planned(torch.cat([v[2 * b:2 * b + 2] for b in branches]), coeffs)
    assert torch.allclose(planned, combine_dual_guidance(v, *scales), atol=1e-5)
    np_planned = combine_planned(torch.cat([v[2 * b:2 * b + 2] for b in branches]).numpy(), coeffs)
    assert abs(np_planned - combine_dual_guidance(v.numpy(), *scales)).max() < 1e-5  # the ONNX sampler's NumPy


@pytest.mark.parametrize("scales,rows", [((1.0, 1.0), 2), ((2.0, 2.0), 4), ((2.5, 7.5), 6)])
def test_sampler_runs_only_the_planned_branches(scales, rows):
    from diffusers import DDIMScheduler

    rec = _Recorder()
    sampler = DualGuidanceSampler(rec, DDIMScheduler(prediction_type="v_prediction", timestep_spacing="trailing"))
    args = (torch.randn(2, 2, 3, 4, 4), torch.zeros(2, 5, 8), torch.zeros(2, 1, 8), torch.zeros(2, 6, 8),
            torch.zeros(2, 6, 8), 4, *scales)
    sampler(*args, early_dino_drop=0.5, progress=False)
    assert [c[0] for c in rec.calls] == [rows] * 4
    if scales == (1.0, 1.0):  # branch 2 alone: image (DINO after the early drop) and text
        assert [c[1] for c in rec.calls] == [[0, 0], [0, 0], [1, 1], [1, 1]]
    rec.calls.clear()
    sampler(*args, progress=False, branch_plan=False)  # the sampler before the plan: three branches always
    assert [c[0] for c in rec.calls] == [6] * 4


@pytest.mark.parametrize("scales", SCALES)
def test_torch_pipeline_with_the_plan_equals_three_branches(scales):
    pipe = _tiny_pipeline()
    img = torch.randint(0, 255, (32, 32, 3), generator=torch.Generator().manual_seed(1)).to(torch.uint8).numpy()
    for kw in ({"early_dino_drop": 0.5}, {"use_image": False}):
        out = [pipe([img, img], ["a red box", "a cat"], seed=2, num_inference_steps=3, image_scale=scales[0],
                    text_scale=scales[1], output_type="latent", branch_plan=plan, **kw).frames for plan in (True, False)]
        assert torch.allclose(out[0], out[1], atol=1e-5), (kw, (out[0] - out[1]).abs().max())


_PIPE = {}


def _tiny_pipeline():  # one random tiny pipeline for the module
    from model.config import model_config
    from model.pipeline import SugarPipeline

    if not _PIPE:
        _PIPE["pipe"] = SugarPipeline.from_config(model_config("tiny", num_frames=4)).eval()
    return _PIPE["pipe"]
