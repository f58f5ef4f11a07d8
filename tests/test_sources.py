"""Image datasets from folders, zips, arrays and CIFAR-100 (gankit.data.sources)."""

from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.data import load_cifar, load_images
from gankit.data import sources as src_mod
from gankit.errors import GankitError


def _pixels(n: int = 12, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _png_folder(folder, arr, nested: bool = True):
    """PNGs named so that sorting by relative path gives the array order."""
    for i, a in enumerate(arr):
        sub = folder / (f"part{i // 5}" if nested else "")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(sub / f"img{i:04d}.png")
    return folder


def test_folder_zip_and_arrays_give_the_same_pixels(tmp_path):
    arr = _pixels()
    folder = _png_folder(tmp_path / "pngs", arr)  # nested: found recursively
    (folder / "notes.txt").write_text("not an image")  # ignored
    with zipfile.ZipFile(tmp_path / "imgs.zip", "w") as zf:
        for p in sorted(folder.rglob("*.png")):
            zf.write(p, p.relative_to(folder).as_posix())
    np.savez(tmp_path / "imgs.npz", images=arr)
    np.save(tmp_path / "imgs.npy", arr.transpose(0, 3, 1, 2))  # N x 3 x H x W works too
    want = torch.from_numpy(arr).permute(0, 3, 1, 2)
    for spec in ("pngs", "imgs.zip", "imgs.npz", "imgs.npy"):
        got = load_images(tmp_path / spec, progress=False)
        assert got.pixels.dtype == torch.uint8 and torch.equal(got.pixels, want), spec
        assert got.info["n"] == 12 and got.info["resolution"] == 32


def test_center_crop_then_named_filter(tmp_path):
    rng = np.random.default_rng(1)
    wide = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)  # H 32, W 40
    Image.fromarray(wide).save(tmp_path / "a.png")
    got = load_images(tmp_path, resolution=32, progress=False)
    # a 40-wide image loses 4 columns on each side; no resize at the right size
    assert torch.equal(got.pixels[0], torch.from_numpy(wide[:, 4:36]).permute(2, 0, 1))
    big = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    (tmp_path / "a.png").unlink()
    Image.fromarray(big).save(tmp_path / "b.png")
    got = load_images(tmp_path, resolution=32, resize_filter="box", progress=False)
    # the box filter halving a size is the mean of each 2x2 block
    blocks = big.reshape(32, 2, 32, 2, 3).astype(float).mean(axis=(1, 3))
    diff = np.abs(got.pixels[0].permute(1, 2, 0).numpy().astype(float) - blocks)
    assert diff.max() <= 1.0  # PIL rounds in fixed point; nearest or a shift is off by ~100
    assert got.info["resize_filter"] == "box"
    nearest = load_images(tmp_path, resolution=32, resize_filter="nearest", progress=False)
    assert not torch.equal(nearest.pixels, got.pixels)  # the filter is part of the cache key


def test_other_modes_are_converted_and_said(tmp_path, capsys):
    rng = np.random.default_rng(2)
    gray = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "a.png")
    Image.fromarray(_pixels(1)[0]).convert("RGBA").save(tmp_path / "b.png")
    Image.fromarray(_pixels(1, seed=3)[0]).save(tmp_path / "c.webp", lossless=True)
    got = load_images(tmp_path, progress=False)
    assert got.info["converted_to_rgb"] == {"L": 1, "RGBA": 1}
    assert "converted to RGB: 1 L, 1 RGBA" in capsys.readouterr().err
    assert all(torch.equal(got.pixels[0, c], torch.from_numpy(gray)) for c in range(3))
    assert torch.equal(got.pixels[2], torch.from_numpy(_pixels(1, seed=3)[0]).permute(2, 0, 1))


def test_unreadable_files_are_named_and_counted(tmp_path):
    _png_folder(tmp_path, _pixels(4), nested=False)
    (tmp_path / "broken1.png").write_bytes(b"not a png")
    (tmp_path / "broken2.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(GankitError, match=r"2 of 6 files could not be read.*broken1\.png.*broken2"):
        load_images(tmp_path, progress=False)


@pytest.mark.parametrize("make, match", [
    (lambda p: p.mkdir(), "no PNG/JPEG/WebP images found"),
    (lambda p: (p.mkdir(), Image.fromarray(_pixels(1)[0]).save(p / "a.png"),
                Image.fromarray(_pixels(1, 48)[0]).save(p / "b.png")), "differ in size.*resolution"),
    (lambda p: (p.parent / "x.zip").write_bytes(b"junk"), "as a zip"),
    (lambda p: np.save(p.parent / "x.npy", np.zeros((2, 8, 8, 3), np.float32)), "uint8"),
])
def test_bad_sources_give_one_clear_error(tmp_path, make, match):
    make(tmp_path / "d")
    spec = next(p for p in tmp_path.iterdir())
    with pytest.raises(GankitError, match=match):
        load_images(spec, progress=False)


def test_decoded_once_and_redecoded_when_the_source_changes(tmp_path, monkeypatch):
    arr = _pixels(6)
    folder = _png_folder(tmp_path / "f", arr, nested=False)
    first = load_images(folder, resolution=32, progress=False)
    with monkeypatch.context() as m:  # (undo() would also drop the isolated cache)
        m.setattr(src_mod, "_decode_all", lambda *a, **k: pytest.fail("decoded again"))
        assert torch.equal(load_images(folder, resolution=32, progress=False).pixels, first.pixels)
    arr[0] = 255 - arr[0]
    Image.fromarray(arr[0]).save(folder / "img0000.png")  # same names, new pixels
    again = load_images(folder, resolution=32, progress=False)
    assert torch.equal(again.pixels[0], torch.from_numpy(arr[0]).permute(2, 0, 1))


def _write_cifar100(root, n_train=500, n_test=100):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"fine_labels": [i % 100 for i in range(n)],
                         b"coarse_labels": [i % 20 for i in range(n)]}, f, protocol=2)
    return root


