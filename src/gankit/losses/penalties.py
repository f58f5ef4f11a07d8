"""D regularisers added to a loss: the WGAN-GP gradient penalty, R1, LeCam and drift.

Each is called once per D update with :class:`PenaltyInputs` and returns its *unweighted*
value (what is logged); the D loss adds ``weight`` times it. Penalties that take a gradient
of D's output with respect to its input (GP, R1) set ``double_backward``: D's training forward
is then not compiled, because aot_autograd cannot differentiate twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch


@dataclass
class PenaltyInputs:
    """What one D update knows: D itself, the images it saw (after DiffAugment), its outputs
    on them (fp32), the 0-based index of this D update, the GradScaler's scale (fp16), and
    whether this step is one of several DDP ranks' (then a penalty may all-reduce), and whether
    D's scores are tanh'd."""

    d: Callable[[torch.Tensor], torch.Tensor]
    real: torch.Tensor
    fake: torch.Tensor
    out_real: torch.Tensor
    out_fake: torch.Tensor
    d_update: int
    scale: float = 1.0
    distributed: bool = False
    tanh: bool = False  # D's scores are tanh of its pre-activation (a bounded critic)


class Penalty:
    name: ClassVar[str] = ""
    double_backward: ClassVar[bool] = False

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def __call__(self, x: PenaltyInputs) -> torch.Tensor:
        raise NotImplementedError

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors that resume needs (LeCam's anchors); most penalties are stateless."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        pass


def _input_grad(d: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                scale: float) -> torch.Tensor:
    """dD(x)/dx with a graph for the second backward. ``scale``: the GradScaler's scale under
    fp16 (torch.amp's gradient-penalty recipe): the output is multiplied by it before the
    input gradient is taken and the gradient divided after, so small gradients survive."""
    x = x.detach().requires_grad_(True)
    out = d(x)
    (grad,) = torch.autograd.grad(out.float().sum() * scale, x, create_graph=True)
    return grad.float() / scale


def gradient_penalty(d: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """E[(||grad D(x_hat)||_2 - 1)^2] on random interpolates x_hat (Gulrajani et al. 2017)."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = alpha * real.detach() + (1 - alpha) * fake.detach()
    grad = _input_grad(d, x_hat, scale)
    return (grad.flatten(1).norm(dim=1) - 1.0).pow(2).mean()


class GradientPenalty(Penalty):
    name = "gp"
    double_backward = True

    def __call__(self, x: PenaltyInputs) -> torch.Tensor:
        return gradient_penalty(x.d, x.real, x.fake, x.scale)


class R1(Penalty):
    """R1 (Mescheder et al. 2018): (gamma / 2) E_real ||grad_x D(x)||^2, on real images only.

    Lazy (StyleGAN2): computed on every ``every``-th D update and multiplied by ``every`` there,
    so its average over updates is the full penalty at 1/``every`` of the cost; the logged
    ``r1`` is that average's per-update term (0 between the lazy updates). The extra forward of
    D on the real batch runs in train mode, so a batch-norm D updates its running statistics
    once more on those updates.
    """

    name = "r1"
    double_backward = True

    def __init__(self, gamma: float, every: int = 16) -> None:
        super().__init__(gamma / 2)
        self.every = every

    def __call__(self, x: PenaltyInputs) -> torch.Tensor:
        if x.d_update % self.every:
            return torch.zeros((), device=x.real.device)
        grad = _input_grad(x.d, x.real, x.scale)
        return grad.pow(2).flatten(1).sum(1).mean() * self.every


class LeCam(Penalty):
    """LeCam regulariser (Tseng et al. 2021, eq. 3): E||D(x) - a_F||^2 + E||D(G(z)) - a_R||^2,
    where a_R / a_F are exponential moving averages (``decay``) of D's mean output on real /
    fake images, updated with this batch before the term is taken (as the authors' code does).

    It anchors real outputs to the fakes' average and vice versa, so D cannot push them apart
    without bound on little data. The anchors are averaged over DDP ranks (so every rank holds
    the same ones, as one process would) and saved in the checkpoint (resume is exact).
    """

    name = "lecam"

    def __init__(self, weight: float, decay: float = 0.99) -> None:
        super().__init__(weight)
        self.decay = decay
        self.anchors: torch.Tensor | None = None  # [a_R, a_F], on D's device

    def __call__(self, x: PenaltyInputs) -> torch.Tensor:
        means = torch.stack([x.out_real.detach().mean(), x.out_fake.detach().mean()])
        if x.distributed:  # not merely "a process group exists": the tuner times one rank alone
            torch.distributed.all_reduce(means)
            means /= torch.distributed.get_world_size()
        if self.anchors is None:
            self.anchors = torch.zeros(2, device=means.device)
        self.anchors = self.anchors.to(means.device)  # a no-op but after a resume
        self.anchors.mul_(self.decay).add_(means, alpha=1 - self.decay)
        a_real, a_fake = self.anchors[0], self.anchors[1]
        return (x.out_real - a_fake).pow(2).mean() + (x.out_fake - a_real).pow(2).mean()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {} if self.anchors is None else {"anchors": self.anchors.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.anchors = None
        if "anchors" in state:
            self.anchors = state["anchors"].clone()


class Drift(Penalty):
    """Drift: E[s(x)^2] + E[s(G(z))^2] on D's pre-activation s — D's score itself, or
    atanh of it for a tanh critic (Karras et al. 2018's epsilon-drift, there on real scores).

    Why the pre-activation: a tanh critic trained with the Wasserstein loss gains from any
    common scale of s while it separates real from fake, and batch norm's affine scale in D is
    such a scale, so s grows until tanh' ~ 0 and G gets no gradient (docs/design2.md). A
    penalty on D's *output* vanishes there with tanh'; one on s does not, so D's scores settle
    where weight * 2|s| balances tanh'(s) (|s| ~ 2, |D| ~ 0.96 at weight 0.02 on fully
    separated batches). A fully pinned score (|s| > 8 in fp32) is clamped and gives none.
    """

    name = "drift"
    LIMIT = 1.0 - 1e-7  # atanh stays finite on a saturated fp32 tanh

    def __call__(self, x: PenaltyInputs) -> torch.Tensor:
        def pre(out: torch.Tensor) -> torch.Tensor:
            return torch.atanh(out.float().clamp(-self.LIMIT, self.LIMIT)) if x.tanh else out.float()

        return pre(x.out_real).pow(2).mean() + pre(x.out_fake).pow(2).mean()


__all__ = ["R1", "Drift", "GradientPenalty", "LeCam", "Penalty", "PenaltyInputs",
           "gradient_penalty"]
