"""Image conversion, PNG grids and GIF animations (all written atomically)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gankit.io import atomic_path


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Float images in [-1, 1], N x 3 x H x W -> uint8 N x H x W x 3 (rounded, clamped)."""
    x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def make_grid(images: np.ndarray, ncol: int | None = None, pad: int = 2) -> np.ndarray:
    """uint8 N x H x W x 3 -> one uint8 image with a ``pad``-pixel white border between tiles."""
    n, h, w, c = images.shape
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), 255, np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y : y + h, x : x + w] = img
    return grid


def save_png(path: str | Path, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def save_grid(path: str | Path, images: np.ndarray, ncol: int | None = None) -> None:
    save_png(path, make_grid(images, ncol))


def save_gif(path: str | Path, frames: list[np.ndarray], ms_per_frame: int = 250,
             last_ms: int = 1500) -> None:
    """An endlessly looping GIF; the last frame is held longer so the end result is seen."""
    images = [Image.fromarray(f) for f in frames]
    durations = [ms_per_frame] * (len(images) - 1) + [last_ms]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=durations, loop=0)


def progress_animation(run_dir: str | Path, max_frames: int = 60) -> Path | None:
    """``samples/progress.gif``: the fixed-latent grids of every sampled epoch in order
    (evenly thinned to ``max_frames``, the last always kept); None before two grids exist."""
    samples = Path(run_dir) / "samples"
    paths = sorted(samples.glob("epoch-*.png"), key=lambda p: int(p.stem.split("-")[1]))
    if len(paths) < 2:
        return None
    if len(paths) > max_frames:
        idx = np.linspace(0, len(paths) - 1, max_frames).round().astype(int)
        paths = [paths[i] for i in sorted(set(idx))]
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    out = samples / "progress.gif"
    save_gif(out, frames)
    return out