def test_cifar100_layout(tmp_path, monkeypatch):
    root = _write_cifar100(tmp_path)
    with pytest.raises(GankitError, match="expected 50000 with 500 per class"):
        load_cifar("cifar100", root, "train")  # a real copy has all 50,000
    from gankit.data import cifar

    small = {"train": 500, "test": 100}
    monkeypatch.setattr(cifar, "_expected", lambda split: small[split])
    x, y = load_cifar("cifar100", root, "test")
    assert x.shape == (100, 3, 32, 32) and int(y.max()) == 99
    img = load_images("cifar100:train[10:20]", data_dir=root, progress=False)
    assert img.pixels.shape == (10, 3, 32, 32) and img.info["kind"] == "cifar100"
    with open(root / "cifar-100-python" / "test", "rb") as f:
        raw = pickle.load(f)[b"data"]
    assert torch.equal(x, torch.from_numpy(raw.reshape(-1, 3, 32, 32)))


@pytest.mark.filterwarnings("ignore:FID")  # 20 samples of 48 stand-in features
def test_train_on_a_png_folder_at_64px_with_fid_and_pr(tmp_path, capsys, monkeypatch):
    """The issue's user story end to end: own PNGs -> stats -> training with FID/PR against
    them -> runs table (Inception replaced by a cheap stand-in)."""
    import json

    from gankit.cli import main
    from gankit.io import read_jsonl

    from .conftest import TINY
    from .stubs import StubExtractor

    monkeypatch.setattr("gankit.metrics.training.FeatureExtractor", lambda *a, **k: StubExtractor())
    monkeypatch.setattr("gankit.cli._extractor", lambda *a, **k: StubExtractor())
    folder = _png_folder(tmp_path / "mine", _pixels(40, size=48))  # 48 px, resized to 64

    def run(args):
        try:
            main(args)
        except SystemExit as exc:
            assert exc.code in (0, None), capsys.readouterr().err
        return capsys.readouterr().out

    out = run(["fid-stats", str(folder), "--resolution", "64"])
    assert "40 images" in out
    sets = [x for t in [*TINY, "data.resolution=64", "data.resize_filter=bicubic",
                        "train.epochs=2", "train.fid_n=20", "train.sample_every=1"] for x in ("--set", t)]
    run_dir = tmp_path / "run"
    run(["train", "--preset", "dcgan", "--data", str(folder), "--out", str(run_dir),
         "--fid-every", "1", "--fid-ref", str(folder), "--fid-pr", "--no-progress", *sets])
    rec = json.loads((run_dir / "run.json").read_text())
    # the nested folders are classes by the ImageFolder convention, recorded with their counts
    assert rec["data"] == {"source": str(folder), "kind": "folder", "n": 40, "resolution": 64,
                           "resize_filter": "bicubic", "classes": [f"part{i}" for i in range(8)],
                           "class_counts": [5] * 8}
    fids = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r["kind"] == "fid"]
    assert len(fids) == 2 and fids[0]["ref"] == str(folder) and fids[0]["n_ref"] == 40
    assert {"precision", "recall", "density", "coverage"} <= set(fids[0])
    assert fids[0]["pr_n_real"] == 20 and fids[0]["pr_n_fake"] == 20
    with Image.open(run_dir / "samples" / "epoch-000001.png") as grid:
        assert grid.size[0] > 2 * 64  # a grid of 64-px samples
    assert "@64px" in run(["runs", str(tmp_path)])


@pytest.mark.parametrize("dataset, ref, want", [
    ("cifar10", "train", "cifar10:train"),
    ("cifar10", "test[0:1000]", "cifar10:test[0:1000]"),
    ("cifar100", "test", "cifar100:test"),
    ("my/images", "train", "my/images"),
    ("my/images", "other/imgs.zip", "other/imgs.zip"),
    ("cifar10", "ref.npz", "ref.npz"),
])
def test_fid_reference_names_the_training_data(dataset, ref, want):
    from gankit.config import resolve
    from gankit.metrics.training import reference_spec

    cfg = resolve("dcgan", [f"data.dataset={dataset}", f"train.fid_ref={ref}"])
    assert reference_spec(cfg) == want


def test_a_custom_dataset_has_no_test_split():
    from gankit.config import resolve
    from gankit.metrics.training import reference_spec

    with pytest.raises(GankitError, match="names a CIFAR split"):
        reference_spec(resolve("dcgan", ["data.dataset=my/images", "train.fid_ref=test"]))
