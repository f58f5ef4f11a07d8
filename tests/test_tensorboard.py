"""TensorBoard shows the numbers of metrics.jsonl and the sample grids."""

import pytest

from gankit.io import read_jsonl
from gankit.training.loop import train


def test_scalars_and_grids_reach_tensorboard(tmp_path, tiny_cfg, images):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "r"
    train(tiny_cfg("dcgan", "train.epochs=2", "train.sample_every=1", "train.tensorboard=true"),
          run, images, progress=False)
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0}).Reload()
    steps = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "step"]
    g = acc.Scalars("loss/g_loss")
    assert [e.step for e in g] == [r["step"] for r in steps]
    assert [e.value for e in g] == pytest.approx([r["g_loss"] for r in steps], rel=1e-6)
    assert {"lr/g_lr", "lr/d_lr", "speed/real_images_per_s", "speed/epoch_seconds"} <= \
        set(acc.Tags()["scalars"])
    assert len(acc.Images("samples")) == 2


def test_missing_tensorboard_is_one_clear_error(tmp_path, tiny_cfg, images, monkeypatch):
    import builtins

    from gankit.errors import GankitError

    real_import = builtins.__import__

    def no_tb(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tb)
    with pytest.raises(GankitError, match="pip install tensorboard"):
        train(tiny_cfg("dcgan", "train.epochs=1", "train.tensorboard=true"), tmp_path / "r",
              images, progress=False)
    assert not (tmp_path / "r").exists()
