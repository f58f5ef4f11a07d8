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


def test_slerp_endpoints_and_norm():
    import torch

    from gankit.generate import slerp

    a, b = torch.randn(3, 16), torch.randn(3, 16)
    b = b / b.norm(dim=1, keepdim=True) * a.norm(dim=1, keepdim=True)  # equal norms
    t = torch.linspace(0, 1, 5).view(1, 5, 1)
    z = slerp(a.unsqueeze(1), b.unsqueeze(1), t)
    torch.testing.assert_close(z[:, 0], a)
    torch.testing.assert_close(z[:, -1], b, rtol=1e-5, atol=1e-5)
    # on the great circle: every point keeps the endpoints' norm (a straight line would not)
    torch.testing.assert_close(z.norm(dim=2), a.norm(dim=1, keepdim=True).expand(3, 5))


def test_interpolation_rows_run_between_two_samples(run, tmp_path):
    import torch

    from gankit.generate import interpolate

    g, _, _ = load_generator(run)
    imgs = interpolate(g, rows=3, steps=5, seed=7)
    assert imgs.shape == (15, 32, 32, 3)
    gen = torch.Generator().manual_seed(7)
    ends = torch.randn(2, 3, g.latent_dim, generator=gen)
    from gankit.reports.images import to_uint8

    with torch.no_grad():
        first, last = to_uint8(g(ends[0])), to_uint8(g(ends[1]))
    assert np.array_equal(imgs.reshape(3, 5, 32, 32, 3)[:, 0], first)
    assert np.abs(imgs.reshape(3, 5, 32, 32, 3)[:, -1].astype(int) - last).max() <= 1


def test_cli_interpolation_png_and_gif(run, tmp_path, capsys):
    from gankit.cli import main

    main(["generate", str(run), "--n", "2", "--interpolate", "4", "--out", str(tmp_path / "i.png")])
    assert Image.open(tmp_path / "i.png").size == (4 * 34 + 2, 2 * 34 + 2)
    main(["generate", str(run), "--n", "2", "--interpolate", "4", "--out", str(tmp_path / "i.gif")])
    gif = Image.open(tmp_path / "i.gif")
    assert gif.n_frames == 4 + 2  # there and back again
    with pytest.raises(SystemExit) as exc:
        main(["generate", str(run), "--interpolate", "4", "--out", str(tmp_path / "i.npz")])
    assert exc.value.code == 2 and "--interpolate" in capsys.readouterr().err


def test_progress_animation_has_every_sampled_epoch(tmp_path, tiny_cfg, images):
    from gankit.reports.plots import plot_run

    run = tmp_path / "anim"
    train(tiny_cfg("dcgan", "train.epochs=3", "train.sample_every=1"), run, images,
          progress=False, on_epoch=plot_run)
    gif = Image.open(run / "samples" / "progress.gif")
    assert gif.n_frames == 3
    for k in range(3):
        gif.seek(k)
        frame = np.asarray(gif.convert("RGB"))
        png = np.asarray(Image.open(run / "samples" / f"epoch-{k + 1:06d}.png").convert("RGB"))
        assert frame.shape == png.shape and np.abs(frame.astype(int) - png).mean() < 8  # GIF palette


def test_a_shard_of_the_samples_is_the_slice_of_the_whole_draw(run):
    """A DDP rank's share (``part``) draws every latent as one process does and keeps its
    slice, so the shards concatenate to the single-process samples."""
    from gankit.generate import shard

    g, _, _ = load_generator(run, device="cpu")
    whole = sample_images(g, 23, seed=5, batch_size=10)
    parts = [sample_images(g, 23, seed=5, batch_size=10, part=shard(23, r, 3)) for r in range(3)]
    assert [len(p) for p in parts] == [7, 8, 8]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
