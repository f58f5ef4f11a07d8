"""TensorBoard logging (optional: ``pip install tensorboard``): every metrics record and the
sample grids go to ``RUN/tensorboard``, so ``tensorboard --logdir runs`` shows all runs.

``metrics.jsonl`` stays the record of truth; this is a view of the same numbers, written by
rank 0 only. Scalars are named by group: ``loss/*``, ``critic/*`` (D's mean scores), ``lr/*``,
``speed/*``, ``fid/*``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gankit.errors import GankitError

_GROUPS = {
    "d_loss_real": "loss", "d_loss_fake": "loss", "g_loss": "loss", "wasserstein": "loss",
    "gp": "loss", "d_real": "critic", "d_fake": "critic", "d_saturated": "critic",
    "g_lr": "lr", "d_lr": "lr", "real_images_per_s": "speed",
    "epoch_seconds": "speed", "fid": "fid", "kid_mean": "fid", "precision": "fid",
    "recall": "fid", "density": "fid", "coverage": "fid",
}


class TensorBoard:
    @staticmethod
    def check() -> None:
        try:
            import torch.utils.tensorboard  # noqa: F401
        except ImportError:
            raise GankitError("train.tensorboard needs the tensorboard package: "
                              "pip install tensorboard (or gankit[tensorboard])") from None

    def __init__(self, run_dir: Path) -> None:
        self.check()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def log(self, rec: dict[str, Any]) -> None:
        step = int(rec.get("step", 0))
        for key, group in _GROUPS.items():
            val = rec.get(key)
            if isinstance(val, (int, float)):
                self.writer.add_scalar(f"{group}/{key}", val, step)

    def image(self, tag: str, grid: np.ndarray, step: int) -> None:
        """A uint8 H x W x 3 image (a sample grid)."""
        self.writer.add_image(tag, grid, step, dataformats="HWC")

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
