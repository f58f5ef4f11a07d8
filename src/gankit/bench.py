"""``gankit bench``: gankit's training step and FID feature path against the plain versions,
side by side in one process (interleaved repeats, so machine noise hits both alike).

The plain loop is what a user would write: float32, contiguous NCHW, eager, hook-based
``torch.nn.utils.spectral_norm``, default Adam, separate D passes for real and fake, and a G
update that back-propagates through D's weights too.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from gankit.config import Config, resolve
from gankit.losses import d_loss_parts, g_loss
from gankit.models import build_models
from gankit.training.runtime import setup
from gankit.training.step import GANStep


class PlainStep:
    """The reference loop a user would write (see module docstring)."""

    def __init__(self, cfg: Config) -> None:
        torch.manual_seed(0)
        self.cfg = cfg
        self.g, self.d = build_models(cfg, sn_impl="legacy")
        o = cfg.optim
        self.g_opt = torch.optim.Adam(self.g.parameters(), lr=o.g_lr, betas=o.g_betas)
        self.d_opt = torch.optim.Adam(self.d.parameters(), lr=o.d_lr, betas=o.d_betas)
        b = cfg.train.batch_size
        self.n_real = b // 2 if cfg.train.d_batch == "half" else b

    def __call__(self, real: torch.Tensor) -> None:
        name, latent, b = self.cfg.loss.name, self.cfg.generator.latent_dim, self.cfg.train.batch_size
        fake = self.g(torch.randn(self.n_real, latent)).detach()
        lr, lf = d_loss_parts(name, self.d(real), self.d(fake))
        self.d_opt.zero_grad()
        (lr + lf).backward()
        self.d_opt.step()
        lg = g_loss(name, self.d(self.g(torch.randn(b, latent))))
        self.g_opt.zero_grad()
        lg.backward()
        self.g_opt.step()
        lg.item()  # the per-step .item() a plain loop does for logging


def fast_step(cfg: Config, compile_: bool = False) -> Callable[[torch.Tensor], None]:
    """gankit's step with its default perf settings (what ``gankit train`` runs)."""
    torch.manual_seed(0)
    rt = setup(cfg.perf)
    g, d = build_models(cfg)
    fmt = torch.channels_last if rt.channels_last else torch.contiguous_format
    g, d = g.to(memory_format=fmt), d.to(memory_format=fmt)
    if compile_:
        g, d = torch.compile(g), torch.compile(d)
    step = GANStep(cfg, g, d, rt, torch.Generator().manual_seed(0))
    return lambda real: step([real])


def time_pair(
    fns: dict[str, Callable[[torch.Tensor], None]], real: torch.Tensor, images_per_step: int,
    steps: int, repeats: int, warmup: int,
) -> dict[str, dict[str, float]]:
    """Interleave repeats of each function; images/s per repeat, min/median summarised."""
    for fn in fns.values():
        for _ in range(warmup):
            fn(real)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            for _ in range(steps):
                fn(real)
            times[k].append((time.perf_counter() - t) / steps)
    out = {}
    for k, ts in times.items():
        med = statistics.median(ts)
        out[k] = {"ms_step_median": med * 1e3, "ms_step_min": min(ts) * 1e3,
                  "images_per_s_median": images_per_step / med,
                  "images_per_s_best": images_per_step / min(ts)}
    return out


def bench_training(presets: list[str], batches: list[int | None], steps: int, repeats: int,
                   warmup: int, compile_: bool, log: Callable[[str], None]) -> list[dict[str, Any]]:
    rows = []
    for preset in presets:
        for b in batches:
            sets = [] if b is None else [f"train.batch_size={b}"]
            cfg = resolve(preset, sets)
            bs = cfg.train.batch_size
            n_real = bs // 2 if cfg.train.d_batch == "half" else bs
            real = torch.rand(n_real, 3, 32, 32) * 2 - 1
            res = time_pair({"fp32 eager": PlainStep(cfg), "gankit": fast_step(cfg, compile_)},
                            real, bs, steps, repeats, warmup)
            ratio = res["fp32 eager"]["ms_step_median"] / res["gankit"]["ms_step_median"]
            row = {"preset": preset, "batch": bs, "batch_kind": "preset" if b is None else "fixed",
                   "precision": setup(cfg.perf).precision, "compile": compile_, **{
                       f"{k}_{m}": v for k, r in res.items() for m, v in r.items()},
                   "speedup": ratio}
            rows.append(row)
            log(f"{preset:8s} batch {bs:4d}  fp32 eager {res['fp32 eager']['images_per_s_median']:7.0f}"
                f" img/s  gankit {res['gankit']['images_per_s_median']:7.0f} img/s  "
                f"speedup {ratio:.2f}x")
    return rows


