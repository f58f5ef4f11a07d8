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
