"""Shared fixtures: a synthetic CIFAR-10 folder, tiny configs, an isolated cache."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.config import resolve

TINY = [
    "generator.base_channels=16", "generator.widths=[8, 8, 8]",
    "discriminator.widths=[8, 8, 8, 8]", "train.batch_size=16", "train.log_every=2",
    "train.n_samples=4",
]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's cache; keep real-data paths from the environment."""
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _fixed_timings(cfg, choice, device):
    """The tuner's measurement in tests: fp32 NCHW is the fastest, every candidate's losses
    agree. Seconds per step, first step's losses, as ``tuner.measure`` returns them."""
    fast = choice.precision == "fp32" and not choice.channels_last and not choice.compile
    return (1.0 if fast else 2.0), {"d_loss_real": 0.0, "d_loss_fake": 0.0, "g_loss": 0.0}


@pytest.fixture(autouse=True)
def _one_speed_setting(request, monkeypatch):
    """Runs that leave perf.* on auto still go through the tuner (search, record, cache), but
    on fixed timings: a test's numerics must not depend on whether this CPU happens to time
    bf16 faster, and timing real candidates cost ~10 s per tiny config (80 s of the suite).
    tests/test_tuner.py and tests that pass their own ``measure_fn`` are unaffected;
    subprocesses (torchrun, kill -9, the examples) time for real or fix perf.* themselves."""
    if request.module.__name__.endswith("test_tuner"):
        return
    from gankit.training import tuner

    real = tuner.search

    def search(cfg, device, world_size=1, measure_fn=tuner.measure):
        timed = _fixed_timings if measure_fn is tuner.measure else measure_fn
        return real(cfg, device, world_size, timed)

    monkeypatch.setattr(tuner, "search", search)


def write_cifar(folder: Path, n_train: int = 50000, n_test: int = 10000, seed: int = 0) -> Path:
    """A CIFAR-10 'python version' folder with the official layout and class balance."""
    rng = np.random.default_rng(seed)
    root = folder / "cifar-10-batches-py"
    root.mkdir(parents=True)
    per = n_train // 5
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        n = per if i < 5 else n_test
        data = np.zeros((n, 3072), np.uint8)
        data[:, :64] = rng.integers(0, 256, (n, 64), dtype=np.uint8)
        labels = [int(x) for x in np.arange(n) % 10]
        with open(root / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"x",
                         b"filenames": [b"f"] * n}, f, protocol=2)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"c"] * 10}, f, protocol=2)
    return folder


@pytest.fixture(scope="session")
def fake_cifar(tmp_path_factory) -> Path:
    return write_cifar(tmp_path_factory.mktemp("cifar"))


@pytest.fixture
def tiny_cfg():
    def make(preset: str = "dcgan", *extra: str):
        return resolve(preset, [*TINY, *extra])

    return make


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.integers(0, 256, (128, 3, 32, 32), dtype=np.uint8))




def real_paths() -> tuple[str, str]:
    data, inc = os.environ.get("GANKIT_DATA_DIR"), os.environ.get("GANKIT_INCEPTION")
    if not data or not inc:
        pytest.skip("set GANKIT_DATA_DIR and GANKIT_INCEPTION for real-data tests")
    return data, inc
