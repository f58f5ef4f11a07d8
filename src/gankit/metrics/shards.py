"""Evaluation commands under ``torchrun``: every rank generates and embeds its share.

``gankit fid``, ``fid-stats`` and ``generate`` launched by ``torchrun --nproc_per_node=W`` split
their images into W contiguous shares (:func:`gankit.generate.shard`): rank r embeds images
``[n*r/W, n*(r+1)/W)`` of an image source, or generates exactly those of a checkpoint's draw
(the latents one process draws, sliced), and rank 0 gathers the pieces in rank order. So the
features, and hence the FID, are those of one process (up to the backend choosing other
kernels for other batch sizes), and W GPUs take 1/W of the generating and embedding. Only rank 0 computes the
Fréchet distance, writes files and prints.

Inception features are float32 values stored as float64, so they travel as float32 (half the
bytes) whenever that is lossless.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from gankit.generate import shard


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of one evaluation command."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def part(self, n: int) -> tuple[int, int]:
        """This rank's share ``[lo, hi)`` of ``n`` images."""
        return shard(n, self.rank, self.size)

    def gather(self, obj: Any) -> list[Any] | None:
        """``obj`` from every rank in rank order on rank 0; None on the others."""
        if self.size == 1:
            return [obj]
        out: list[Any] | None = [None] * self.size if self.main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (so all ranks take rank 0's decision)."""
        if self.size == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


SINGLE = World()  # one process: the default of every function that takes a world


def join() -> World:
    """The ``torchrun`` world; one process outside it. Each rank's GPU is
    ``cuda:(LOCAL_RANK mod GPUs)``, so ``cuda`` means a rank's own (or a shared one). The
    collectives are a flag and the gathered results, so gloo carries them on every device
    (NCCL would refuse ranks that share a GPU and gains nothing here)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return SINGLE
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    if not dist.is_initialized():
        dist.init_process_group("gloo")
        atexit.register(dist.destroy_process_group)
    return World(dist.get_rank(), dist.get_world_size())


def gather_features(feats: np.ndarray, world: World) -> np.ndarray | None:
    """Every rank's features concatenated in rank order, on rank 0 (None elsewhere)."""
    if world.size == 1:
        return feats
    small = feats.astype(np.float32)
    parts = world.gather(small if np.array_equal(small, feats) else feats)
    return None if parts is None else np.concatenate(parts).astype(feats.dtype)
