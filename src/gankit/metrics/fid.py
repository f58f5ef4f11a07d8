"""Fréchet Inception Distance and Kernel Inception Distance from pool3 features.

Statistics are float64. The Fréchet distance uses ``scipy.linalg.sqrtm`` with the standard
guards of the TTUR / pytorch-fid code: an epsilon offset on the diagonals when the product
has no finite square root (with a warning), and tiny imaginary parts dropped. ``eigh`` is a
faster, symmetric formulation (tr sqrt(S1^1/2 S2 S1^1/2)) checked against scipy in the tests.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg

from gankit.errors import GankitError
from gankit.io import atomic_path


@dataclass
class Stats:
    mu: np.ndarray
    sigma: np.ndarray
    n: int
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_features(cls, feats: np.ndarray, meta: dict[str, Any] | None = None) -> Stats:
        feats = np.asarray(feats, dtype=np.float64)
        if feats.ndim != 2 or len(feats) < 2:
            raise GankitError(f"need at least 2 feature vectors, got shape {feats.shape}")
        return cls(feats.mean(0), np.cov(feats, rowvar=False), len(feats), dict(meta or {}))

    def save(self, path: Path) -> None:
        meta = {k: np.asarray(str(v)) for k, v in self.meta.items()}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, mu=self.mu, sigma=self.sigma, n=np.asarray(self.n), **meta)

    @classmethod
    def load(cls, path: Path) -> Stats:
        try:
            with np.load(path, allow_pickle=False) as z:
                if "mu" not in z or "sigma" not in z:
                    raise GankitError(f"{path} is not a statistics file (no 'mu'/'sigma')")
                mu, sigma = z["mu"].astype(np.float64), z["sigma"].astype(np.float64)
                n = int(z["n"]) if "n" in z else 0
                meta = {k: str(z[k]) for k in z.files if k not in ("mu", "sigma", "n")}
        except (OSError, ValueError) as err:
            raise GankitError(f"cannot read statistics {path}: {err}") from None
        if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
            raise GankitError(f"{path}: mu {mu.shape} and sigma {sigma.shape} do not match")
        return cls(mu, sigma, n, meta)


def _trace_sqrt_product_eigh(s1: np.ndarray, s2: np.ndarray) -> float:
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root1 @ s2 @ root1
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())


def _sqrtm(m: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # scipy's own "singular matrix" note; we warn ourselves
        warnings.simplefilter("ignore")
        return scipy.linalg.sqrtm(m)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
    eps: float = 1e-6, method: str = "scipy",
) -> float:
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (len(mu1), len(mu1)):
        raise GankitError(f"statistics differ in shape: {mu1.shape}/{s1.shape} vs "
                          f"{mu2.shape}/{s2.shape}")
    diff = mu1 - mu2
    if method == "eigh":
        tr_covmean = _trace_sqrt_product_eigh(s1, s2)
    elif method == "scipy":
        covmean = _sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            warnings.warn(
                f"FID: product of covariances is singular; adding {eps} to the diagonals",
                RuntimeWarning, stacklevel=2,
            )
            offset = np.eye(len(s1)) * eps
            covmean = _sqrtm((s1 + offset) @ (s2 + offset))
        if np.iscomplexobj(covmean):
            if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
                raise GankitError(f"FID: imaginary component {np.abs(covmean.imag).max():.3g}")
            covmean = covmean.real
        tr_covmean = float(np.trace(covmean))
    else:
        raise GankitError(f"unknown Fréchet method {method!r}; use scipy or eigh")
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def fid_from_stats(a: Stats, b: Stats, method: str = "scipy") -> float:
    dim = len(a.mu)
    if min(a.n, b.n) and min(a.n, b.n) <= dim:
        warnings.warn(
            f"FID: {min(a.n, b.n)} samples <= {dim} feature dimensions, so the covariance is "
            "singular and FID is biased upwards; use more samples for comparable numbers",
            RuntimeWarning, stacklevel=2,
        )
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma, method=method)


def kid(
    f1: np.ndarray, f2: np.ndarray, n_subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Unbiased MMD^2 with the cubic polynomial kernel, mean and std over random subsets."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    m = min(len(f1), len(f2), subset_size)
    if m < 2:
        raise GankitError("KID needs at least 2 images on each side")
    d = f1.shape[1]
    rng = np.random.default_rng(seed)
    vals = np.empty(n_subsets)
    for i in range(n_subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        b = (x @ y.T / d + 1) ** 3
        t = (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
        vals[i] = t / m
    return float(vals.mean()), float(vals.std())
