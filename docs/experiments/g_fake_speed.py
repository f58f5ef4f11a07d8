"""Experiment script (not part of gankit): seconds per training step of a preset with
``optim.g_fake`` fresh vs reuse, side by side in one process, bf16 in both memory layouts,
with train.d_batch=full (which reuse needs), three interleaved repeats (the tuner's own
timing: fixed batch, warm-up, median of 15 steps); prints the best of the repeats and the
ratio. Usage: python docs/experiments/g_fake_speed.py [PRESET [KEY=VALUE ...]] (default cpu;
overrides as with --set); the README's step-time ratio was measured this way, at the batch
the cpu preset had then (train.batch_size=64)."""
import sys

import torch

from gankit.config import resolve
from gankit.training.tuner import Choice, measure

preset = sys.argv[1] if len(sys.argv) > 1 else "cpu"
overrides = sys.argv[2:]
dev = torch.device("cpu")
ms: dict[tuple[bool, str], list[float]] = {}
for rep in range(3):
    for cl in (False, True):
        for mode in ("fresh", "reuse"):
            cfg = resolve(preset, [*overrides, f"optim.g_fake={mode}", "train.d_batch=full",
                                   f"train.seed={rep}"])
            sec, _ = measure(cfg, Choice("bf16", cl, 2, False), dev, steps=15)
            ms.setdefault((cl, mode), []).append(sec * 1e3)
for cl in (False, True):
    fresh, reuse = min(ms[(cl, "fresh")]), min(ms[(cl, "reuse")])
    print(f"{preset}, bf16, {'channels_last' if cl else 'NCHW'}: fresh {fresh:.1f} ms, "
          f"reuse {reuse:.1f} ms per step, fresh/reuse {fresh / reuse:.3f}")
