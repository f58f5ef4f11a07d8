"""Measured fast settings: time a few real training steps of *this* model on *this* device in
each candidate setting, side by side, and keep the fastest whose losses match fp32's.

CPU flags do not say what is fast: on one 2-core Xeon with AVX512-BF16 (no AMX) bf16 ran a
2048² matmul at 186 GFLOP/s against 340 in fp32, while on an EPYC with native bf16 it was the
faster choice. So ``perf.precision=auto``, ``perf.channels_last=auto``, ``perf.threads``
unset (CPU) and ``perf.compile=auto`` (CUDA only; compiling on the CPU measured slower) are
decided by timing. A forced value is never overridden: only the ``auto`` fields are searched.

bf16/fp16 is only chosen where its first step's losses match the fp32 step's on the same
weights, batch and noise within ``LOSS_TOL`` (the tolerance ``tests/test_step.py`` uses for
the fast step). Results are cached in ``$GANKIT_CACHE/tuner.json`` per (device model, torch
version, thread budget, hash of everything that shapes a step), so later runs start at once;
a changed model is a new key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

import torch

from gankit.config import Config, PerfConfig
from gankit.errors import GankitError
from gankit.io import user_cache_dir, write_json
from gankit.training.runtime import Runtime, cpu_has_bf16, cuda_has_native_bf16, pick_device

LOSS_TOL = 0.05  # relative and absolute, on the first step's D and G losses
CACHE_VERSION = 2


@dataclass(frozen=True)
class Choice:
    precision: str  # fp32, bf16, fp16
    channels_last: bool
    threads: int | None  # CPU intra-op threads; None on CUDA
    compile: bool

    @property
    def label(self) -> str:
        parts = [self.precision, "channels_last" if self.channels_last else "NCHW"]
        if self.threads:
            parts.append(f"{self.threads} threads")
        if self.compile:
            parts.append("compile")
        return ", ".join(parts)


@cache
def device_name(device: torch.device) -> str:
    """A human-readable name of the device model (the CPU model string on Linux)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def signature(cfg: Config) -> str:
    """A hash of everything that shapes the cost of a training step."""
    parts = {k: cfg.model_dump(mode="json")[k] for k in ("generator", "discriminator", "loss",
                                                          "augment", "ema")}
    parts |= {"batch_size": cfg.train.batch_size, "d_batch": cfg.train.d_batch,
              "n_dis": cfg.optim.n_dis, "g_fake": cfg.optim.g_fake,
              "resolution": cfg.data.resolution}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def thread_budget(world_size: int = 1) -> int:
    if "OMP_NUM_THREADS" in os.environ:
        with contextlib.suppress(ValueError):
            return max(1, int(os.environ["OMP_NUM_THREADS"]))
    return max(1, (os.cpu_count() or 1) // world_size)


def cache_key(cfg: Config, device: torch.device, world_size: int = 1) -> str:
    """Device, torch, thread budget, model signature, and the search space: a choice made
    with some settings forced must not answer a search where they are ``auto``."""
    threads = f"{thread_budget(world_size)} threads" if device.type == "cpu" else device.type
    p = cfg.perf
    space = f"precision={p.precision},channels_last={p.channels_last},compile={p.compile}," \
            f"threads={p.threads}"
    return f"v{CACHE_VERSION}|{device_name(device)}|torch {torch.__version__}|{threads}|" \
           f"{space}|{signature(cfg)}"


def _precisions(perf: PerfConfig, device: torch.device) -> list[str]:
    if perf.precision != "auto":
        return [perf.precision]
    if device.type == "cuda":
        return ["fp32", "bf16" if cuda_has_native_bf16(device) else "fp16"]
    return ["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]


def candidates(perf: PerfConfig, device: torch.device, world_size: int = 1) -> list[Choice]:
    """The first round: precision x layout x compile (threads are tuned afterwards)."""
    layouts = [False, True] if perf.channels_last == "auto" else [bool(perf.channels_last)]
    if perf.compile == "auto":
        compiles = [False, True] if device.type == "cuda" else [False]
    else:
        compiles = [bool(perf.compile)]
    threads = (perf.threads or thread_budget(world_size)) if device.type == "cpu" else None
    return [Choice(p, cl, threads, c) for p in _precisions(perf, device) for cl in layouts
            for c in compiles]


def _dtype(precision: str) -> torch.dtype | None:
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measure(cfg: Config, choice: Choice, device: torch.device, steps: int = 3,
            warmup: int = 2) -> tuple[float, dict[str, float]]:
    """Seconds per training step (median of ``steps``) and the first step's losses, from a
    fixed initialisation, batch and noise; the global RNG is left as it was."""
    from gankit.models import build_models
    from gankit.training.step import GANStep

    rt = Runtime(device, _dtype(choice.precision), choice.channels_last)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
            _threads(choice.threads):
        torch.manual_seed(0)
        g, d = build_models(cfg)
        fmt = torch.channels_last if choice.channels_last else torch.contiguous_format
        g, d = g.to(device, memory_format=fmt), d.to(device, memory_format=fmt)
        step = GANStep(cfg, g, d, rt, torch.Generator(device).manual_seed(0), compile=choice.compile)
        gen = torch.Generator().manual_seed(1)
        r = cfg.data.resolution
        reals = [(torch.rand(step.n_real, 3, r, r, generator=gen) * 2 - 1).to(device)
                 for _ in range(cfg.optim.n_dis)]
        if cfg.cond.n_classes:  # a conditional model trains on (images, labels)
            reals = [(x, torch.arange(len(x), device=device) % cfg.cond.n_classes) for x in reals]
        step(reals)
        losses = step.pop_stats()
        for _ in range(warmup):
            step(reals)
        times = []
        for _ in range(steps):
            _sync(device)
            t = time.perf_counter()
            step(reals)
            step.stats.sum().item()  # include the step's queued work
            times.append(time.perf_counter() - t)
    return statistics.median(times), losses


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _losses_match(a: dict[str, float], b: dict[str, float]) -> bool:
    keys = ("d_loss_real", "d_loss_fake", "g_loss")
    return all(abs(a[k] - b[k]) <= LOSS_TOL * (1 + abs(b[k])) for k in keys)


Measure = Callable[[Config, Choice, torch.device], tuple[float, dict[str, float]]]


def _failure(err: Exception) -> str:
    """A failed candidate's reason for run.json: the exception type and its first line."""
    first = (str(err).strip().splitlines() or [""])[0][:300]
    return f"failed: {type(err).__name__}: {first}"


def search(cfg: Config, device: torch.device, world_size: int = 1,
           measure_fn: Measure = measure) -> dict[str, Any]:
    """Time every candidate; return the record (choice, timings, rejections).

    A candidate that fails (a compile backend that cannot run this model, an unsupported
    dtype, out of memory) is rejected with its reason instead of ending the run."""
    timings: dict[str, float] = {}
    rejected: dict[str, str] = {}
    results: dict[Choice, tuple[float, dict[str, float]]] = {}
    for c in candidates(cfg.perf, device, world_size):
        try:
            results[c] = measure_fn(cfg, c, device)
        except GankitError:  # the config's own fault (a custom arch that cannot be built)
            raise
        except Exception as err:  # noqa: BLE001 -- any other failure rejects the candidate
            rejected[c.label] = _failure(err)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        timings[c.label] = results[c][0] * 1e3
    if not results:
        raise GankitError("every speed setting failed on this device: " + "; ".join(
            f"{k}: {v}" for k, v in rejected.items()) + "; set perf.* explicitly")
    ok = dict(results)
    for c, (_, losses) in results.items():
        ref = next((r for k, r in results.items() if k.precision == "fp32"
                    and k.channels_last == c.channels_last and k.compile == c.compile), None)
        if c.precision != "fp32" and ref is not None and not _losses_match(losses, ref[1]):
            rejected[c.label] = f"losses differ from fp32 by more than {LOSS_TOL}"
            del ok[c]
    best = min(ok, key=lambda c: ok[c][0])
    if device.type == "cpu" and cfg.perf.threads is None and best.threads and best.threads > 1:
        fewer = replace(best, threads=best.threads // 2)
        try:
            sec, _ = measure_fn(cfg, fewer, device)
        except Exception as err:  # noqa: BLE001
            rejected[fewer.label] = _failure(err)
        else:
            timings[fewer.label] = sec * 1e3
            if sec < ok[best][0]:
                best = fewer
    return {"choice": asdict(best), "label": best.label, "timings_ms": timings,
            "rejected": rejected, "device": device_name(device), "torch": torch.__version__,
            "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _cache_path() -> Path:
    return user_cache_dir() / "tuner.json"


def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads(_cache_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def tune(cfg: Config, device: torch.device, world_size: int = 1,
         measure_fn: Measure = measure) -> dict[str, Any]:
    """The record for ``cfg`` on ``device``: from the cache, else measured (and cached)."""
    key = cache_key(cfg, device, world_size)
    cache = _read_cache()
    if key in cache:
        return {**cache[key], "cached": True, "key": key}
    rec = search(cfg, device, world_size, measure_fn)
    cache = _read_cache()  # another process may have written meanwhile
    cache[key] = rec
    with contextlib.suppress(OSError):
        write_json(_cache_path(), cache)
    return {**rec, "cached": False, "key": key}


def needs_tuning(perf: PerfConfig, device: torch.device) -> bool:
    return perf.precision == "auto" or perf.channels_last == "auto" or \
        (perf.compile == "auto" and device.type == "cuda") or \
        (perf.threads is None and device.type == "cpu")


def resolve(cfg: Config, world_size: int = 1, rank: int = 0,
            measure_fn: Measure = measure) -> tuple[Config, dict[str, Any]]:
    """``cfg`` with every ``auto`` perf field made concrete, and the record of how."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(cfg.perf.device, local_rank, share=cfg.perf.backend == "gloo")
    if not needs_tuning(cfg.perf, device):
        # compile=auto without tuning (a CPU with the other fields set) means off, as on every
        # CPU: bool("auto") would be True
        choice = Choice(cfg.perf.precision, cfg.perf.channels_last is True, cfg.perf.threads,
                        cfg.perf.compile is True)
        rec: dict[str, Any] = {"choice": asdict(choice), "label": choice.label, "forced": True}
    else:
        rec = tune(cfg, device, world_size, measure_fn) if rank == 0 else {}
        if world_size > 1:  # every rank runs rank 0's choice (same numerics everywhere)
            import torch.distributed as dist

            box = [rec]
            dist.broadcast_object_list(box, src=0)
            rec = box[0]
    return apply(cfg, rec["choice"]), rec


def apply(cfg: Config, choice: dict[str, Any]) -> Config:
    perf = cfg.perf.model_copy(update={
        "precision": choice["precision"], "channels_last": choice["channels_last"],
        "threads": choice["threads"], "compile": choice["compile"]})
    return cfg.model_copy(update={"perf": perf})

