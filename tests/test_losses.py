import pytest
import torch

from gankit.losses import clip_weights, d_loss_parts, g_loss, gradient_penalty

LOSSES = ["bce", "wasserstein", "hinge", "wgan-gp"]


@pytest.mark.parametrize("name", LOSSES)
def test_d_loss_rewards_separating_real_from_fake(name):
    good = sum(d_loss_parts(name, torch.full((8,), 3.0), torch.full((8,), -3.0)))
    bad = sum(d_loss_parts(name, torch.full((8,), -3.0), torch.full((8,), 3.0)))
    assert good < bad


@pytest.mark.parametrize("name", LOSSES)
def test_gradients_push_scores_the_right_way(name):
    real = torch.zeros(4, requires_grad=True)
    fake = torch.zeros(4, requires_grad=True)
    lr, lf = d_loss_parts(name, real, fake)
    (lr + lf).backward()
    assert (real.grad < 0).all() and (fake.grad > 0).all()  # D raises real, lowers fake
    fake_g = torch.zeros(4, requires_grad=True)
    g_loss(name, fake_g).backward()
    assert (fake_g.grad < 0).all()  # G raises D's score on its samples


def test_bce_values_and_minimax():
    lr, lf = d_loss_parts("bce", torch.zeros(3), torch.zeros(3))
    assert lr.item() == pytest.approx(torch.log(torch.tensor(2.0)).item())
    x = torch.tensor([0.5], requires_grad=True)
    g_loss("bce", x, "minimax").backward()
    # d/dx log(1 - sigmoid(x)) = -sigmoid(x)
    assert x.grad.item() == pytest.approx(-torch.sigmoid(torch.tensor(0.5)).item())
    assert g_loss("bce", torch.zeros(2), "minimax").item() == pytest.approx(-0.6931, abs=1e-4)


def test_wasserstein_and_hinge_values():
    r, f = torch.tensor([2.0, 4.0]), torch.tensor([1.0, -1.0])
    lr, lf = d_loss_parts("wasserstein", r, f)
    assert (lr + lf).item() == pytest.approx(0.0 - 3.0)
    lr, lf = d_loss_parts("hinge", r, f)
    assert (lr.item(), lf.item()) == (0.0, 1.0)


def test_gradient_penalty_is_zero_for_unit_gradient_and_differentiable():
    w = torch.tensor([0.6, 0.8, 0.0], requires_grad=True)  # |grad| = 1 everywhere
    d = lambda x: (x.flatten(1)[:, :3] * w).sum(1)  # noqa: E731
    real, fake = torch.randn(4, 3, 1, 1), torch.randn(4, 3, 1, 1)
    assert gradient_penalty(d, real, fake).item() == pytest.approx(0.0, abs=1e-10)
    w2 = torch.tensor([2.0, 0.0, 0.0], requires_grad=True)
    d2 = lambda x: (x.flatten(1)[:, :3] * w2).sum(1)  # noqa: E731
    gp = gradient_penalty(d2, real, fake)
    assert gp.item() == pytest.approx(1.0)
    gp.backward()
    assert w2.grad[0] > 0


def test_clip_weights():
    m = torch.nn.Linear(4, 4)
    m.weight.data.mul_(100)
    clip_weights(m, 0.01)
    assert m.weight.abs().max() <= 0.01
