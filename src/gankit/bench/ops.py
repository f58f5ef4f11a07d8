"""Where a training step's time goes: ``torch.profiler`` self time per operator, and per kind
of work (convolutions, their backward, normalisation, spectral norm, optimizer, layout
copies, ...), for the step ``gankit train`` runs with the tuner's settings.

Self time (time inside an op minus its children) adds up to the step's total, so shares are
honest; the kinds are coarse groups of operator names, for reading, not for accounting
precision.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from gankit.config import Config

# (kind, substrings of the aten/mkldnn op name); first match wins, so order matters.
KINDS: list[tuple[str, tuple[str, ...]]] = [
    ("conv backward", ("convolution_backward", "conv_transpose_backward", "mkldnn_convolution_backward")),
    ("conv forward", ("convolution", "conv2d", "conv_transpose", "mkldnn_conv")),
    ("batch norm", ("batch_norm",)),
    ("matmul / linear", ("addmm", "mm", "bmm", "linear", "matmul")),
    ("spectral norm", ("mv", "dot", "linalg_vector_norm", "norm", "div_")),
    ("optimizer", ("adam", "_foreach", "lerp")),
    ("layout / copies", ("copy_", "contiguous", "to_copy", "clone", "empty_strided", "_to_dense",
                         "as_strided")),
    ("activations", ("relu", "leaky", "tanh", "sigmoid", "softplus", "threshold", "softmax")),
    ("random", ("normal", "uniform", "randperm", "bernoulli")),
]


def kind_of(op: str) -> str:
    name = op.lower()
    for kind, keys in KINDS:
        if any(k in name for k in keys):
            return kind
    return "other elementwise / bookkeeping"


def op_table(cfg: Config, steps: int = 5, top: int = 12) -> dict[str, Any]:
    """Profile ``steps`` tuned training steps of ``cfg`` (after two warm-up steps)."""
    from gankit.bench import fast_step, tuned

    cfg, perf = tuned(cfg)
    fn = fast_step(cfg)
    n_real = cfg.train.n_real
    r = cfg.data.resolution
    real = torch.rand(n_real, 3, r, r, generator=torch.Generator().manual_seed(0)) * 2 - 1
    fn(real)
    fn(real)
    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available() and cfg.perf.device != "cpu":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        for _ in range(steps):
            fn(real)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    kinds: dict[str, float] = {}
    for e in events:
        kinds[kind_of(e.key)] = kinds.get(kind_of(e.key), 0.0) + e.self_cpu_time_total
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return {
        "preset": cfg.name, "batch": cfg.train.batch_size, "choice": perf.get("choice"),
        "ms_per_step": total / steps / 1e3,
        "kinds": {k: v / total for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
        "ops": [{"op": e.key, "kind": kind_of(e.key), "calls_per_step": e.count / steps,
                 "ms_per_step": e.self_cpu_time_total / steps / 1e3,
                 "share": e.self_cpu_time_total / total} for e in events[:top]],
    }


def format_table(t: dict[str, Any]) -> str:
    lines = [f"{t['preset']} (batch {t['batch']}, {t['choice']}): {t['ms_per_step']:.1f} ms "
             "per step (profiler self CPU time)",
             "  by kind: " + ", ".join(f"{k} {v:.0%}" for k, v in t["kinds"].items() if v >= 0.01)]
    for o in t["ops"]:
        lines.append(f"  {o['share']:6.1%} {o['ms_per_step']:8.2f} ms  {o['calls_per_step']:6.1f}x "
                     f" {o['op']}  [{o['kind']}]")
    return "\n".join(lines)
