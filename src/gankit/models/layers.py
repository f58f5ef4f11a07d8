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


def norm2d(name: str, channels: int, n_classes: int = 0, affine: bool = True) -> nn.Module:
    """Batch norm (``batch``), conditional batch norm (``batch`` with classes) or nothing.

    ``affine=False`` drops batch norm's learnable scale and shift: in a spectrally-normalised
    critic they are the only weights no norm bounds (docs/design2.md)."""
    if name != "batch":
        return nn.Identity()
    if n_classes:
        return ConditionalBatchNorm2d(channels, n_classes)
    return nn.BatchNorm2d(channels, affine=affine)


class Conditional(nn.Module):
    """A layer whose forward takes the class labels too: ``forward(x, y)``."""


class ConditionalBatchNorm2d(Conditional):
    """Batch norm whose scale and shift are per class (de Vries et al. 2017; Miyato & Koyama
    2018; BigGAN): ``BN(x) * gain[y] + bias[y]`` with BN's own affine off. The tables start
    at the identity (gain 1, bias 0), so an untrained conditional G is the unconditional one.
    The running statistics are shared by all classes, as in those papers."""

    def __init__(self, channels: int, n_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(n_classes, channels)
        self.bias = nn.Embedding(n_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.bn(x)
        return h * self.gain(y)[:, :, None, None] + self.bias(y)[:, :, None, None]


def n_classes_of(m: nn.Module) -> int:
    """The classes a (conditional) model was built for; 0 for an unconditional one."""
    return int(getattr(m, "n_classes", 0) or 0)


def balanced_labels(n: int, n_classes: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``0, 1, ..., K-1, 0, 1, ...``: ``n`` labels with every class equally often (up to one),
    the standard class-balanced protocol for sampling and scoring a conditional G."""
    return torch.arange(n, device=device) % n_classes


def call(m: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None):
    """``m(x)``, or ``m(x, y)`` when there are labels (a conditional G or D)."""
    return m(x) if y is None else m(x, y)


def apply(m: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """``m(x, y)`` for a :class:`Conditional` layer, else ``m(x)``."""
    return m(x, y) if isinstance(m, Conditional) else m(x)


class CondSequential(nn.Sequential):
    """``nn.Sequential`` that hands the labels to its :class:`Conditional` members (same
    state-dict keys as ``nn.Sequential``, so unconditional checkpoints load unchanged)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        for m in self:
            x = apply(m, x, y)
        return x


class ProjectionHead(nn.Module):
    """The class-conditional part of a projection discriminator (Miyato & Koyama 2018):
    ``<embed(y), h>`` added to the unconditional head ``psi(h)``; spectral norm on the
    embedding where D has it. Initialised as in their code (Xavier uniform)."""

    def __init__(self, n_classes: int, features: int, sn: bool, impl: SNImpl) -> None:
        super().__init__()
        embed = nn.Embedding(n_classes, features)
        nn.init.xavier_uniform_(embed.weight)
        self.embed = maybe_sn(embed, sn, impl)

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (self.embed(y) * h).sum(1, keepdim=True)


class ClassHead(nn.Module):
    """AC-GAN's auxiliary classifier (Odena et al. 2017): class logits from D's features."""

    def __init__(self, n_classes: int, features: int, sn: bool, impl: SNImpl) -> None:
        super().__init__()
        self.linear = maybe_sn(nn.Linear(features, n_classes), sn, impl)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(h)


def conditional_head(kind: str, n_classes: int, features: int, sn: bool,
                     impl: SNImpl) -> nn.Module | None:
    """D's class head for ``cond.discriminator``: a projection, an AC classifier, or none."""
    if not n_classes:
        return None
    if kind == "projection":
        return ProjectionHead(n_classes, features, sn, impl)
    return ClassHead(n_classes, features, sn, impl)


def d_output(head_out: torch.Tensor, h: torch.Tensor, y: torch.Tensor | None,
             cond: nn.Module | None, gain: float, output: str
             ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """D's result from its head's pre-activation and features ``h``: the score, plus the
    projection term (before the gain and tanh) or, for AC-GAN, ``(score, class logits)``."""
    if isinstance(cond, ProjectionHead):
        if y is None:
            raise ValueError("a projection discriminator needs the class labels")
        head_out = head_out + cond(h, y)
    score = critic_output(head_out, gain, output)
    return (score, cond(h)) if isinstance(cond, ClassHead) else score


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
