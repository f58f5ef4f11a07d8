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


def _inputs(d, real, out_real=None, out_fake=None, d_update=0):
    from gankit.losses import PenaltyInputs

    z = torch.zeros(len(real))
    return PenaltyInputs(d, real, real, z if out_real is None else out_real,
                         z if out_fake is None else out_fake, d_update)


def test_r1_is_the_squared_input_gradient_norm_on_real_images():
    from gankit.losses import R1

    # D(x) = sum(x^2) has grad 2x, so E||grad||^2 = 4 E||x||^2 (a closed form)
    real = torch.randn(5, 3, 2, 2)
    d = lambda x: (x ** 2).flatten(1).sum(1)  # noqa: E731
    r1 = R1(gamma=10.0, every=1)
    assert r1.weight == 5.0  # gamma / 2
    want = 4 * (real ** 2).flatten(1).sum(1).mean()
    torch.testing.assert_close(r1(_inputs(d, real)), want)
    lazy = R1(gamma=10.0, every=4)  # every 4th D update, times 4
    torch.testing.assert_close(lazy(_inputs(d, real, d_update=8)), 4 * want)
    assert lazy(_inputs(d, real, d_update=9)).item() == 0.0


def test_lecam_anchors_each_side_to_the_other_sides_moving_average():
    from gankit.losses import LeCam

    lc = LeCam(weight=0.3, decay=0.5)
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-2.0, 0.0])
    v1 = lc(_inputs(None, torch.zeros(2), real, fake))
    a_r, a_f = 0.5 * 2.0, 0.5 * -1.0  # from 0: decay * 0 + (1 - decay) * batch mean
    want = ((real - a_f) ** 2).mean() + ((fake - a_r) ** 2).mean()
    torch.testing.assert_close(v1, want)
    real2, fake2 = torch.tensor([2.0, 2.0]), torch.tensor([0.0, 0.0])
    v2 = lc(_inputs(None, torch.zeros(2), real2, fake2))
    a_r, a_f = 0.5 * a_r + 0.5 * 2.0, 0.5 * a_f + 0.5 * 0.0
    torch.testing.assert_close(v2, ((real2 - a_f) ** 2).mean() + ((fake2 - a_r) ** 2).mean())
    # the anchors survive a state round trip (exact resume)
    other = LeCam(0.3, 0.5)
    other.load_state_dict(lc.state_dict())
    torch.testing.assert_close(other(_inputs(None, torch.zeros(2), real, fake)),
                               lc(_inputs(None, torch.zeros(2), real, fake)))


def test_drift_is_the_squared_pre_activation_even_through_tanh():
    """Closed form: for a tanh critic with scores tanh(s), the drift value is mean(s_real^2)
    + mean(s_fake^2) and its gradient on s is 2 s / N — it does not vanish with tanh' as a
    penalty on the scores would; a linear critic's scores are squared as they are; a score
    pinned at exactly +-1 gives a finite value and no gradient."""
    from gankit.losses import Drift, PenaltyInputs

    s_real = torch.tensor([0.5, -2.0, 3.0], requires_grad=True)
    s_fake = torch.tensor([-1.0, 2.5], requires_grad=True)
    z = torch.zeros(3)
    x = PenaltyInputs(None, z, z, torch.tanh(s_real), torch.tanh(s_fake), 0, tanh=True)
    v = Drift(0.02)(x)
    want = (0.25 + 4.0 + 9.0) / 3 + (1.0 + 6.25) / 2
    torch.testing.assert_close(v, torch.tensor(want), rtol=1e-5, atol=0.0)
    v.backward()
    torch.testing.assert_close(s_real.grad, 2 * s_real.detach() / 3, rtol=1e-4, atol=0.0)
    torch.testing.assert_close(s_fake.grad, 2 * s_fake.detach() / 2, rtol=1e-4, atol=0.0)
    lin = PenaltyInputs(None, z, z, torch.tensor([1.0, -3.0]), torch.tensor([2.0]), 0)
    torch.testing.assert_close(Drift(0.02)(lin), torch.tensor((1 + 9) / 2 + 4.0))
    pinned = torch.tensor([1.0, -1.0], requires_grad=True)
    v = Drift(0.02)(PenaltyInputs(None, z, z, pinned, pinned, 0, tanh=True))
    v.backward()
    torch.testing.assert_close(v, 2 * torch.atanh(torch.tensor(Drift.LIMIT)) ** 2)  # |s| ~ 8.3
    assert not pinned.grad.any()


def test_build_loss_adds_r1_and_lecam_to_any_loss():
    from gankit.config import LossConfig
    from gankit.losses import build_loss

    names = [p.name for p in build_loss(LossConfig(name="wgan-gp", r1_gamma=1.0,
                                                   lecam_weight=0.1, drift_weight=0.02)).penalties]
    assert names == ["gp", "r1", "lecam", "drift"]
    assert build_loss(LossConfig(name="hinge")).penalties == []


def test_custom_loss_by_registry_and_by_import_path(tmp_path):
    from gankit.config import LossConfig
    from gankit.errors import GankitError
    from gankit.losses import Loss, build_loss, register_loss

    @register_loss("test-ls")
    class LS(Loss):
        def d_loss(self, real, fake):
            return ((real - 1) ** 2).mean(), (fake ** 2).mean()

        def g_loss(self, fake):
            return ((fake - 1) ** 2).mean()

    assert isinstance(build_loss(LossConfig(name="test-ls")), LS)
    f = tmp_path / "my_losses.py"
    f.write_text("import gankit\n\nclass Half(gankit.Loss):\n"
                 "    def __init__(self, cfg=None, k=1.0):\n        super().__init__(cfg)\n"
                 "        self.k = k\n"
                 "    def d_loss(self, r, f):\n        return -self.k * r.mean(), self.k * f.mean()\n"
                 "    def g_loss(self, f):\n        return -f.mean()\n")
    loss = build_loss(LossConfig(name=f"{f}:Half", kwargs={"k": 0.5}))
    assert loss.k == 0.5 and loss.d_loss(torch.ones(2), torch.ones(2))[0].item() == -0.5
    with pytest.raises(GankitError, match="neither built in nor registered"):
        build_loss(LossConfig(name="hingee"))
    with pytest.raises(GankitError, match="has no Loss class Nope"):
        build_loss(LossConfig(name=f"{f}:Nope"))
    with pytest.raises(GankitError, match="cannot construct it"):
        build_loss(LossConfig(name=f"{f}:Half", kwargs={"bad": 1}))
