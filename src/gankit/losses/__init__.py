"""GAN losses and D regularisers, in one registry.

A loss is a D-loss / G-loss pair on D's raw outputs (:class:`Loss`); signs follow the
convention that both players *minimise*. A loss may bring penalties (:class:`Penalty`, e.g.
WGAN-GP's), and ``loss.r1_gamma`` / ``loss.lecam_weight`` / ``loss.drift_weight`` add R1, LeCam and drift
to any loss.
Built in: ``bce`` (non-saturating or minimax G), ``wasserstein`` (+ optional clipping),
``hinge``, ``wgan-gp``. Your own: ``@register_loss("name")`` on a :class:`Loss` subclass, or
``loss.name: my_pkg.losses:MyLoss`` / ``losses.py:MyLoss`` (constructed with ``loss.kwargs``),
which a run records so ``--resume`` rebuilds it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from gankit.config import LossConfig
from gankit.errors import GankitError
from gankit.losses.penalties import (
    R1,
    Drift,
    GradientPenalty,
    LeCam,
    Penalty,
    PenaltyInputs,
    gradient_penalty,
)


class Loss:
    """Subclass and implement :meth:`d_loss` and :meth:`g_loss`.

    ``wasserstein``: the loss estimates E[D(real)] - E[D(fake)], which is then logged.
    ``penalties``: extra D terms the loss always has (WGAN-GP's gradient penalty).
    """

    wasserstein: ClassVar[bool] = False

    def __init__(self, cfg: LossConfig | None = None, **kwargs: Any) -> None:
        self.cfg = cfg or LossConfig()
        self.penalties: list[Penalty] = []

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """D's loss on its outputs for real and for fake images; the D loss is their sum."""
        raise NotImplementedError

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class BCE(Loss):
    """-log sigmoid(D(x)) - log(1 - sigmoid(D(G(z)))); G non-saturating or minimax."""

    def d_loss(self, real, fake):
        return F.softplus(-real).mean(), F.softplus(fake).mean()

    def g_loss(self, fake):
        if self.cfg.g_mode == "minimax":  # minimise log(1 - sigmoid(fake)) = -softplus(fake)
            return -F.softplus(fake).mean()
        return F.softplus(-fake).mean()  # -log sigmoid(fake)


class Wasserstein(Loss):
    """E[D(fake)] - E[D(real)] for D, -E[D(fake)] for G (Arjovsky et al. 2017)."""

    wasserstein = True

    def d_loss(self, real, fake):
        return -real.mean(), fake.mean()

    def g_loss(self, fake):
        return -fake.mean()


class WGANGP(Wasserstein):
    """Wasserstein with the gradient penalty of Gulrajani et al. 2017 (``loss.gp_weight``)."""

    def __init__(self, cfg: LossConfig | None = None, **kwargs: Any) -> None:
        super().__init__(cfg)
        self.penalties.append(GradientPenalty(self.cfg.gp_weight))


class Hinge(Loss):
    """relu(1 - D(x)) + relu(1 + D(G(z))) for D, -D(G(z)) for G (Lim & Ye 2017)."""

    def d_loss(self, real, fake):
        return F.relu(1.0 - real).mean(), F.relu(1.0 + fake).mean()

    def g_loss(self, fake):
        return -fake.mean()


_LOSSES: dict[str, type[Loss]] = {"bce": BCE, "wasserstein": Wasserstein, "wgan-gp": WGANGP,
                                  "hinge": Hinge}
BUILTIN = tuple(_LOSSES)


def register_loss(name: str):
    """Class decorator: ``loss.name: name`` builds this :class:`Loss` subclass."""
    if not name or ":" in name or name in BUILTIN:
        raise ValueError(f"{name!r} cannot name a registered loss")

    def wrap(cls: type[Loss]) -> type[Loss]:
        _LOSSES[name] = cls
        return cls

    return wrap


def loss_class(name: str) -> type[Loss]:
    if name in _LOSSES:
        return _LOSSES[name]
    from gankit.models.registry import resolve_class

    if ":" not in name:
        raise GankitError(f"loss.name {name!r} is neither built in nor registered "
                          f"({', '.join(sorted(_LOSSES))}) nor an import path module:Class")
    cls = resolve_class("loss", name, base=Loss)
    return cls


def build_loss(cfg: LossConfig) -> Loss:
    """The loss ``cfg`` names with its penalties: its own, then R1, LeCam and drift where asked."""
    cls = loss_class(cfg.name)
    try:
        loss = cls(cfg, **cfg.kwargs)
    except TypeError as err:
        raise GankitError(f"loss.name {cfg.name}: cannot construct it with loss.kwargs="
                          f"{cfg.kwargs} ({err})") from None
    if cfg.r1_gamma:
        loss.penalties.append(R1(cfg.r1_gamma, cfg.r1_every))
    if cfg.lecam_weight:
        loss.penalties.append(LeCam(cfg.lecam_weight, cfg.lecam_decay))
    if cfg.drift_weight:
        loss.penalties.append(Drift(cfg.drift_weight))
    return loss


def d_loss_parts(name: str, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """D's loss on real and on fake outputs for the loss ``name`` (a functional shortcut)."""
    return build_loss(LossConfig(name=name)).d_loss(real, fake)


def g_loss(name: str, fake: torch.Tensor, g_mode: str = "nonsaturating") -> torch.Tensor:
    return build_loss(LossConfig(name=name, g_mode=g_mode)).g_loss(fake)


@torch.no_grad()
def clip_weights(module: torch.nn.Module, clip: float) -> None:
    """WGAN weight clipping: keep every parameter of D in [-clip, clip]."""
    for p in module.parameters():
        p.clamp_(-clip, clip)


__all__ = ["BCE", "R1", "WGANGP", "Drift", "GradientPenalty", "Hinge", "LeCam", "Loss", "LossConfig",
           "Penalty", "PenaltyInputs", "Wasserstein", "build_loss", "clip_weights",
           "d_loss_parts", "g_loss", "gradient_penalty", "register_loss"]