def bench_scaling(batches: list[int], widths: list[float], log: Callable[[str], None],
                  n_images: int = 50000) -> list[dict[str, Any]]:
    """Seconds per epoch (extrapolated from timed steps) and peak RSS growth, sagan preset."""
    import resource

    rows = []
    for scale in widths:
        for b in batches:
            cfg = resolve("sagan", [f"train.batch_size={b}",
                                    f"generator.widths={[int(128 * scale)] * 3}",
                                    f"generator.base_channels={int(256 * scale)}",
                                    f"discriminator.widths={[int(w * scale) for w in (64, 128, 128, 256)]}"])
            step = fast_step(cfg)
            real = torch.rand(b, 3, 32, 32) * 2 - 1
            step(real)
            t = time.perf_counter()
            for _ in range(3):
                step(real)
            dt = (time.perf_counter() - t) / 3
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            row = {"batch": b, "width_scale": scale, "ms_step": dt * 1e3,
                   "epoch_seconds": dt * n_images / b, "peak_rss_mib": rss}
            rows.append(row)
            log(f"sagan width x{scale:<4} batch {b:4d}: {dt * 1e3:7.1f} ms/step, "
                f"{row['epoch_seconds']:6.0f} s/epoch, peak RSS {rss:.0f} MiB")
    return rows


def bench_fid(data_dir, inception, n: int, log: Callable[[str], None],
              n_ref: int = 500) -> dict[str, Any]:
    """Inception throughput: fp32 reference (unfrozen, NCHW) vs gankit's fp32 and bf16 paths.

    The reference path is timed on ``n_ref`` images and its features compared with gankit's
    fp32 path on the same images (they agree to float rounding, so its FID is the fp32 FID);
    FID itself is computed on ``n`` train vs ``n`` test images.
    """
    from gankit.data import load_cifar10
    from gankit.metrics.fid import Stats, fid_from_stats
    from gankit.metrics.inception import FeatureExtractor

    train, _ = load_cifar10(data_dir, "train")
    test, _ = load_cifar10(data_dir, "test")
    a, b = train[:n].permute(0, 2, 3, 1).numpy(), test[:n].permute(0, 2, 3, 1).numpy()
    exts = {"fp32 reference": FeatureExtractor(inception, fast=False),
            "gankit fp32": FeatureExtractor(inception),
            "gankit bf16": FeatureExtractor(inception, precision="bf16")}
    out: dict[str, Any] = {}
    feats_ref = {}
    for name, ext in exts.items():
        ext(a[:100])  # warm-up (TorchScript profiling runs)
        t = time.perf_counter()
        feats_ref[name] = ext(a[:n_ref])
        out[name] = {"images_per_s": n_ref / (time.perf_counter() - t)}
    diff = float(abs(feats_ref["fp32 reference"] - feats_ref["gankit fp32"]).max())
    out["max_abs_feature_diff_fp32"] = diff
    for name in ("gankit fp32", "gankit bf16"):
        ext = exts[name]
        fid = fid_from_stats(Stats.from_features(ext(a)), Stats.from_features(ext(b)))
        out[name]["fid"] = fid
    for name, r in out.items():
        if isinstance(r, dict):
            log(f"{name:15s} {r['images_per_s']:6.1f} img/s" +
                (f"  FID({n} train, {n} test) = {r['fid']:.4f}" if "fid" in r else ""))
    log(f"fp32 reference vs gankit fp32 features: max |diff| = {diff:.2e}")
    return out
