"""GAN losses: BCE (non-saturating / minimax), Wasserstein (+ clipping), hinge, WGAN-GP.

Each loss takes D's raw outputs on real and fake images and returns the D loss split into
its real and fake parts (so they can be logged separately) and the G loss. Signs follow the
convention that both players *minimise* their loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from gankit.config import LossConfig


def d_loss_parts(name: str, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """D's loss on real and on fake outputs; the D loss is their sum."""
    if name == "bce":  # -log sigmoid(real) - log(1 - sigmoid(fake))
        return F.softplus(-real).mean(), F.softplus(fake).mean()
    if name in ("wasserstein", "wgan-gp"):  # E[D(fake)] - E[D(real)]
        return -real.mean(), fake.mean()
    if name == "hinge":
        return F.relu(1.0 - real).mean(), F.relu(1.0 + fake).mean()
    raise ValueError(f"unknown loss {name!r}")


def g_loss(name: str, fake: torch.Tensor, g_mode: str = "nonsaturating") -> torch.Tensor:
    if name == "bce":
        if g_mode == "minimax":  # minimise log(1 - sigmoid(fake)) = -softplus(fake)
            return -F.softplus(fake).mean()
        return F.softplus(-fake).mean()  # -log sigmoid(fake)
    if name in ("wasserstein", "wgan-gp", "hinge"):
        return -fake.mean()
    raise ValueError(f"unknown loss {name!r}")


def gradient_penalty(
    d: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
    scale: float = 1.0,
) -> torch.Tensor:
    """WGAN-GP penalty E[(||grad D(x_hat)||_2 - 1)^2] on random interpolates (Gulrajani 2017).

    ``scale``: the GradScaler's scale under fp16 (torch.amp's gradient-penalty recipe): the
    output is multiplied by it before the input gradient is taken and the gradient divided
    by it after, so the half-precision backward does not flush small gradients to zero.
    """
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = d(x_hat)
    (grad,) = torch.autograd.grad(out.float().sum() * scale, x_hat, create_graph=True)
    grad = grad.float() / scale
    return (grad.flatten(1).norm(dim=1) - 1.0).pow(2).mean()


@torch.no_grad()
def clip_weights(module: torch.nn.Module, clip: float) -> None:
    """WGAN weight clipping: keep every parameter of D in [-clip, clip]."""
    for p in module.parameters():
        p.clamp_(-clip, clip)


__all__ = ["LossConfig", "clip_weights", "d_loss_parts", "g_loss", "gradient_penalty"]
