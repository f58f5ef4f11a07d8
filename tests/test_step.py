"""The fast training step (bf16 autocast, channels_last, fused Adam, concatenated D batch)
computes the same losses as a plain fp32 step on a fixed batch."""

import pytest
import torch

from gankit.config import PerfConfig
from gankit.losses import d_loss_parts, g_loss
from gankit.models import build_models
from gankit.training.runtime import cpu_has_bf16, setup
from gankit.training.step import GANStep


def _reference_losses(cfg, g, d, real, z_d, z_g):
    """Textbook fp32 step: separate D passes, default Adam."""
    with torch.no_grad():
        fake = g(z_d)
    lr, lf = d_loss_parts(cfg.loss.name, d(real), d(fake))
    return lr.item(), lf.item(), g_loss(cfg.loss.name, d(g(z_g))).item()


@pytest.mark.parametrize("preset", ["dcgan", "sagan"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fast_step_matches_reference_losses(tiny_cfg, preset, precision):
    if precision == "bf16" and not cpu_has_bf16():
        pytest.skip("no native bf16 on this CPU")
    cfg = tiny_cfg(preset, "discriminator.dropout=0.0")
    torch.manual_seed(0)
    g, d = build_models(cfg)
    g2, d2 = build_models(cfg)
    g2.load_state_dict(g.state_dict())
    d2.load_state_dict(d.state_dict())
    g2.to(memory_format=torch.channels_last)
    d2.to(memory_format=torch.channels_last)
    rt = setup(PerfConfig(precision=precision, channels_last=True))
    noise = torch.Generator().manual_seed(1)
    step = GANStep(cfg, g2, d2, rt, noise)
    real = torch.rand(step.n_real, 3, 32, 32) * 2 - 1
    # draw the same latents the fast step will draw
    probe = torch.Generator().manual_seed(1)
    z_d = torch.empty_like(step._z_d).normal_(generator=probe)
    z_g = torch.empty_like(step._z_g).normal_(generator=probe)
    ref = _reference_losses(cfg, g, d, real, z_d, z_g)
    # the G loss of the reference is measured before D's update; run D and G steps apart
    d_parts = step.d_step(real)
    tol = 1e-4 if precision == "fp32" else 3e-2
    assert d_parts[0].item() == pytest.approx(ref[0], rel=tol, abs=tol)
    assert d_parts[1].item() == pytest.approx(ref[1], rel=tol, abs=tol)
    # compare G loss against a reference D that took the same update
    g3, d3 = build_models(cfg)
    g3.load_state_dict(g2.state_dict())
    d3.load_state_dict(d2.state_dict())
    with torch.no_grad():
        ref_g = g_loss(cfg.loss.name, d3(g3(z_g))).item()
    assert step.g_step().item() == pytest.approx(ref_g, rel=tol * 3, abs=tol * 3)


# -- one fp32 step against a hand-written reference update -------------------------------------
# The reference writes each loss from its paper and Adam from Kingma & Ba, and updates copies of
# the models by hand, so a step that ascends instead of descends, swaps or rescales the G/D
# learning rates, mixes up betas or drops the gradient penalty cannot pass.

def _ref_d_loss(name, dr, df):
    if name == "bce":  # -E log D(x) - E log(1 - D(G(z)))
        return -torch.log(torch.sigmoid(dr)).mean() - torch.log(1 - torch.sigmoid(df)).mean()
    if name in ("wasserstein", "wgan-gp"):
        return df.mean() - dr.mean()
    if name == "hinge":
        return torch.clamp(1 - dr, min=0).mean() + torch.clamp(1 + df, min=0).mean()
    raise AssertionError(name)


def _ref_g_loss(name, dg):
    if name == "bce":  # non-saturating: -E log D(G(z))
        return -torch.log(torch.sigmoid(dg)).mean()
    return -dg.mean()


class _RefAdam:
    def __init__(self, params, lr, betas, eps=1e-8):
        self.params, self.lr, (self.b1, self.b2), self.eps = list(params), lr, betas, eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    @torch.no_grad()
    def step(self, grads):
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m.mul_(self.b1).add_((1 - self.b1) * g)
            v.mul_(self.b2).add_((1 - self.b2) * g * g)
            m_hat, v_hat = m / (1 - self.b1 ** self.t), v / (1 - self.b2 ** self.t)
            p.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))


