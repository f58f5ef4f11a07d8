"""Precision / recall (Kynkäänniemi et al. 2019) and density / coverage (Naeem et al. 2020).

FID mixes fidelity and diversity into one number; these separate them, from the same
Inception features. Each real sample ``r`` gets a ball of radius ``rad_R(r)``, the distance to
its k-th nearest other real sample (k = 3 here, as both papers use); likewise for fakes.

* precision: the share of fakes inside at least one real ball (fidelity).
* recall: the share of reals inside at least one fake ball (diversity).
* density: the average number of real balls a fake falls in, divided by k (fidelity that
  does not saturate at 1 and is robust to real outliers).
* coverage: the share of real balls holding at least one fake (diversity, robust to fake
  outliers).
"""

from __future__ import annotations

import numpy as np
import torch

K = 3


def _pairwise(a: torch.Tensor, b: torch.Tensor, chunk: int = 2048):
    """Yield ``(start, distances of a[start:start+chunk] to all of b)``."""
    for i in range(0, len(a), chunk):
        yield i, torch.cdist(a[i : i + chunk], b)


def kth_neighbour_radii(x: torch.Tensor, k: int = K) -> torch.Tensor:
    """Distance from each row of ``x`` to its k-th nearest *other* row."""
    if len(x) <= k:
        raise ValueError(f"need more than k={k} samples, got {len(x)}")
    out = torch.empty(len(x), dtype=x.dtype, device=x.device)
    for i, d in _pairwise(x, x):
        # the row itself is at distance 0 and comes first; the k-th other is at index k
        out[i : i + len(d)] = d.topk(k + 1, dim=1, largest=False).values[:, k]
    return out


def prdc(real: np.ndarray, fake: np.ndarray, k: int = K,
         device: str | torch.device = "auto") -> dict[str, float]:
    """The four metrics of ``fake`` against ``real`` (N x D and M x D features), in float64
    on ``device`` (``auto``: the GPU when there is one; 50k x 50k distances take minutes on a
    CPU, and a DDP rank computing them keeps the others waiting in a collective)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    r = torch.as_tensor(np.asarray(real, dtype=np.float64)).to(device)
    f = torch.as_tensor(np.asarray(fake, dtype=np.float64)).to(device)
    rad_r, rad_f = kth_neighbour_radii(r, k), kth_neighbour_radii(f, k)
    in_real_balls = torch.zeros(len(f), device=f.device)  # per fake: how many real balls hold it
    covered = torch.zeros(len(r), dtype=torch.bool, device=r.device)  # per real: a fake inside
    for i, d in _pairwise(f, r):  # d: fakes i.. x reals
        inside = d <= rad_r.unsqueeze(0)
        in_real_balls[i : i + len(d)] = inside.sum(1).to(in_real_balls.dtype)
        covered |= inside.any(0)
    recalled = torch.zeros(len(r), dtype=torch.bool, device=r.device)  # per real: in a fake ball
    for i, d in _pairwise(r, f):
        recalled[i : i + len(d)] = (d <= rad_f.unsqueeze(0)).any(1)
    return {
        "precision": float((in_real_balls > 0).double().mean()),
        "recall": float(recalled.double().mean()),
        "density": float(in_real_balls.double().mean() / k),
        "coverage": float(covered.double().mean()),
        "pr_k": k, "pr_n_real": len(r), "pr_n_fake": len(f),
    }
