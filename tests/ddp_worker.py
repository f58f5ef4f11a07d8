"""Train a tiny dcgan on fixed images and save this rank's weights (run by test_distributed).

Usage: python ddp_worker.py OUT KEY=VALUE... (plain, or under torchrun); with cond.n_classes=K
the images are labelled, image i of class i mod K.
"""

import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from gankit.config import resolve
from gankit.data.sources import Images
from gankit.training import loop, state
from gankit.training.loop import train

# the loop's agreement collectives (signals, clock, checkpoint time; a checkpoint's finite check)
calls = []
_reduce = loop.all_reduce_max
for module in (loop, state):
    module.all_reduce_max = lambda flags, rt: calls.append(len(calls)) or _reduce(flags, rt)

out, sets = Path(sys.argv[1]), sys.argv[2:]
images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (128, 3, 32, 32), np.uint8))
cfg = resolve("dcgan", sets)
if cfg.cond.n_classes:  # labelled: image i is class i mod K
    k = cfg.cond.n_classes
    images = Images(images, {"classes": [f"c{i}" for i in range(k)]}, torch.arange(128) % k)
trainer = train(cfg, out / "run", images, progress=False)
rank = dist.get_rank() if dist.is_initialized() else 0
weights = {f"G.{k}": v for k, v in trainer.g.state_dict().items()}
weights |= {f"D.{k}": v for k, v in trainer.d.state_dict().items()}
torch.save(weights, out / f"rank{rank}.pt")
(out / f"rank{rank}.calls").write_text(str(len(calls)))
if dist.is_initialized():
    dist.barrier()
    dist.destroy_process_group()
