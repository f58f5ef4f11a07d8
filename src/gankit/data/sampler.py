"""Batches from an in-memory uint8 tensor with no per-image Python work.

The whole split stays as one ``N x 3 x 32 x 32`` uint8 tensor (150 MB for CIFAR-10 train,
on the training device). An epoch is one random permutation drawn from a dedicated
``torch.Generator`` whose state is checkpointed, so resumed runs see the same batches.
"""

from __future__ import annotations

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
        shards: int = 1,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError("images must be a uint8 N x C x H x W tensor")
        if batch_size > len(images):
            raise ValueError(f"batch size {batch_size} exceeds the {len(images)} images")
        self.images = images
        self.batch_size = batch_size
        self.generator = generator
        self.hflip = hflip
        self.shards = shards  # DDP: each rank draws its own permutation, 1/shards of an epoch


    def __len__(self) -> int:
        return len(self.images) // (self.batch_size * self.shards)

    def epoch(self):
        """Yield float batches in [-1, 1] covering one shuffled pass (last partial dropped)."""
        n, b = len(self.images), self.batch_size
        perm = torch.randperm(n, generator=self.generator).to(self.images.device)
        flips = torch.rand(n, generator=self.generator).to(self.images.device) < 0.5
        for i in range(len(self)):
            idx = perm[i * b : (i + 1) * b]
            x = to_float(self.images.index_select(0, idx))
            if self.hflip:
                x = torch.where(flips[idx].view(-1, 1, 1, 1), x.flip(3), x)
            yield x
