"""An exponential moving average of the generator's weights.

Averaging G's weights over the last few hundred or thousand steps gives markedly better
samples and FID than the last iterate (Yazici et al. 2019; used by BigGAN and StyleGAN).
Parameters are averaged; buffers (spectral-norm ``u``/``v``, batch-norm counters) are copied
from the trained G each step. Batch-norm running statistics describe the trained G's
activations, not the averaged G's, so before the averaged G is used (samples, FID, a
checkpoint) they are recomputed for its own weights from a fixed set of latents: the
"standing statistics" of BigGAN (Brock et al. 2019).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from gankit.models.layers import balanced_labels, call, n_classes_of

# Latents for the standing statistics: fixed (a run, its resume and `generate` compute the same
# numbers) and drawn from their own generator (training's RNG streams are not touched).
STANDING_SEED = 2**31 - 1
STANDING_BATCHES, STANDING_BATCH_SIZE = 8, 256


@torch.no_grad()
def standing_statistics(g: nn.Module, batches: int = STANDING_BATCHES,
                        batch_size: int = STANDING_BATCH_SIZE, seed: int = STANDING_SEED) -> bool:
    """Recompute G's batch-norm running statistics for its current weights: the equal-weight
    average of the batch statistics over ``batches`` batches of latents. Only the batch-norm
    layers run in training mode (no spectral-norm power iteration, no dropout); G keeps the
    mode it came in. Returns False (and does nothing) when G has no batch norm."""
    bns = [m for m in g.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return False
    device = next(g.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    modes = [(m, m.training) for m in g.modules()]
    momenta = [b.momentum for b in bns]
    g.eval()
    try:
        for b in bns:
            b.reset_running_stats()
            b.momentum = None  # cumulative average over the batches
            b.train()
        k = n_classes_of(g)  # a conditional G: every class equally often
        y = balanced_labels(batch_size, k, device) if k else None
        for _ in range(batches):
            call(g, torch.randn(batch_size, g.latent_dim, generator=gen).to(device), y)
    finally:
        for b, m in zip(bns, momenta, strict=True):
            b.momentum = m
        for m, training in modes:
            m.train(training)
    return True


class EMA:
    def __init__(self, model: nn.Module, decay: float, warmup: bool = True) -> None:
        self.decay, self.warmup = decay, warmup
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0
        self._standing_at = -1  # the update count the batch-norm statistics were computed at

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

    def averaged(self) -> nn.Module:
        """The averaged G, ready to use: its batch-norm statistics recomputed for its weights
        (once per update, however often it is asked for)."""
        if self._standing_at != self.updates:
            standing_statistics(self.model)
            self._standing_at = self.updates
        return self.model
