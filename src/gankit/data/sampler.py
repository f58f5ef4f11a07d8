"""Batches from an in-memory uint8 tensor with no per-image Python work.

The whole split stays as one ``N x 3 x 32 x 32`` uint8 tensor (150 MB for CIFAR-10 train,
on the training device). An epoch is one random permutation drawn from a dedicated
``torch.Generator`` whose state is checkpointed, so resumed runs see the same batches. Under
DDP every rank holds the same generator and so draws the *same* permutation; global batch
``j`` of the epoch is ``perm[j*b:(j+1)*b]`` and rank ``r`` takes batches ``r, r+W, r+2W, ...``,
so an epoch shows every image once across the ranks, and ``W`` ranks at batch ``b`` see
exactly the batches one process sees at batch ``W*b``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range of G's tanh output."""
    return images.float().mul_(2.0 / 255.0).sub_(1.0)


class BatchSampler:
    def __init__(
        self,
        images: torch.Tensor,
        batch_size: int,
        generator: torch.Generator,
        hflip: bool = False,
        rank: int = 0,
        world_size: int = 1,
        labels: torch.Tensor | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError("images must be a uint8 N x C x H x W tensor")
        if batch_size * world_size > len(images):
            raise ValueError(f"batch size {batch_size} x {world_size} ranks exceeds the "
                             f"{len(images)} images")
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.generator = generator
        self.hflip = hflip
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        """Batches per rank per epoch (the last partial global batch is dropped)."""
        return len(self.images) // (self.batch_size * self.world_size)

    def epoch(self, start: int = 0) -> Iterator[torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        """Draw this epoch's order now; yield float batches in [-1, 1] from batch ``start``
        (``(images, labels)`` when the sampler has labels).

        The permutation is drawn eagerly, so the generator's state after this call is the
        same whether the epoch is then consumed from its beginning or from ``start``.
        """
        n = len(self.images)
        perm = torch.randperm(n, generator=self.generator).to(self.images.device)
        flips = torch.rand(n, generator=self.generator).to(self.images.device) < 0.5
        return self._batches(perm, flips, start)

    def _batches(self, perm: torch.Tensor, flips: torch.Tensor, start: int
                 ) -> Iterator[torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        b = self.batch_size
        for i in range(start, len(self)):
            j = i * self.world_size + self.rank
            idx = perm[j * b : (j + 1) * b]
            x = to_float(self.images.index_select(0, idx))
            if self.hflip:
                x = torch.where(flips[idx].view(-1, 1, 1, 1), x.flip(3), x)
            yield x if self.labels is None else (x, self.labels.index_select(0, idx))
