"""Small building blocks shared by G, D and attention."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils import parametrize

SNImpl = Literal["parametrization", "legacy"]
Init = Literal["default", "dcgan", "xavier", "orthogonal"]


def maybe_sn(module: nn.Module, enabled: bool, impl: SNImpl = "parametrization") -> nn.Module:
    """Wrap ``module`` in spectral norm.

    ``parametrization`` (default) is ``torch.nn.utils.parametrizations.spectral_norm``, which
    works with ``torch.compile``; ``legacy`` is the older hook-based version that a plain
    user loop would use (kept for the side-by-side benchmark).
    """
    if not enabled:
        return module
    if impl == "legacy":
        return nn.utils.spectral_norm(module)
    return nn.utils.parametrizations.spectral_norm(module)


def activation(name: str, slope: float) -> nn.Module:
    if name == "leakyrelu":
        return nn.LeakyReLU(slope)
    if name == "relu":
        return nn.ReLU()
    return nn.Identity()


def norm2d(name: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if name == "batch" else nn.Identity()


def head_gain(gain: float | str, fan_in: int) -> float:
    """The factor on D's pre-activation: ``inv_sqrt_fan_in`` gives ``1/sqrt(fan_in)``.

    Why: a spectrally-normalised linear head has ``||w|| <= 1``, so over ``fan_in``
    batch-normed (unit-variance) features its output can reach ``sqrt(fan_in)`` — 64 for
    reference design 2's 4,096 features — which pins a tanh critic at +-1 within 100 steps.
    Dividing by ``sqrt(fan_in)`` keeps the pre-activation O(1) whatever the width or resolution.
    """
    return fan_in ** -0.5 if gain == "inv_sqrt_fan_in" else float(gain)


def critic_output(pre: torch.Tensor, gain: float, output: str) -> torch.Tensor:
    """D's output from its head's ``(N, 1)`` pre-activation: scaled, then tanh where asked
    (sigmoid D returns the logit; the BCE loss applies the sigmoid, the stable form)."""
    out = pre.squeeze(1) * gain if gain != 1.0 else pre.squeeze(1)
    return torch.tanh(out) if output == "tanh" else out


def _init_layer(m: nn.Module, scheme: Init) -> None:
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        if scheme == "dcgan" and m.affine:  # Radford et al.: BN scale ~ N(1, 0.02)
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
        return
    if scheme == "xavier":  # a layer may carry its own gain (SNGAN: sqrt(2) in residual convs)
        nn.init.xavier_uniform_(m.weight, getattr(m, "init_gain", 1.0))
    else:
        {"dcgan": lambda w: nn.init.normal_(w, 0.0, 0.02),
         "orthogonal": nn.init.orthogonal_}[scheme](m.weight)
    if m.bias is not None:
        nn.init.zeros_(m.bias)


@torch.no_grad()
def init_weights(model: nn.Module, scheme: Init) -> nn.Module:
    """Re-initialise every conv / linear / batch-norm layer of ``model`` with ``scheme``.

    ``default`` keeps PyTorch's init. ``dcgan`` is Radford et al.'s N(0, 0.02) (BN scale
    N(1, 0.02)) that the DCGAN recipe depends on; ``xavier`` (SNGAN, Mimicry: a layer's
    ``init_gain`` attribute, sqrt(2) in ResNet residual convs, else 1) and
    ``orthogonal`` (BigGAN) are the ResNet-GAN choices. A spectrally normalised layer is
    unwrapped, initialised and wrapped again (public APIs), so its power-iteration vectors
    start from the new weight rather than the discarded one.
    """
    if scheme == "default":
        return model
    layers = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.modules.batchnorm._BatchNorm)
    for m in [m for m in model.modules() if isinstance(m, layers)]:
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
            _init_layer(m, scheme)
            nn.utils.parametrizations.spectral_norm(m)
        elif hasattr(m, "weight_orig"):  # hook-based (legacy) spectral norm
            nn.utils.remove_spectral_norm(m)
            _init_layer(m, scheme)
            nn.utils.spectral_norm(m)
        else:
            _init_layer(m, scheme)
    return model
