import numpy as np
import pytest
from PIL import Image

from gankit.errors import GankitError
from gankit.generate import load_generator, sample_images, write_images
from gankit.training import checkpoint
from gankit.training.loop import train


@pytest.fixture
def run(tmp_path_factory, tiny_cfg, images):
    run = tmp_path_factory.mktemp("gen") / "run"
    train(tiny_cfg("sagan", "train.epochs=1"), run, images, progress=False)
    return run


def test_generator_outputs(run, tmp_path):
    g, cfg, epoch = load_generator(run)  # a run folder resolves to its latest checkpoint
    assert epoch == 1 and cfg.name == "sagan"
    imgs = sample_images(g, 10, seed=3)
    assert imgs.shape == (10, 32, 32, 3) and imgs.dtype == np.uint8
    assert np.array_equal(imgs, sample_images(g, 10, seed=3))  # seeded
    assert write_images(imgs, tmp_path / "g.png") == "grid"
    assert Image.open(tmp_path / "g.png").size == (4 * 34 + 2, 3 * 34 + 2)
    write_images(imgs, tmp_path / "x.npz")
    with np.load(tmp_path / "x.npz") as z:
        assert np.array_equal(z["images"], imgs)
    write_images(imgs, tmp_path / "folder")
    assert len(list((tmp_path / "folder").glob("*.png"))) == 10


def test_foreign_files_are_not_checkpoints(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(GankitError, match="not a gankit checkpoint"):
        load_generator(junk)
    import torch
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(GankitError, match="format tag"):
        load_generator(other)
    with pytest.raises(GankitError, match="not found"):
        load_generator(tmp_path / "missing.safetensors")


def test_missing_state_blocks_resume_clearly(run):
    (_, path), = checkpoint.epoch_checkpoints(run / "checkpoints")
    checkpoint.state_path(path).unlink()
    assert checkpoint.epoch_checkpoints(run / "checkpoints") == []
    with pytest.raises(GankitError, match="missing"):
        checkpoint.load_state(path)
