"""An exponential moving average of the generator's weights.

Averaging G's weights over the last few hundred or thousand steps gives markedly better
samples and FID than the last iterate (Yazici et al. 2019; used by BigGAN and StyleGAN).
Parameters are averaged; buffers (batch-norm running statistics, spectral-norm ``u``/``v``)
are copied from the trained G, because an average of running statistics does not describe
the averaged network's activations any better and ``u``/``v`` are power-iteration state.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float, warmup: bool = True) -> None:
        self.decay, self.warmup = decay, warmup
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    def current_decay(self) -> float:
        """``min(decay, (1 + t) / (10 + t))`` with warm-up, else ``decay`` (t: updates so far)."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        beta = self.current_decay()
        ema_p = list(self.model.parameters())
        torch._foreach_lerp_(ema_p, [p.detach() for p in model.parameters()], 1.0 - beta)
        for b_ema, b in zip(self.model.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)
        self.updates += 1
