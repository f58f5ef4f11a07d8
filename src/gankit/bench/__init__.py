"""``gankit bench``: gankit's training step and FID feature path against the plain versions,
side by side in one run (interleaved repeats, so machine noise hits both alike), with the
tuner's choice, the roofline share of each path and, when TensorFlow is installed, the
reference design's own Keras loop. Throughput counts *training* images consumed per second
(with ``d_batch: half`` an iteration consumes batch/2 real images).

The plain loop is what a user would write: float32, contiguous NCHW, eager, hook-based
``torch.nn.utils.spectral_norm``, default Adam, separate D passes for real and fake, and a G
update that back-propagates through D's weights too (on the D step's fakes when the config
says ``optim.g_fake: reuse``, so both loops run the same algorithm). It runs in a spawned
child process: a user's script has glibc's default allocator, and gankit's allocator setting
(:mod:`gankit.malloc`) is process-wide, so it cannot be switched off in this process. The same
plain loop is also timed in this process, with gankit's allocator, to show what each lever
contributes.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import torch

from gankit.config import Config, resolve
from gankit.losses import d_loss_parts, g_loss
from gankit.malloc import peak_rss, reset_peak_rss
from gankit.models import build_models
from gankit.training.runtime import setup
from gankit.training.step import GANStep

Runner = Callable[[int], float]  # run n steps, return seconds per step


class PlainStep:
    """The reference loop a user would write (see module docstring)."""

    def __init__(self, cfg: Config) -> None:
        torch.manual_seed(0)
        self.cfg = cfg
        self.g, self.d = build_models(cfg, sn_impl="legacy")
        o = cfg.optim
        self.g_opt = torch.optim.Adam(self.g.parameters(), lr=o.g_lr, betas=o.g_betas)
        self.d_opt = torch.optim.Adam(self.d.parameters(), lr=o.d_lr, betas=o.d_betas)
        self.n_real = cfg.train.n_real

    def __call__(self, real: torch.Tensor) -> None:
        name, latent, b = self.cfg.loss.name, self.cfg.generator.latent_dim, self.cfg.train.batch_size
        fake = self.g(torch.randn(self.n_real, latent))
        lr, lf = d_loss_parts(name, self.d(real), self.d(fake.detach()))
        self.d_opt.zero_grad()
        (lr + lf).backward()
        self.d_opt.step()
        if self.cfg.optim.g_fake == "fresh":
            fake = self.g(torch.randn(b, latent))
        lg = g_loss(name, self.d(fake))
        self.g_opt.zero_grad()
        lg.backward()
        self.g_opt.step()
        lg.item()  # the per-step .item() a plain loop does for logging


def tuned(cfg: Config) -> tuple[Config, dict[str, Any]]:
    """``cfg`` with the tuner's measured settings (what ``gankit train`` would run)."""
    from gankit.training import tuner

    return tuner.resolve(cfg)


def fast_step(cfg: Config, compile_: bool = False) -> Callable[[torch.Tensor], None]:
    """gankit's step with ``cfg``'s (concrete) perf settings."""
    torch.manual_seed(0)
    rt = setup(cfg.perf)
    g, d = build_models(cfg)
    fmt = torch.channels_last if rt.channels_last else torch.contiguous_format
    g, d = g.to(memory_format=fmt), d.to(memory_format=fmt)
    step = GANStep(cfg, g, d, rt, torch.Generator().manual_seed(0), compile=compile_)
    k = cfg.cond.n_classes  # a conditional preset trains on (images, class-balanced labels)
    return lambda real: step([(real, torch.arange(len(real)) % k) if k else real])


def plain_process() -> ProcessPoolExecutor:
    """One spawned worker: a fresh interpreter with glibc's default allocator."""
    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))


def in_process(fn: Callable[[torch.Tensor], None], real: torch.Tensor) -> Runner:
    def run(n: int) -> float:
        t = time.perf_counter()
        for _ in range(n):
            fn(real)
        return (time.perf_counter() - t) / n
    return run


_child: dict[str, Any] = {}  # the worker keeps its model between calls


def _child_plain_steps(preset: str, sets: list[str], real: np.ndarray, n: int) -> float:
    key = (preset, tuple(sets))
    if _child.get("key") != key:
        _child.clear()
        _child.update(key=key, step=PlainStep(resolve(preset, sets)))
    return in_process(_child["step"], torch.from_numpy(real))(n)


def _child_reference_features(inception: str, images: np.ndarray,
                              warm: np.ndarray) -> tuple[float, np.ndarray]:
    from gankit.metrics.inception import FeatureExtractor

    ext = FeatureExtractor(inception, fast=False)
    ext(warm)
    t = time.perf_counter()
    feats = ext(images)
    return time.perf_counter() - t, feats


def _child_malloc_mode() -> str:
    from gankit.malloc import malloc_mode

    return malloc_mode()


