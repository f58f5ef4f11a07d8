"""DiffAugment (Zhao et al., NeurIPS 2020): differentiable augmentation of D's inputs.

Every image the discriminator sees, real or generated, in D's step and in G's step, goes
through the same random transforms; because they are differentiable, G's gradient flows
through them, and D cannot tell real from fake by the augmentation itself. Each transform
draws its parameters per sample from torch's global RNG (checkpointed, so resume is exact).

* ``color``: brightness shift in [-0.5, 0.5], saturation scale in [0, 2], contrast scale in
  [0.5, 1.5] (images in [-1, 1]).
* ``translation``: an integer shift of up to ``ratio * size`` pixels in each direction,
  zeros shifted in.
* ``cutout``: a square of side ``ratio * size`` at a random position set to zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _rand(n: int, x: torch.Tensor) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype)


def color(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[0]
    x = x + (_rand(n, x) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (2 * _rand(n, x)) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(n, x) + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by whole pixels: a nearest-neighbour resampling at exact pixel
    centres, which copies pixels (and their gradients) and reads zeros outside."""
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (n,), device=x.device)
    dx = torch.randint(-sx, sx + 1, (n,), device=x.device)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=torch.float32)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = -2.0 * dx.float() / w  # output pixel j reads input j - dx
    theta[:, 1, 2] = -2.0 * dy.float() / h
    grid = F.affine_grid(theta, [n, x.shape[1], h, w], align_corners=False).to(x.dtype)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(-(ch // 2), h - ch // 2 + 1, (n, 1, 1), device=x.device)
    left = torch.randint(-(cw // 2), w - cw // 2 + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


class DiffAugment:
    """The configured transforms in the paper's order (color, translation, cutout)."""

    def __init__(self, policy: list[str], translation_ratio: float = 0.125,
                 cutout_ratio: float = 0.5) -> None:
        self.policy = [p for p in ("color", "translation", "cutout") if p in policy]
        self.translation_ratio, self.cutout_ratio = translation_ratio, cutout_ratio

    def __bool__(self) -> bool:
        return bool(self.policy)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for p in self.policy:
            if p == "color":
                x = color(x)
            elif p == "translation":
                x = translation(x, self.translation_ratio)
            else:
                x = cutout(x, self.cutout_ratio)
        return x
