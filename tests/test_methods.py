"""The method interface the DeepSpeed worker trains through (model/methods): SUGAR's batch and loss against
a hand computation with the same random draws, block freezing for TSF, and the batch's device/dtype rule."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.config import model_config
from model.methods import Batch, SugarMethod, get_method
from model.noise import diffusion_noise


def _build(prediction_type: str | None = None):
    data = model_config("tiny").model_dump()
    if prediction_type:
        data["scheduler"]["prediction_type"] = prediction_type
    method = get_method(type(model_config("tiny")).model_validate(data))
    return method, method.build(seed=0)


@pytest.fixture(scope="module")
def sugar():
    return _build()


def _features(pipe, n=3):
    c = pipe.config
    g = torch.Generator().manual_seed(5)
    videos = torch.rand(n, c.num_frames, 3, c.height, c.width, generator=g) * 2 - 1
    images = (torch.rand(n, c.height, c.width, 3, generator=g) * 255).to(torch.uint8).numpy()
    return SugarMethod(c).encode(pipe, videos, images, ["a red cat walks"] * n)


@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample", "epsilon"])
def test_sugar_loss_is_the_diffusion_loss_with_the_documented_draws(prediction_type):
    method, pipe = _build(prediction_type)
    assert isinstance(method, SugarMethod)
    features = _features(pipe)
    batch = method.prepare_batch(pipe, features, torch.Generator().manual_seed(1), np.random.default_rng(2))
    loss = method.compute_loss(pipe.denoiser, batch)

    # By hand: noise from the NumPy stream, then timesteps, then the three dropout flags from the torch one.
    c, sched, x0 = pipe.config, pipe.scheduler, features["latents"]
    gen = torch.Generator().manual_seed(1)
    noise = torch.from_numpy(diffusion_noise(np.random.default_rng(2), tuple(x0.shape), **c.noise_args))
    t = torch.randint(0, sched.config.num_train_timesteps, (3,), generator=gen)
    from model.conditioning import condition_dropout

    keeps = condition_dropout(3, c.conditioning.drop_dino, c.conditioning.drop_clip, c.conditioning.drop_text,
                              generator=gen)
    with torch.no_grad():
        out = pipe.denoiser(sched.add_noise(x0, noise, t), t, features["dino"], features["clip"], features["text"],
                            *keeps)
    assert sched.config.prediction_type == prediction_type
    target = {"v_prediction": sched.get_velocity(x0, noise, t), "sample": x0, "epsilon": noise}[prediction_type]
    expected = F.mse_loss(out.float(), target.float())
    assert torch.equal(batch.inputs["timestep"], t) and torch.equal(batch.target, target)
    torch.testing.assert_close(loss.detach(), expected, rtol=0, atol=0)
    loss.backward()  # the loss reaches the trainable module
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.trainable(pipe).parameters())


def test_set_trainable_freezes_the_first_blocks(sugar):
    method, pipe = sugar
    blocks = method.blocks(pipe)
    params = method.set_trainable(pipe, 2)
    assert [all(not p.requires_grad for p in b.parameters()) for b in blocks] == [True, True] + [False] * (len(blocks) - 2)
    assert len(params) == sum(p.requires_grad for p in method.trainable(pipe).parameters()) > 0
    method.set_trainable(pipe, 0)
    assert all(p.requires_grad for p in method.trainable(pipe).parameters())


def test_batch_casts_floating_inputs_only_and_keeps_the_target_precise():
    b = Batch({"x": torch.ones(2), "t": torch.tensor([1, 2]), "keep": torch.tensor([True, False])}, torch.ones(2))
    moved = b.to(None, torch.bfloat16)
    assert moved.inputs["x"].dtype == torch.bfloat16 and moved.inputs["t"].dtype == torch.int64
    assert moved.inputs["keep"].dtype == torch.bool and moved.target.dtype == torch.float32


def test_an_unknown_method_is_named():
    cfg = model_config("tiny").model_copy(update={"method": "nosuch"})
    with pytest.raises(ValueError, match="model.method='nosuch' is unknown; choose one of"):
        get_method(cfg)
