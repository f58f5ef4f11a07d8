"""The training loop under torchrun: two CPU ranks (gloo) train one run folder."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gankit.io import read_jsonl
from gankit.models import build_models
from gankit.training.runtime import Runtime
from gankit.training.step import GANStep, unwrap

from .conftest import TINY

WORKER = str(Path(__file__).with_name("ddp_worker.py"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _torchrun(args, timeout=300):
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", *args], capture_output=True, text=True,
                         timeout=timeout, env=ENV)
    assert res.returncode == 0, res.stderr[-3000:]


def _close_up_to_adam_rounding(a: torch.Tensor, b: torch.Tensor, name: str,
                               lr: float = 2e-4) -> None:
    """DDP sums the gradient in another order than one process at the full batch, and Adam
    divides by sqrt(v): an element whose gradient is ~0 can take a visibly different step
    from a rounding difference (seen on a 2-core AMD EPYC Zen 1: 141 of 25,600 elements of the
    conditional G's first conv off by up to 3.8e-5 after 8 steps, the rest within 1e-5). So:
    99% of the elements within 1e-5 + 1e-4 |b|, and none off by half an Adam step (lr / 2).
    Mis-routed labels or latents move most elements by several steps."""
    if not a.is_floating_point():
        assert torch.equal(a, b), name
        return
    off = (a - b).abs() > 1e-5 + 1e-4 * b.abs()
    assert off.float().mean() <= 0.01, (name, int(off.sum()), a.numel())
    assert (a - b).abs().max() <= lr / 2, (name, float((a - b).abs().max()))


def test_torchrun_two_ranks(tmp_path, fake_cifar):
    run = tmp_path / "ddp"
    sets = [x for t in [*TINY, "data.limit=128", "train.epochs=2"] for x in ("--set", t)]
    _torchrun(["-m", "gankit.cli", "train", "--preset", "sagan", "--data-dir", str(fake_cifar),
               "--out", str(run), "--no-progress", *sets])
    epochs = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]  # written once, by rank 0
    # the ranks share an epoch: 128 images / (16 per step * 2 ranks) = 4 steps
    assert epochs[-1]["step"] == 8
    assert (run / "checkpoints" / "epoch-000002.safetensors").is_file()


COND = ["cond.n_classes=10", "cond.discriminator=projection", "cond.fake_labels=data",
        f"generator.arch={Path(__file__).with_name('cond_nets.py')}:LabelG"]


@pytest.mark.parametrize("g_fake", [[], ["optim.g_fake=reuse", "train.d_batch=full"], COND],
                         ids=["plain", "reuse", "labels"])
def test_two_ranks_equal_one_process_at_the_full_batch(tmp_path, g_fake):
    """Batch-norm-free model: W ranks at batch b == 1 process at batch W*b (same data order,
    same latents), both ranks hold the same weights, and logged losses are all-rank means;
    also when G's DDP forward runs in the D step and its backward in the G step (reuse), and
    class-conditional (issue 23): each rank's real labels travel with its images and its fake
    labels are its slice of the global draw (a BN-free conditional G, a projection D)."""
    common = [*TINY, "discriminator.dropout=0.0", "train.epochs=2", "train.log_every=2",
              "perf.precision=fp32", *g_fake]
    _torchrun([WORKER, str(tmp_path / "ddp"), *common, "train.batch_size=16"])
    res = subprocess.run([sys.executable, WORKER, str(tmp_path / "one"), *common,
                          "train.batch_size=32"], capture_output=True, text=True, env=ENV,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    # 8 steps, one checkpoint: the ranks agreed once (the checkpoint's non-finite check),
    # not at every step boundary (the clock is compared every CLOCK_EVERY steps under DDP)
    assert [int((tmp_path / "ddp" / f"rank{r}.calls").read_text()) for r in (0, 1)] == [1, 1]
    r0, r1 = (torch.load(tmp_path / "ddp" / f"rank{r}.pt") for r in (0, 1))
    one = torch.load(tmp_path / "one" / "rank0.pt")
    assert r0.keys() == r1.keys() == one.keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
        _close_up_to_adam_rounding(r0[k], one[k], k)
    logs = [[r for r in read_jsonl(tmp_path / d / "run" / "metrics.jsonl") if r["kind"] == "step"]
            for d in ("ddp", "one")]
    assert [r["step"] for r in logs[0]] == [r["step"] for r in logs[1]]
    for a, b in zip(*logs, strict=True):
        for key in ("d_loss_real", "d_loss_fake", "g_loss"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5)


def test_step_wraps_ddp_and_compile_itself(tmp_path, tiny_cfg):
    """DDP + torch.compile used to crash reading ``has_batchnorm`` through the wrappers."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        for preset, concat in (("dcgan", True), ("sagan", False)):
            cfg = tiny_cfg(preset)
            g, d = build_models(cfg)
            rt = Runtime(torch.device("cpu"), None, False, rank=0, world_size=2)
            step = GANStep(cfg, g, d, rt, torch.Generator(), compile=True)
            assert isinstance(unwrap(step.d), type(d)) and unwrap(step.d) is d
            assert unwrap(step.g) is g and step.concat_d is concat
            assert step._z_d.shape[0] == 2 * step.n_real  # latents of the global batch
    finally:
        dist.destroy_process_group()


def test_fid_during_training_is_sharded_over_the_ranks(tmp_path):
    """Issue 24.4: FID used to run on rank 0 while the other ranks waited in a collective.
    Now each of 2 ranks embeds half the samples and rank 0's FID equals one process's."""
    import numpy as np

    out = tmp_path / "ddp"
    out.mkdir()
    rng = np.random.default_rng(1)
    np.savez(out / "ref.npz", images=rng.integers(0, 256, (60, 32, 32, 3), np.uint8))
    worker = str(Path(__file__).with_name("ddp_fid_worker.py"))
    _torchrun([worker, str(out), *TINY, "train.epochs=2", "train.fid_every=1", "train.fid_n=30",
               "perf.precision=fp32", "discriminator.dropout=0.0"])
    import json

    rec = json.loads((out / "fid.json").read_text())
    assert rec["evals"] == 2 and rec["ranks"] == 2
    assert rec["logged"] == pytest.approx(rec["single"], rel=1e-4)  # same samples, same features
    # 2 evaluations x 15 samples each: every rank did its half, not rank 0 all of it
    assert [int((out / f"rank{r}.embedded").read_text()) for r in (0, 1)] == [30, 30]


def _tiny_run(tmp_path, fake_cifar, *extra):
    """A tiny class-conditional dcgan run (one epoch on 64 images) to sample from."""
    run = tmp_path / "run"
    sets = [*TINY, "data.limit=64", "train.epochs=1", "cond.n_classes=10", "generator.norm=batch",
            *extra]
    res = subprocess.run([sys.executable, "-m", "gankit.cli", "train", "--preset", "dcgan",
                          "--data-dir", str(fake_cifar), "--out", str(run), "--no-progress",
                          *[x for s in sets for x in ("--set", s)]],
                         capture_output=True, text=True, env=ENV, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return run


def test_generate_under_torchrun_is_the_single_process_draw(tmp_path, fake_cifar):
    """Issue 24.4: ``gankit generate`` under torchrun: each rank samples its share, rank 0
    writes the pixels and labels one process writes."""
    import numpy as np

    run = _tiny_run(tmp_path, fake_cifar)
    args = ["-m", "gankit.cli", "generate", str(run), "-n", "37", "--seed", "3"]
    _torchrun([*args, "--out", str(tmp_path / "ddp.npz")])
    res = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one.npz")],
                         capture_output=True, text=True, env=ENV, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    with np.load(tmp_path / "ddp.npz") as d, np.load(tmp_path / "one.npz") as o:
        assert d["images"].shape == (37, 32, 32, 3)
        np.testing.assert_array_equal(d["images"], o["images"])
        np.testing.assert_array_equal(d["labels"], o["labels"])
        assert sorted(np.bincount(d["labels"])) == [3] * 3 + [4] * 7  # class-balanced


def test_fid_under_torchrun_is_sharded_and_equals_one_process(tmp_path, fake_cifar):
    """Issue 24.4: ``gankit fid`` / ``fid-stats`` under torchrun: each of 2 ranks generates and
    embeds its share (41 = 20 + 21 generated, 50 = 25 + 25 real), rank 0's FID, KID and
    intra-FID equal one process's, and a cached reference is skipped by every rank."""
    import json

    run = _tiny_run(tmp_path, fake_cifar)
    worker = str(Path(__file__).with_name("ddp_eval_worker.py"))
    outs = {}
    for name, launch in (("ddp", _torchrun), ("one", None)):
        out = tmp_path / name
        out.mkdir()
        env = {**ENV, "GANKIT_CACHE": str(out / "cache")}  # each side computes its own cache
        args = [worker, str(out), str(run), str(fake_cifar)]
        if launch:
            res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                  "--nproc_per_node=2", *args], capture_output=True, text=True,
                                 timeout=300, env=env)
        else:
            res = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                                 timeout=300, env=env)
        assert res.returncode == 0, res.stderr[-3000:]
        outs[name] = [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]
    (r0, r1), (one,) = outs["ddp"], outs["one"]
    assert [r0["counts"], r1["counts"]] == [
        {"compare": 20 + 25, "generated": 20, "stats": 25, "cached": 0},
        {"compare": 21 + 25, "generated": 21, "stats": 25, "cached": 0}]
    assert one["counts"] == {"compare": 91, "generated": 41, "stats": 50, "cached": 0}
    assert r1["record"] is None and "mu" not in r1  # rank 0 alone has the results
    a, b = r0["record"], one["record"]
    assert (a["n_a"], a["n_b"]) == (b["n_a"], b["n_b"]) == (41, 50)
    for key in ("fid", "kid_mean", "kid_std", "intra_fid"):
        assert a[key] == pytest.approx(b[key], rel=1e-9), key
    assert a["intra_fid_per_class"] == pytest.approx(b["intra_fid_per_class"], rel=1e-9)
    assert r0["mu"] == one["mu"] and r0["mu"][0] == r0["mu"][1]  # computed == read from cache
