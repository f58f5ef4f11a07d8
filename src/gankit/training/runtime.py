"""Device, precision, threads and distributed setup.

``setup`` takes concrete settings; ``train`` and ``gankit bench`` get them from the measured
tuner (:mod:`gankit.training.tuner`). Called directly with ``auto`` fields, ``setup`` falls
back to an unmeasured default: bf16 where the hardware has it, channels_last, no compile, all
cores. The distributed helpers read the variables ``torchrun`` sets, so the same loop runs as
one process or as one rank of a DDP job.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from gankit.config import PerfConfig
from gankit.errors import GankitError


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype | None  # autocast dtype, None for fp32
    channels_last: bool
    rank: int = 0
    world_size: int = 1
    compile: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @property
    def precision(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]


def cpu_has_bf16() -> bool:
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cuda_has_native_bf16(device: torch.device | None = None) -> bool:
    """bf16 in hardware: compute capability 8.0 (Ampere) or newer. ``is_bf16_supported()``
    also says yes where bf16 is emulated (V100, T4), which is slower than fp16 there."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def pick_device(name: str, local_rank: int = 0, share: bool = False) -> torch.device:
    """The device of this rank: ``cuda`` means ``cuda:LOCAL_RANK``. More local ranks than GPUs
    is an error unless ``share`` (gloo), which deals the GPUs out round-robin."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GankitError(f"perf.device: unknown device {name!r}; use auto, cpu or cuda") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise GankitError("perf.device=cuda but no CUDA GPU is available; use perf.device=cpu")
        if device.index is None:
            n = torch.cuda.device_count()
            if local_rank >= n and not share:
                raise GankitError(
                    f"local rank {local_rank} has no GPU of its own: this machine has {n}; start at "
                    f"most {n} processes per node (torchrun --nproc_per_node={n}), or set "
                    "perf.backend=gloo to let ranks share GPUs (a functional check: NCCL refuses "
                    "two ranks on one GPU)")
            device = torch.device("cuda", local_rank % n)
        torch.cuda.set_device(device)
    return device


def _pick_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if cuda_has_native_bf16(device) else torch.float16
        return torch.bfloat16 if cpu_has_bf16() else None
    if precision == "fp16" and device.type == "cpu":
        raise GankitError("perf.precision=fp16 is for CUDA; use bf16 or fp32 on the CPU")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def setup(perf: PerfConfig) -> Runtime:
    """Resolve perf settings; join the process group when launched by ``torchrun``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(perf.device, local_rank, share=perf.backend == "gloo")
    backend = perf.backend if perf.backend != "auto" else (
        "nccl" if device.type == "cuda" else "gloo")
    if backend == "nccl" and device.type != "cuda":
        raise GankitError("perf.backend=nccl needs CUDA; on the CPU use gloo (or auto)")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend)
    if perf.threads:
        torch.set_num_threads(perf.threads)
    elif device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    channels_last = True if perf.channels_last == "auto" else perf.channels_last
    compile_ = perf.compile is True
    return Runtime(device, _pick_dtype(perf.precision, device), channels_last, rank, world,
                   compile_)


def all_reduce_mean(t: torch.Tensor, rt: Runtime) -> torch.Tensor:
    if rt.world_size > 1:
        t = t.clone()
        dist.all_reduce(t)
        t /= rt.world_size
    return t


def all_reduce_max(flags: list[float], rt: Runtime) -> list[float]:
    """Element-wise maximum over ranks (so every rank takes the same decision)."""
    if rt.world_size == 1:
        return flags
    dev = rt.device if rt.device.type == "cuda" else torch.device("cpu")
    t = torch.tensor(flags, dtype=torch.float32, device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def gather_objects(obj: object, rt: Runtime) -> list[object]:
    """``obj`` from every rank, in rank order (a list of one without DDP)."""
    if rt.world_size == 1:
        return [obj]
    out: list[object] = [None] * rt.world_size
    dist.all_gather_object(out, obj)
    return out


def use_sync_bn(setting: bool | str, device: torch.device, world_size: int,
                model: torch.nn.Module) -> bool:
    """Whether to convert batch norm to SyncBatchNorm (``perf.sync_bn``): only under DDP,
    only where there is batch norm; ``True`` on a CPU is an error (PyTorch's SyncBatchNorm
    runs on GPUs only), ``auto`` there means per-rank statistics."""
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if world_size < 2 or not has_bn or setting is False:
        return False
    if device.type != "cuda":
        if setting is True:
            raise GankitError("perf.sync_bn=true needs CUDA: PyTorch's SyncBatchNorm does not "
                              "run on the CPU; use perf.sync_bn=auto (per-rank batch statistics)")
        return False
    return True
