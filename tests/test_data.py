import pickle
import tarfile

import pytest
import torch

from gankit.data import BatchSampler, load_cifar10
from gankit.data import cifar10 as cifar_mod
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
    monkeypatch.setattr(cifar_mod, "CIFAR10_URL", "http://nonexistent.invalid/c.tar.gz")
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