@pytest.mark.parametrize("extra", [
    ["loss.name=bce"],
    ["loss.name=wasserstein", "discriminator.output=linear"],
    ["loss.name=hinge", "discriminator.output=linear", "optim.n_dis=2"],
    ["loss.name=wgan-gp", "discriminator.output=linear", "optim.g_lr=1e-4", "optim.d_lr=5e-4",
     "optim.g_betas=[0.0, 0.9]", "optim.d_betas=[0.0, 0.9]"],
    # the G step back-propagates through the last D step's fakes: no new latents are drawn
    ["loss.name=bce", "train.d_batch=full", "optim.g_fake=reuse"],
    ["loss.name=hinge", "discriminator.output=linear", "optim.n_dis=2", "train.d_batch=full",
     "optim.g_fake=reuse"],
    # lazy R1 (every 2nd D update, times 2) and LeCam with its moving anchors, on two losses
    ["loss.name=hinge", "discriminator.output=linear", "optim.n_dis=3", "loss.r1_gamma=5.0",
     "loss.r1_every=2"],
    ["loss.name=bce", "loss.lecam_weight=0.3", "loss.lecam_decay=0.5", "optim.n_dis=2"],
    ["loss.name=wasserstein", "discriminator.output=linear", "loss.r1_gamma=1.0",
     "loss.r1_every=1", "loss.lecam_weight=0.5"],
    # drift on the pre-activation: through a tanh critic's tanh, and on a linear critic
    ["loss.name=wasserstein", "discriminator.output=tanh", "loss.drift_weight=0.1"],
    ["loss.name=hinge", "discriminator.output=linear", "loss.drift_weight=0.05", "optim.n_dis=2"],
])
def test_fp32_updates_match_hand_written_reference(tiny_cfg, extra):
    cfg = tiny_cfg("dcgan", "discriminator.dropout=0.0", "optim.g_lr=3e-4", "optim.d_lr=7e-4",
                   *extra)
    torch.manual_seed(0)
    g, d = build_models(cfg)
    g_ref, d_ref = build_models(cfg)
    g_ref.load_state_dict(g.state_dict())
    d_ref.load_state_dict(d.state_dict())
    rt = setup(PerfConfig(precision="fp32", channels_last=False))
    step = GANStep(cfg, g, d, rt, torch.Generator().manual_seed(1))
    initial = [p.detach().clone() for p in [*g.parameters(), *d.parameters()]]
    o, name = cfg.optim, cfg.loss.name
    opt_g = _RefAdam(g_ref.parameters(), o.g_lr, o.g_betas)
    opt_d = _RefAdam(d_ref.parameters(), o.d_lr, o.d_betas)
    probe = torch.Generator().manual_seed(1)
    n, b, latent = step.n_real, cfg.train.batch_size, cfg.generator.latent_dim
    lc = cfg.loss
    anchor_real = anchor_fake = 0.0  # LeCam's moving averages of D(real), D(fake)
    tanh = cfg.discriminator.output == "tanh"
    d_ref.output = "linear"  # the reference takes the pre-activation s and applies tanh itself

    def score(x):
        s = d_ref(x)
        return (torch.tanh(s) if tanh else s), s
    d_update = 0
    for it in range(2):
        reals = [torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(10 * it + k)) * 2 - 1
                 for k in range(o.n_dis)]
        torch.manual_seed(100 + it)  # the gradient penalty's interpolation weights
        step(reals)
        torch.manual_seed(100 + it)
        for real in reals:
            z = torch.empty(n, latent).normal_(generator=probe)
            with torch.no_grad():
                fake = g_ref(z)
            (dr, sr), (df, sf) = score(real), score(fake)
            loss = _ref_d_loss(name, dr, df)
            if lc.drift_weight:  # on the pre-activation, not through tanh
                loss = loss + lc.drift_weight * ((sr ** 2).mean() + (sf ** 2).mean())
            if lc.r1_gamma and d_update % lc.r1_every == 0:  # (gamma/2) E||grad_x D(x)||^2
                x = real.clone().requires_grad_(True)
                (grad,) = torch.autograd.grad(d_ref(x).sum(), x, create_graph=True)
                loss = loss + lc.r1_gamma / 2 * lc.r1_every * (grad ** 2).sum((1, 2, 3)).mean()
            if lc.lecam_weight:
                anchor_real = lc.lecam_decay * anchor_real + (1 - lc.lecam_decay) * dr.mean().item()
                anchor_fake = lc.lecam_decay * anchor_fake + (1 - lc.lecam_decay) * df.mean().item()
                loss = loss + lc.lecam_weight * (((dr - anchor_fake) ** 2).mean()
                                                 + ((df - anchor_real) ** 2).mean())
            d_update += 1
            if name == "wgan-gp":
                alpha = torch.rand(n, 1, 1, 1)
                x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
                (grad,) = torch.autograd.grad(d_ref(x_hat).sum(), x_hat, create_graph=True)
                loss = loss + cfg.loss.gp_weight * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
            opt_d.step(torch.autograd.grad(loss, list(d_ref.parameters())))
        if o.g_fake == "fresh":
            z = torch.empty(b, latent).normal_(generator=probe)
        loss = _ref_g_loss(name, score(g_ref(z))[0])
        opt_g.step(torch.autograd.grad(loss, list(g_ref.parameters())))
    for mine, ref, who in ((g, g_ref, "G"), (d, d_ref, "D")):
        for (k, p), q in zip(mine.named_parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=2e-6, msg=lambda m, k=f"{who}.{k}": f"{k}: {m}")
    # not vacuous: the weights moved by about the learning rate (a Wasserstein D's head bias
    # has an exactly zero gradient, so this is checked over all weights together)
    moved = torch.cat([(p - p0).flatten() for p, p0 in
                       zip([*g.parameters(), *d.parameters()], initial, strict=True)])
    assert moved.abs().mean() > 1e-4


