"""Train a tiny dcgan with FID tracking, sharded over the ranks (run by test_distributed).

Usage: python ddp_fid_worker.py OUT KEY=VALUE... (under torchrun). OUT/ref.npz is the reference.
Writes OUT/rankR.embedded (images this rank embedded during training) and, on rank 0,
OUT/fid.json: the FID the run logged and the FID one process computes of the same G.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from gankit.config import resolve
from gankit.io import read_jsonl
from gankit.metrics.training import TrainingFID
from gankit.training.loop import train
from stubs import StubExtractor  # this folder is on a script's path

out, sets = Path(sys.argv[1]), sys.argv[2:]
rank = int(os.environ.get("RANK", "0"))
cfg = resolve("dcgan", [*sets, f"train.fid_ref={out / 'ref.npz'}"])
ext = StubExtractor()
ev = TrainingFID(cfg, None, None, extractor=ext, reference=rank == 0)
ext.count = 0  # the reference's own features do not count
images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (128, 3, 32, 32), np.uint8))
state = train(cfg, out / "run", images, progress=False, evaluator=ev)
(out / f"rank{rank}.embedded").write_text(str(ext.count))
if rank == 0:
    logged = [r for r in read_jsonl(out / "run" / "metrics.jsonl") if r["kind"] == "fid"]
    single = ev(state.g_eval)  # one process, every sample, the same final weights
    (out / "fid.json").write_text(json.dumps({"logged": logged[-1]["fid"], "single": single["fid"],
                                              "ranks": logged[-1].get("ranks"),
                                              "evals": len(logged)}))
if dist.is_initialized():
    dist.barrier()
    dist.destroy_process_group()