def check_plain(pool: ProcessPoolExecutor) -> None:
    mode = pool.submit(_child_malloc_mode).result()
    if mode != "system":
        raise RuntimeError(f"the plain-loop worker should use the default allocator, has {mode}")


def time_runners(runners: dict[str, Runner], images_per_step: int, steps: int, repeats: int,
                 warmup: int) -> dict[str, dict[str, float]]:
    """Interleave repeats of each runner; images/s per repeat, min/median summarised."""
    for run in runners.values():
        if warmup:
            run(warmup)
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(repeats):
        for k, run in runners.items():
            times[k].append(run(steps))
    out = {}
    for k, ts in times.items():
        med = statistics.median(ts)
        out[k] = {"ms_step_median": med * 1e3, "ms_step_min": min(ts) * 1e3,
                  "images_per_s_median": images_per_step / med,
                  "images_per_s_best": images_per_step / min(ts)}
    return out


PLAIN, PLAIN_MALLOC, FAST = "fp32 eager", "fp32 eager + gankit malloc", "gankit"


def bench_training(presets: list[str], batches: list[int | None], steps: int, repeats: int,
                   warmup: int, compile_: bool, log: Callable[[str], None],
                   pool: ProcessPoolExecutor) -> list[dict[str, Any]]:
    rows = []
    for preset in presets:
        for b in batches:
            sets = [] if b is None else [f"train.batch_size={b}"]
            cfg, choice = tuned(resolve(preset, sets))
            bs = cfg.train.batch_size
            n_real = cfg.train.n_real
            real = torch.rand(n_real, 3, 32, 32) * 2 - 1
            real_np = real.numpy()
            log(f"{preset:8s} batch {bs:4d}  tuner: {choice['label']}" +
                (" (cached)" if choice.get("cached") else "") + "  " +
                ", ".join(f"{k} {v:.0f} ms" for k, v in choice.get("timings_ms", {}).items()))

            def child(n: int, preset=preset, sets=sets, real_np=real_np) -> float:
                return pool.submit(_child_plain_steps, preset, sets, real_np, n).result()

            res = time_runners({PLAIN: child, PLAIN_MALLOC: in_process(PlainStep(cfg), real),
                                FAST: in_process(fast_step(cfg, compile_), real)},
                               n_real, steps, repeats, warmup)
            ms = {k: r["ms_step_median"] for k, r in res.items()}
            row = {"preset": preset, "batch": bs, "batch_kind": "preset" if b is None else "fixed",
                   "real_images_per_step": n_real, "tuner": choice,
                   "precision": cfg.perf.precision, "compile": compile_, **{
                       f"{k}_{m}": v for k, r in res.items() for m, v in r.items()},
                   "speedup": ms[PLAIN] / ms[FAST], "speedup_same_malloc": ms[PLAIN_MALLOC] / ms[FAST]}
            rows.append(row)
            ips = {k: r["images_per_s_median"] for k, r in res.items()}
            log(f"{preset:8s} batch {bs:4d}  fp32 eager {ips[PLAIN]:5.0f} real img/s  "
                f"(+malloc {ips[PLAIN_MALLOC]:5.0f})  gankit {ips[FAST]:5.0f} img/s  "
                f"speedup {row['speedup']:.2f}x ({row['speedup_same_malloc']:.2f}x same malloc)")
    return rows


def bench_scaling(batches: list[int], widths: list[float], log: Callable[[str], None],
                  n_images: int = 50000) -> list[dict[str, Any]]:
    """Seconds per epoch (extrapolated from timed steps) and the peak memory a training step
    needs on top of what was live before it (model, optimizer, step buffers), sagan preset."""
    rows = []
    for scale in widths:
        for b in batches:
            cfg = resolve("sagan", [f"train.batch_size={b}",
                                    f"generator.widths={[int(128 * scale)] * 3}",
                                    f"generator.base_channels={int(256 * scale)}",
                                    f"discriminator.widths={[int(w * scale) for w in (64, 128, 128, 256)]}"])
            base = reset_peak_rss()
            step = fast_step(tuned(cfg)[0])
            real = torch.rand(b, 3, 32, 32) * 2 - 1
            step(real)
            dt = in_process(step, real)(3)
            peak = peak_rss()
            mem = None if base is None or peak is None else peak - base
            row = {"batch": b, "width_scale": scale, "ms_step": dt * 1e3,
                   "epoch_seconds": dt * n_images / b, "peak_step_mib": mem}
            rows.append(row)
            log(f"sagan width x{scale:<4} batch {b:4d}: {dt * 1e3:7.1f} ms/step, "
                f"{row['epoch_seconds']:6.0f} s/epoch" +
                ("" if mem is None else f", peak memory {mem:.0f} MiB"))
            del step
    return rows


