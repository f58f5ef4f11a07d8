"""Experiment script (not part of gankit): real training images per second of a preset's
tuned step at several batch sizes, side by side in one process — bf16 and fp32, both memory
layouts, 2 threads, three interleaved repeats of the tuner's own timing (warm-up, median of
10 steps); prints the best repeat per setting. Usage: python docs/experiments/batch_speed.py
[PRESET [BATCH,...]] (default: cpu 16,24,32,64). The README's batch-size timing was measured
this way: on 2 cores a smaller batch costs few images per second and buys more G updates."""
import sys

import torch

from gankit.config import resolve
from gankit.training.tuner import Choice, measure

preset = sys.argv[1] if len(sys.argv) > 1 else "cpu"
batches = [int(b) for b in (sys.argv[2] if len(sys.argv) > 2 else "16,24,32,64").split(",")]
dev = torch.device("cpu")
sec: dict[tuple[int, str, bool], list[float]] = {}
real: dict[int, int] = {}  # real images D sees per step at each batch
for rep in range(3):
    for b in batches:
        for prec in ("bf16", "fp32"):
            for cl in (False, True):
                cfg = resolve(preset, [f"train.batch_size={b}", f"train.seed={rep}"])
                t, _ = measure(cfg, Choice(prec, cl, 2, False), dev, steps=10)
                sec.setdefault((b, prec, cl), []).append(t)
                real[b] = cfg.train.n_real
for (b, prec, cl), v in sec.items():
    print(f"{preset}, batch {b}, {prec}, {'channels_last' if cl else 'NCHW'}: "
          f"{min(v) * 1e3:.1f} ms per step, {real[b] / min(v):.0f} real images/s")
