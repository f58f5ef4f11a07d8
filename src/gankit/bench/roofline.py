"""The roofline of a training step: what the device's matrix units can do, and how much
arithmetic one training image costs, so a measured throughput can be read as a share of the
possible one.

Peak: the median throughput of a square ``n x n`` matmul in each precision (what conv and
linear layers reduce to). Cost: ``torch.utils.flop_counter`` over one complete training
iteration (D steps and G step, forward and backward), divided by the training images it
consumes. Both are measured here, never looked up.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from gankit.config import Config

CPU = torch.device("cpu")


def gemm_gflops(dtype: torch.dtype, device: torch.device = CPU, n: int = 2048,
                repeats: int = 5) -> float:
    """Median GFLOP/s of an ``n x n`` matmul in ``dtype`` on ``device``."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(2):
        a @ b
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def flops_per_image(cfg: Config) -> dict[str, Any]:
    """FLOPs of one training iteration per training image consumed, in fp32 on the CPU,
    with the split into G and D forward passes for one image."""
    from gankit.models import build_models
    from gankit.training.runtime import Runtime
    from gankit.training.step import GANStep

    with torch.random.fork_rng():
        torch.manual_seed(0)
        g, d = build_models(cfg)
        step = GANStep(cfg, g, d, Runtime(torch.device("cpu"), None, False),
                       torch.Generator().manual_seed(0))
        r = cfg.data.resolution
        reals = [torch.rand(step.n_real, 3, r, r) * 2 - 1 for _ in range(cfg.optim.n_dis)]
        with FlopCounterMode(display=False) as fc:
            step(reals)
        total = fc.get_total_flops()
        with torch.no_grad(), FlopCounterMode(display=False) as fg:
            x = g.eval()(torch.randn(1, cfg.generator.latent_dim))
        with torch.no_grad(), FlopCounterMode(display=False) as fd:
            d.eval()(x)
    images = step.n_real * cfg.optim.n_dis
    return {"gflop_per_image": total / images / 1e9, "g_forward_gflop": fg.get_total_flops() / 1e9,
            "d_forward_gflop": fd.get_total_flops() / 1e9, "images_per_iteration": images}


def inception_gflops(weights: str) -> float:
    """FLOPs of one 299x299 image through the FID Inception network (11.42 GFLOP)."""
    net = torch.jit.load(weights, map_location="cpu").eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        net(torch.zeros(1, 3, 299, 299))
    return fc.get_total_flops() / 1e9


def share(images_per_s: float, gflop_per_image: float, peak_gflops: float) -> float:
    """The fraction of the matrix peak a measured throughput uses."""
    return images_per_s * gflop_per_image / peak_gflops