def bench_fid(data_dir, inception, n: int, log: Callable[[str], None], pool: ProcessPoolExecutor,
              n_ref: int = 500) -> dict[str, Any]:
    """Inception throughput: the plain fp32 path (unfrozen, NCHW, default allocator, in the
    worker) against gankit's fp32 and bf16 paths.

    The plain path is timed on ``n_ref`` images and its features compared with gankit's fp32
    path on the same images (they agree to float rounding, so its FID is the fp32 FID); FID
    itself is computed on ``n`` train vs ``n`` test images with both gankit paths.
    """
    from gankit.bench import roofline
    from gankit.data import load_cifar10
    from gankit.metrics.fid import Stats, fid_from_stats
    from gankit.metrics.inception import FeatureExtractor, resolve_weights

    inception = str(resolve_weights(inception))
    train, _ = load_cifar10(data_dir, "train")
    test, _ = load_cifar10(data_dir, "test")
    a, b = train[:n].permute(0, 2, 3, 1).numpy(), test[:n].permute(0, 2, 3, 1).numpy()
    secs, ref_feats = pool.submit(_child_reference_features, inception, a[:n_ref], a[:100]).result()
    out: dict[str, Any] = {"fp32 reference": {"images_per_s": n_ref / secs}}
    for name, prec in (("gankit fp32", "fp32"), ("gankit bf16", "bf16")):
        ext = FeatureExtractor(inception, precision=prec)
        ext(a[:100])  # warm-up (TorchScript profiling runs)
        t = time.perf_counter()
        feats = ext(a[:n_ref])
        out[name] = {"images_per_s": n_ref / (time.perf_counter() - t)}
        if prec == "fp32":
            out["max_abs_feature_diff_fp32"] = float(abs(ref_feats - feats).max())
        out[name]["fid"] = fid_from_stats(Stats.from_features(ext(a)), Stats.from_features(ext(b)))
    out["gflop_per_image"] = roofline.inception_gflops(inception)
    for name, r in out.items():
        if isinstance(r, dict):
            log(f"{name:15s} {r['images_per_s']:6.1f} img/s" +
                (f"  FID({n} train, {n} test) = {r['fid']:.4f}" if "fid" in r else ""))
    log(f"fp32 reference vs gankit fp32 features: max |diff| = {out['max_abs_feature_diff_fp32']:.2e}")
    return out


def bench_roofline(rows: list[dict[str, Any]], log: Callable[[str], None]) -> dict[str, Any]:
    """Measured matmul peak per precision, FLOPs per training image per preset, and each
    path's share of the peak of the precision it runs in."""
    from gankit.bench import roofline
    from gankit.training.runtime import cpu_has_bf16

    peaks = {"fp32": roofline.gemm_gflops(torch.float32)}
    if cpu_has_bf16() or any(r["precision"] == "bf16" for r in rows):
        peaks["bf16"] = roofline.gemm_gflops(torch.bfloat16)
    log("matmul peak (2048^2): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()))
    out: dict[str, Any] = {"peak_gflops": peaks, "presets": {}}
    for r in rows:
        if r["batch_kind"] != "preset":
            continue
        f = roofline.flops_per_image(resolve(r["preset"]))
        shares = {PLAIN: roofline.share(r[f"{PLAIN}_images_per_s_median"], f["gflop_per_image"],
                                        peaks["fp32"]),
                  FAST: roofline.share(r[f"{FAST}_images_per_s_median"], f["gflop_per_image"],
                                       peaks.get(r["precision"], peaks["fp32"]))}
        out["presets"][r["preset"]] = {**f, "share": shares}
        log(f"{r['preset']} roofline: {shares[FAST]:.0%} of {r['precision']} peak "
            f"(fp32 eager {shares[PLAIN]:.0%} of fp32); {f['gflop_per_image']:.3f} GFLOP per "
            f"training image (G fwd {f['g_forward_gflop']:.3f}, D fwd {f['d_forward_gflop']:.3f})")
    return out


def _child_keras(steps: int, warmup: int, threads: int) -> dict:
    from gankit.bench import keras

    return keras.seconds_per_iteration(steps, warmup, threads)


def bench_keras(dcgan_row: dict[str, Any], steps: int, log: Callable[[str], None]) -> dict | None:
    """The reference design's Keras loop in a fresh process, against gankit's dcgan row."""
    from gankit.bench import keras

    if not keras.available():
        log("keras anchor: TensorFlow not installed (pip install 'gankit[keras]'); skipped")
        return None
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # inherited by the child: no C++ log noise
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        res = pool.submit(_child_keras, steps, 3, torch.get_num_threads()).result()
    ips = keras.REAL_PER_ITERATION / res["seconds"]
    ratio = dcgan_row[f"{FAST}_images_per_s_median"] / ips
    log(f"keras (TensorFlow {res['tensorflow']}) dcgan loop: {ips:.0f} real img/s")
    log(f"dcgan vs keras: {ratio:.2f}x")
    return {"images_per_s": ips, "ratio": ratio, **res}
