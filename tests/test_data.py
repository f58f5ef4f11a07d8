import dataclasses
import pickle
import tarfile

import pytest
import torch

from gankit.data import BatchSampler, load_cifar10
from gankit.data import cifar as cifar_mod
from gankit.errors import GankitError

from .conftest import write_cifar


def test_loads_both_splits_as_uint8(fake_cifar):
    x, y = load_cifar10(fake_cifar, "train")
    assert x.shape == (50000, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.bincount(y).tolist() == [5000] * 10
    xt, _ = load_cifar10(fake_cifar / "cifar-10-batches-py", "test")
    assert xt.shape == (10000, 3, 32, 32)


def test_env_var_gives_the_data_dir(fake_cifar, monkeypatch):
    monkeypatch.setenv("GANKIT_DATA_DIR", str(fake_cifar))
    assert load_cifar10(None, "test")[0].shape[0] == 10000


def test_archive_is_extracted_once(fake_cifar, tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(fake_cifar / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    folder = cifar_mod.locate(archive)
    assert (folder / "test_batch").is_file()
    assert cifar_mod.locate(tmp_path) == folder  # cached; a folder holding the archive works too


def test_offline_download_fails_fast_naming_data_dir(tmp_path, monkeypatch):
    offline = dataclasses.replace(cifar_mod.CIFAR10, url="http://nonexistent.invalid/c.tar.gz")
    monkeypatch.setitem(cifar_mod.KINDS, "cifar10", offline)
    with pytest.raises(GankitError, match="--data-dir"):
        load_cifar10(tmp_path / "empty", "train")
    assert not list((tmp_path / "empty").glob("*.part"))


def test_corrupt_and_wrong_files_are_named(tmp_path):
    root = write_cifar(tmp_path / "a", n_train=500, n_test=100)
    with pytest.raises(GankitError, match="train split .* has 500 images"):
        load_cifar10(root, "train")
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(b"garbage")
    with pytest.raises(GankitError, match="test_batch is corrupt"):
        load_cifar10(root, "test")
    with open(root / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": [[1]], b"labels": [3]}, f)
    with pytest.raises(GankitError, match="test_batch: 'data' is not a uint8 matrix"):
        load_cifar10(root, "test")
    bad = tmp_path / "cifar-10-python.tar.xz"
    bad.write_bytes(b"not an archive")
    with pytest.raises(GankitError, match="corrupt"):
        load_cifar10(bad, "test")


def test_sampler_covers_an_epoch_without_repeats(images):
    x = images.clone()
    x[:, 0, 0, 0] = torch.arange(128, dtype=torch.uint8)
    s = BatchSampler(x, 32, torch.Generator().manual_seed(0))
    batches = list(s.epoch())
    assert len(batches) == 4 and batches[0].shape == (32, 3, 32, 32)
    assert batches[0].min() >= -1 and batches[0].max() <= 1
    ids = torch.cat([((b[:, 0, 0, 0] + 1) * 127.5).round() for b in batches]).long()
    assert sorted(ids.tolist()) == list(range(128))


def test_hflip_flips_some_images(images):
    s = BatchSampler(images, 128, torch.Generator().manual_seed(0), hflip=True)
    (b,) = list(s.epoch())
    plain = BatchSampler(images, 128, torch.Generator().manual_seed(0))
    (p,) = list(plain.epoch())
    flipped = (b != p).flatten(1).any(1)
    assert 20 < flipped.sum() < 108
    assert torch.equal(b[flipped], p[flipped].flip(3))


class _Payload:
    """Unpickling this calls os.system: what a crafted CIFAR batch would do."""

    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        import os

        return (os.system, (self.cmd,))


@pytest.mark.parametrize("where", ["data", "labels", "top"])
def test_malicious_batch_does_not_run_code(tmp_path, where):
    root = write_cifar(tmp_path / "a", n_train=500, n_test=100)
    marker = tmp_path / "pwned"
    payload = _Payload(f"touch {marker}")
    good = {b"data": torch.zeros(100, 3072, dtype=torch.uint8).numpy(), b"labels": [0] * 100}
    obj = payload if where == "top" else {**good, where.encode(): payload}
    with open(root / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump(obj, f, protocol=2)
    with pytest.raises(GankitError, match="not a plain CIFAR batch.*posix.system"):
        load_cifar10(root, "test")
    assert not marker.exists()


def test_object_arrays_are_refused(tmp_path):
    import numpy as np

    root = write_cifar(tmp_path / "a", n_train=500, n_test=100)
    with open(root / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": np.array([None] * 4, dtype=object), b"labels": [0]}, f, protocol=2)
    with pytest.raises(GankitError, match="dtype .* not allowed"):
        load_cifar10(root, "test")


def test_a_missing_data_dir_is_not_created(tmp_path, monkeypatch):
    offline = dataclasses.replace(cifar_mod.CIFAR10, url="http://nonexistent.invalid/c.tar.gz")
    monkeypatch.setitem(cifar_mod.KINDS, "cifar10", offline)
    missing = tmp_path / "no" / "such"
    with pytest.raises(GankitError, match="does not exist"):
        load_cifar10(missing, "train")
    assert not (tmp_path / "no").exists()
    monkeypatch.setenv("GANKIT_DATA_DIR", str(missing))
    with pytest.raises(GankitError, match="does not exist"):
        load_cifar10(None, "train")
    assert not (tmp_path / "no").exists()


def test_ranks_share_one_permutation_and_cover_the_epoch_once(images):
    x = images.clone()
    x[:, 0, 0, 0] = torch.arange(128, dtype=torch.uint8)

    def ids(batch):
        return ((batch[:, 0, 0, 0] + 1) * 127.5).round().long().tolist()

    ranks = [BatchSampler(x, 16, torch.Generator().manual_seed(3), rank=r, world_size=2)
             for r in range(2)]
    assert len(ranks[0]) == 4
    per_rank = [[ids(b) for b in s.epoch()] for s in ranks]
    seen = [i for r in per_rank for b in r for i in b]
    assert sorted(seen) == list(range(128))  # every image once across the two ranks
    # the two ranks at batch 16 see exactly the batches one process sees at batch 32
    single = [ids(b) for b in BatchSampler(x, 32, torch.Generator().manual_seed(3)).epoch()]
    assert single == [per_rank[0][i] + per_rank[1][i] for i in range(4)]


def test_epoch_can_start_mid_way_with_the_same_order(images):
    full = list(BatchSampler(images, 16, torch.Generator().manual_seed(5)).epoch())
    gen = torch.Generator().manual_seed(5)
    tail = list(BatchSampler(images, 16, gen).epoch(start=5))
    assert len(tail) == 3 and all(torch.equal(a, b) for a, b in zip(full[5:], tail, strict=True))
    after = torch.Generator().manual_seed(5)
    list(BatchSampler(images, 16, after).epoch())
    assert torch.equal(gen.get_state(), after.get_state())
