"""kill -9 at random moments, several times, some of them inside a checkpoint write: every
visible file stays whole, and resuming each time ends with the weights of a run that was
never interrupted (bit for bit)."""

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from gankit.training import checkpoint

from .conftest import TINY

pytestmark = pytest.mark.slow

SETS = [*TINY, "data.limit=256", "train.epochs=3", "train.checkpoint_every=1",
        "train.checkpoint_minutes=1e-9",  # a checkpoint after every step: many writes to hit
        "train.sample_every=1",
        # fixed speed settings: every process runs the same numerics without asking the tuner
        "perf.precision=fp32", "perf.channels_last=true", "perf.threads=1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _start(run: Path, data: Path, resume: bool) -> subprocess.Popen:
    args = [sys.executable, "-m", "gankit.cli", "train", "--data-dir", str(data), "--no-progress"]
    if resume:
        args += ["--resume", str(run)]
    else:
        args += ["--preset", "dcgan", "--out", str(run),
                 *[x for s in SETS for x in ("--set", s)]]
    return subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_during_write(proc: subprocess.Popen, ckpt_dir: Path) -> bool:
    """kill -9 the moment a temp file of an atomic write shows up; False if none was seen."""
    while proc.poll() is None:
        try:
            names = os.listdir(ckpt_dir)
        except FileNotFoundError:
            continue
        if any(n.endswith(".tmp") for n in names):
            proc.kill()
            proc.wait()
            return True
    return False


def _kill_at_random(proc: subprocess.Popen, metrics: Path, rng: random.Random) -> bool:
    """kill -9 at a random moment after this process started writing; False if it finished."""
    size = metrics.stat().st_size if metrics.exists() else 0
    while proc.poll() is None and (not metrics.exists() or metrics.stat().st_size == size):
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 0.4))
    if proc.poll() is not None:
        return False
    proc.kill()
    proc.wait()
    return True


def _assert_everything_visible_is_whole(run: Path) -> None:
    yaml.safe_load((run / "config.yaml").read_text())
    json.loads((run / "run.json").read_text())
    for line in (run / "metrics.jsonl").read_text().splitlines():
        json.loads(line)  # no torn record
    for png in (run / "samples").glob("*.png"):
        Image.open(png).load()
    for ck in (run / "checkpoints").glob("*.safetensors"):
        load_file(str(ck))
        if checkpoint.state_path(ck).exists():
            checkpoint.load_state(ck)
    for st in (run / "checkpoints").glob("*.state.pt"):
        torch.load(st, weights_only=True)


def test_kill_9_and_resume_gives_the_uninterrupted_weights(tmp_path, fake_cifar):
    ref = tmp_path / "ref"
    proc = _start(ref, fake_cifar, resume=False)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]

    run, rng = tmp_path / "killed", random.Random(1234)
    kills, during_write, started = 0, 0, False
    for attempt in range(40):
        proc = _start(run, fake_cifar, resume=started)
        started = True
        if attempt % 2:
            hit = _kill_during_write(proc, run / "checkpoints")
            during_write += hit
        else:
            hit = _kill_at_random(proc, run / "metrics.jsonl", rng)
        if not hit:  # the run finished before a kill landed
            assert proc.wait() == 0, proc.stderr.read().decode()[-2000:]
            break
        kills += 1
        _assert_everything_visible_is_whole(run)
        if kills >= 6 and during_write >= 3:
            break
    assert kills >= 4 and during_write >= 2, (kills, during_write)
    if hit:  # the last process was killed: finish the run
        proc = _start(run, fake_cifar, resume=True)
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]
    _assert_everything_visible_is_whole(run)
    assert not list((run / "checkpoints").glob(".*.tmp"))
    a = load_file(str(ref / "checkpoints" / "epoch-000003.safetensors"))
    b = load_file(str(run / "checkpoints" / "epoch-000003.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in recs if r["kind"] == "step"]
    assert steps == sorted(set(steps))  # the lost part of each killed run was dropped
    assert 1 <= len([r for r in recs if r["kind"] == "resume"]) <= kills
    assert [r["epoch"] for r in recs if r["kind"] == "epoch"] == [1, 2, 3]


def test_sigterm_writes_a_checkpoint_and_says_how_to_resume(tmp_path, fake_cifar):
    import signal

    run = tmp_path / "run"
    proc = _start(run, fake_cifar, resume=False)
    metrics = run / "metrics.jsonl"
    while proc.poll() is None and not metrics.exists():
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    err = proc.stderr.read().decode()
    assert "stopped by SIGTERM" in err and f"gankit train --resume {run}" in err
    recs = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert recs[-1]["kind"] == "end" and recs[-1]["reason"] == "signal"
    newest = checkpoint.resume_checkpoints(run / "checkpoints")[-1][0]
    assert newest == recs[-1]["step"]  # the checkpoint holds exactly where it stopped
    proc = _start(run, fake_cifar, resume=True)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]
