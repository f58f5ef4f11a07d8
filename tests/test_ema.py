"""The EMA generator: the update against a hand-computed average, buffers copied, warm-up,
batch-norm statistics recomputed for the averaged weights."""

import pytest
import torch
from torch import nn

from gankit.training.ema import (
    EMA,
    STANDING_BATCH_SIZE,
    STANDING_BATCHES,
    STANDING_SEED,
    standing_statistics,
)


def _net(dropout: float = 0.0):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Dropout(dropout), nn.BatchNorm1d(4), nn.Linear(4, 2))
    net.latent_dim = 3
    return net


def _expected_stats(linear: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """By hand: the pre-batch-norm activations of the fixed latents; the mean of the batch means
    and of the unbiased batch variances (equal-sized batches)."""
    gen = torch.Generator().manual_seed(STANDING_SEED)
    with torch.no_grad():
        xs = [linear(torch.randn(STANDING_BATCH_SIZE, 3, generator=gen))
              for _ in range(STANDING_BATCHES)]
    return (torch.stack([x.mean(0) for x in xs]).mean(0),
            torch.stack([x.var(0, unbiased=True) for x in xs]).mean(0))


def test_standing_statistics_are_computed_for_the_weights_with_only_batch_norm_training():
    net = _net(dropout=0.5).train()  # dropout active would change the variances
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[0].bias.add_(1.0)
        net[2].running_mean.fill_(7.0)  # stale statistics that must not leak in
    before = {k: v.clone() for k, v in net.named_parameters()}
    assert standing_statistics(net)
    mean, var = _expected_stats(net[0])
    torch.testing.assert_close(net[2].running_mean, mean)
    torch.testing.assert_close(net[2].running_var, var)
    assert net[2].momentum == 0.1 and all(m.training for m in net.modules())  # restored
    assert all(torch.equal(v, before[k]) for k, v in net.named_parameters())
    assert not standing_statistics(nn.Sequential(nn.Linear(3, 3)))  # no batch norm: no-op


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
    assert torch.equal(ema.model[2].running_mean, net[2].running_mean)
    assert torch.equal(ema.model[2].num_batches_tracked, net[2].num_batches_tracked)
    assert not any(p.requires_grad for p in ema.model.parameters())
    # ... and recomputed for the averaged weights before the averaged G is used
    model = ema.averaged()
    mean, var = _expected_stats(model[0])
    torch.testing.assert_close(model[2].running_mean, mean)
    torch.testing.assert_close(model[2].running_var, var)
    assert not model.training


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
    bn = [k for k in parts["G"] if k.endswith("running_mean")]  # own statistics, not G's
    assert bn and all(not torch.equal(parts["G"][k], parts["G_ema"][k]) for k in bn)
    g_ema, _, _ = load_generator(tmp_path / "r")
    g_raw, _, _ = load_generator(tmp_path / "r", raw=True)
    for (k, a), b in zip(g_ema.state_dict().items(), t.ema.model.state_dict().values(),
                         strict=True):
        if "running_" in k:  # recomputed by generate: equal up to float summation order
            torch.testing.assert_close(a.cpu(), b.cpu(), msg=k)
        else:
            assert torch.equal(a.cpu(), b.cpu()), k
    raw, ema = g_raw.state_dict().values(), g_ema.state_dict().values()
    assert any(not torch.equal(a, b) for a, b in zip(raw, ema, strict=True))
    assert all(torch.equal(a, b.cpu()) for a, b in zip(raw, t.g.state_dict().values(), strict=True))
