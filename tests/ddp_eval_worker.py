"""``gankit fid``'s work under torchrun with a counting stub for Inception (run by
test_distributed).

Usage: python ddp_eval_worker.py OUT RUN DATA_DIR (plain, or under torchrun). Compares the
run's generator (41 samples, class-balanced) with ``cifar10:test[0:50]`` (FID, KID and
intra-FID), then the statistics of ``cifar10:test[50:100]`` twice (computed, then cached).
Writes OUT/rankR.json: the images this rank embedded per phase and, on rank 0, the records.
"""

import json
import sys
from pathlib import Path

from gankit.metrics.shards import join
from gankit.metrics.sources import compare, load_source, source_stats
from stubs import StubExtractor  # this folder is on a script's path

out, run, data_dir = (Path(a) for a in sys.argv[1:4])
world = join()
ext = StubExtractor()
a = load_source(str(run), n=41, world=world)
b = load_source("cifar10:test[0:50]", data_dir=data_dir, world=world)
rec = compare(a, b, ext, with_kid=True, with_intra=True, world=world)
counts = {"compare": ext.count, "generated": len(a.images)}
stats = []
c = load_source("cifar10:test[50:100]", data_dir=data_dir, world=world)
for phase in ("stats", "cached"):
    ext.count = 0
    s, _ = source_stats(c, ext, world=world)  # first computed and cached, then read back
    counts[phase] = ext.count
    stats.append(None if s is None else s.mu.tolist()[:5])
result = {"counts": counts, "world": world.size}
if world.main:
    result |= {"record": {k: v for k, v in rec.items() if k != "seconds"}, "mu": stats}
else:
    result["record"] = rec
(out / f"rank{world.rank}.json").write_text(json.dumps(result))
