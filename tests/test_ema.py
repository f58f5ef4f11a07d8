"""The EMA generator: the update against a hand-computed average, buffers copied, warm-up."""

import pytest
import torch
from torch import nn

from gankit.training.ema import EMA


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_update_is_the_exponential_average_and_buffers_are_copied():
    net = _net()
    ema = EMA(net, decay=0.9, warmup=False)
    w0 = net[0].weight.detach().clone()
    avg = w0.clone()
    for k in range(3):
        with torch.no_grad():
            net[0].weight.add_(float(k + 1))
        net.train()(torch.randn(8, 3))  # moves batch-norm running statistics
        ema.update(net)
        avg = 0.9 * avg + 0.1 * net[0].weight.detach()
    torch.testing.assert_close(ema.model[0].weight, avg)
    assert not torch.allclose(ema.model[0].weight, net[0].weight)
    # running statistics are copied, not averaged
    assert torch.equal(ema.model[1].running_mean, net[1].running_mean)
    assert torch.equal(ema.model[1].num_batches_tracked, net[1].num_batches_tracked)
    assert not any(p.requires_grad for p in ema.model.parameters())


def test_warmup_ramps_the_decay():
    ema = EMA(_net(), decay=0.999, warmup=True)
    seen = []
    for _ in range(3):
        seen.append(ema.current_decay())
        ema.update(ema.model)
    assert seen == pytest.approx([1 / 10, 2 / 11, 3 / 12])
    ema.updates = 100_000
    assert ema.current_decay() == 0.999
    assert EMA(_net(), decay=0.99, warmup=False).current_decay() == 0.99


def test_training_keeps_ema_and_generate_uses_it(tmp_path, tiny_cfg, images):
    from gankit.generate import load_generator
    from gankit.training import checkpoint
    from gankit.training.loop import train

    cfg = tiny_cfg("sagan", "train.epochs=1", "ema.enabled=true", "ema.decay=0.9")
    t = train(cfg, tmp_path / "r", images, progress=False)
    assert t.ema.updates == t.global_step
    (_, path), = checkpoint.resume_checkpoints(tmp_path / "r" / "checkpoints")
    parts = checkpoint.load_tensors(path)
    assert set(parts) == {"G", "D", "G_ema"}
    g_ema, _, _ = load_generator(tmp_path / "r")
    g_raw, _, _ = load_generator(tmp_path / "r", raw=True)
    for (k, a), b in zip(g_ema.state_dict().items(), t.ema.model.state_dict().values(),
                         strict=True):
        assert torch.equal(a.cpu(), b.cpu()), k
    raw, ema = g_raw.state_dict().values(), g_ema.state_dict().values()
    assert any(not torch.equal(a, b) for a, b in zip(raw, ema, strict=True))
    assert all(torch.equal(a, b.cpu()) for a, b in zip(raw, t.g.state_dict().values(), strict=True))