@pytest.mark.parametrize("gain", ["inv_sqrt_fan_in", "1000.0"])
def test_d_scores_and_saturation_are_logged_as_a_hand_computation(tiny_cfg, gain):
    """d_real / d_fake are D's mean outputs on the batch it was updated on (before the update),
    d_saturated the fraction with |tanh| > 0.99: computed here on a copy of D, separately for
    real and fake (sndcgan's batch-norm D sees them in separate passes). A gain of 1000 pins
    every output, so the fraction is not vacuously 0."""
    cfg = tiny_cfg("sndcgan", f"discriminator.head_gain={gain}")
    torch.manual_seed(0)
    g, d = build_models(cfg)
    g_ref, d_ref = build_models(cfg)  # copies: spectral norm's power iteration runs per forward
    g_ref.load_state_dict(g.state_dict())
    d_ref.load_state_dict(d.state_dict())
    step = GANStep(cfg, g, d, setup(PerfConfig(precision="fp32", channels_last=False)),
                   torch.Generator().manual_seed(1))
    real = torch.rand(step.n_real, 3, 32, 32) * 2 - 1
    z = torch.empty_like(step._z_d).normal_(generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        fake = g_ref(z)
        dr, df = d_ref(real), d_ref(fake)
    step([real])
    stats = step.pop_stats()
    assert stats["d_real"] == pytest.approx(dr.mean().item(), rel=1e-5, abs=1e-7)
    assert stats["d_fake"] == pytest.approx(df.mean().item(), rel=1e-5, abs=1e-7)
    sat = (torch.cat([dr, df]).abs() > 0.99).float().mean().item()
    assert stats["d_saturated"] == pytest.approx(sat)
    assert (sat == 1.0) == (gain == "1000.0")
    # a linear critic has scores but no saturation
    lin = GANStep(tiny_cfg("sndcgan", "discriminator.output=linear"), *build_models(cfg),
                  setup(PerfConfig(precision="fp32", channels_last=False)),
                  torch.Generator().manual_seed(1))
    lin([real])
    assert {"d_real", "d_fake"} <= set(lin.pop_stats()) and "d_saturated" not in lin.extra_names
