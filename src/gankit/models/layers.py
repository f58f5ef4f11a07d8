"""Small building blocks shared by G, D and attention."""

from __future__ import annotations

from typing import Literal

from torch import nn

SNImpl = Literal["parametrization", "legacy"]


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
