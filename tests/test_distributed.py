"""The training loop under torchrun: two CPU ranks (gloo) train one run folder."""

import os
import subprocess
import sys

from gankit.io import read_jsonl

from .conftest import TINY


def test_torchrun_two_ranks(tmp_path, fake_cifar):
    run = tmp_path / "ddp"
    sets = [x for t in [*TINY, "data.limit=128", "train.epochs=2"] for x in ("--set", t)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "gankit.cli", "train", "--preset", "sagan", "--data-dir", str(fake_cifar),
         "--out", str(run), "--no-progress", *sets],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    epochs = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]  # written once, by rank 0
    # each rank takes half an epoch: 128 images / (16 per step * 2 ranks) = 4 steps
    assert epochs[-1]["step"] == 8
    assert (run / "checkpoints" / "epoch-000002.safetensors").is_file()
