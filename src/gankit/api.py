"""The small, stable Python surface: what ``from gankit import ...`` offers (docs/api.md).

Kept in one place so the package's ``__init__`` can import it lazily: ``gankit --help`` does
not pay for torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gankit.config import Config
from gankit.errors import GankitError


def fid(samples: nn.Module | np.ndarray | torch.Tensor | str | Path,
        reference: str | Path = "cifar10:train", *, n: int = 10000, seed: int = 0,
        data_dir: str | Path | None = None, inception: str | Path | None = None,
        mode: str = "tf", details: bool = False) -> float | dict[str, Any]:
    """FID of ``samples`` against ``reference``, computed as ``gankit fid`` does.

    ``samples``: a generator (``n`` images are drawn with ``seed``, in eval mode), uint8 images
    (N x H x W x 3 array or N x 3 x H x W tensor), or any source ``gankit fid`` takes (a run
    folder, checkpoint, image folder, ``.npz``). ``reference``: any source, e.g.
    ``cifar10:train`` (statistics cached after the first call) or a ``mu``/``sigma`` ``.npz``.
    Returns the FID, or with ``details`` the whole record (sizes, Inception hash, mode).
    """
    from gankit.generate import sample_images
    from gankit.metrics.inception import FeatureExtractor, as_nchw_uint8
    from gankit.metrics.sources import Source, compare, load_source

    if isinstance(samples, nn.Module):
        a = Source("generator", images=sample_images(samples, n, seed))
    elif isinstance(samples, (np.ndarray, torch.Tensor)):
        arr = as_nchw_uint8(samples, "samples").permute(0, 2, 3, 1).contiguous().numpy()
        a = Source("array", images=arr)
    elif isinstance(samples, (str, Path)):
        a = load_source(str(samples), data_dir=data_dir, n=n, seed=seed)
    else:
        raise GankitError(f"fid() takes a generator, uint8 images or a source, not "
                          f"{type(samples).__name__}")
    resolution = a.images.shape[1] if a.images is not None else None
    b = load_source(str(reference), data_dir=data_dir, resolution=resolution)
    rec = compare(a, b, FeatureExtractor(inception, mode=mode))
    return rec if details else float(rec["fid"])


def load_config(path: str | Path) -> Config:
    """The resolved config of a run folder or checkpoint (what trained it)."""
    from gankit.training import checkpoint
    from gankit.training.loop import load_run_config

    path = Path(path)
    if path.is_dir():
        return load_run_config(path)
    return checkpoint.load_config(path)[0]
