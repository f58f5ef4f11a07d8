"""The CUDA / DDP code paths, checked without a GPU: each test names the defect it guards."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from gankit.errors import GankitError
from gankit.losses import gradient_penalty
from gankit.models import build_models
from gankit.training import runtime, tuner
from gankit.training.loop import CLOCK_EVERY, NonFiniteLoss, clock_due
from gankit.training.runtime import Runtime
from gankit.training.state import TrainingState
from gankit.training.step import GANStep, _adam

CPU = torch.device("cpu")


def test_adam_fallback_keeps_every_parameter(monkeypatch):
    """A failed fused constructor used to consume the parameters() generator, leaving the
    multi-tensor fallback with no parameters."""
    real = torch.optim.Adam

    def no_fused(params, **kw):
        if kw.get("fused"):
            list(params)  # what a real constructor does before it fails
            raise RuntimeError("fused=True requires CUDA")
        return real(params, **kw)

    monkeypatch.setattr(torch.optim, "Adam", no_fused)
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    opt = _adam(net.parameters(), 1e-3, (0.5, 0.999))
    assert len(opt.param_groups[0]["params"]) == 4
    assert not opt.defaults.get("fused")


@pytest.mark.parametrize(("capability", "expected"), [((7, 0), torch.float16),
                                                      ((7, 5), torch.float16),
                                                      ((8, 0), torch.bfloat16),
                                                      ((9, 0), torch.bfloat16)])
def test_auto_precision_uses_fp16_where_bf16_is_emulated(monkeypatch, capability, expected):
    """V100 / T4 report is_bf16_supported() (emulated): they must get fp16 + GradScaler."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: capability)
    cuda = torch.device("cuda", 0)
    assert runtime._pick_dtype("auto", cuda) == expected
    prec = tuner._precisions(tuner.PerfConfig(), cuda)
    assert prec == ["fp32", "bf16" if expected == torch.bfloat16 else "fp16"]


class _Linear(nn.Module):
    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return (x.flatten(1) * self.w).sum(1)


@pytest.mark.parametrize("scale", [1.0, 2.0**16])
def test_gradient_penalty_closed_form_with_the_amp_scale(scale):
    """D(x) = <w, x> has input gradient w everywhere: penalty (||w|| - 1)^2, whatever the
    GradScaler scale the fp16 recipe multiplies in and divides out."""
    w = torch.full((3 * 2 * 2,), 0.5)
    real, fake = torch.rand(4, 3, 2, 2), torch.rand(4, 3, 2, 2)
    gp = gradient_penalty(_Linear(w), real, fake, scale=scale)
    assert gp.item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-6)


def test_wgan_gp_step_under_torch_compile(monkeypatch, tiny_cfg):
    """The penalty's double backward through a compiled D raised 'torch.compile with
    aot_autograd does not currently support double backward'; D now stays eager with
    WGAN-GP and G compiles. aot_eager exercises the same autograd path as inductor."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    cfg = tiny_cfg("dcgan", "loss.name=wgan-gp", "discriminator.output=linear",
                   "discriminator.dropout=0.0")
    g, d = build_models(cfg)
    step = GANStep(cfg, g, d, Runtime(CPU, None, False), torch.Generator().manual_seed(0),
                   compile=True)
    assert hasattr(step.g, "_orig_mod") and not hasattr(step.d, "_orig_mod")
    step([torch.rand(cfg.train.n_real, 3, 32, 32) * 2 - 1])
    stats = step.pop_stats()
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values()) and stats["gp"] > 0


def test_a_failing_candidate_is_rejected_not_fatal(tiny_cfg, monkeypatch):
    monkeypatch.setattr(tuner, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(tuner, "thread_budget", lambda world=1: 1)

    def measure(cfg, choice, device):
        if choice.precision == "bf16":
            raise RuntimeError("backend cannot compile this model\nlong trace")
        return 1.0 if choice.channels_last else 2.0, {"d_loss_real": 1, "d_loss_fake": 1,
                                                       "g_loss": 1}

    rec = tuner.search(tiny_cfg(), CPU, measure_fn=measure)
    assert rec["choice"]["precision"] == "fp32" and rec["choice"]["channels_last"]
    assert rec["rejected"] == {
        "bf16, NCHW, 1 threads": "failed: RuntimeError: backend cannot compile this model",
        "bf16, channels_last, 1 threads":
            "failed: RuntimeError: backend cannot compile this model"}
    with pytest.raises(GankitError, match="every speed setting failed"):
        tuner.search(tiny_cfg(), CPU, measure_fn=lambda *a: (_ for _ in ()).throw(OSError("x")))


def test_clock_check_is_every_step_alone_and_every_k_steps_under_ddp():
    assert all(clock_due(s, 1) for s in range(1, 60))
    due = [s for s in range(1, 3 * CLOCK_EVERY + 1) if clock_due(s, 2)]
    assert due == [CLOCK_EVERY, 2 * CLOCK_EVERY, 3 * CLOCK_EVERY]


@pytest.mark.parametrize("where", ["G", "D", "EMA"])
def test_a_checkpoint_with_non_finite_weights_is_refused(tiny_cfg, images, tmp_path, where):
    """save() used to check only G's weights: a NaN in D or in the EMA G was written."""
    cfg = tiny_cfg("dcgan", "ema.enabled=true", "perf.precision=fp32",
                   "perf.channels_last=false", "perf.threads=1")
    tr = TrainingState(cfg, images, Runtime(CPU, None, False))
    module = {"G": tr.g, "D": tr.d, "EMA": tr.ema.model}[where]
    with torch.no_grad():
        next(module.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(NonFiniteLoss):
        tr.save(tmp_path, "x")
    assert not list(tmp_path.iterdir())


def test_sync_bn_selection():
    """auto: SyncBatchNorm only for batch-norm models under CUDA DDP; true on the CPU is one
    clear error (PyTorch's SyncBatchNorm runs on GPUs only)."""
    import torch

    from gankit.errors import GankitError
    from gankit.training.runtime import use_sync_bn

    bn = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert use_sync_bn("auto", cuda, 2, bn) and use_sync_bn(True, cuda, 4, bn)
    assert not use_sync_bn("auto", cuda, 1, bn)          # one process: nothing to sync
    assert not use_sync_bn("auto", cuda, 2, plain)       # no batch norm
    assert not use_sync_bn(False, cuda, 2, bn)
    assert not use_sync_bn("auto", cpu, 2, bn)           # gloo: per-rank statistics
    with pytest.raises(GankitError, match="needs CUDA"):
        use_sync_bn(True, cpu, 2, bn)
    converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(bn)
    assert isinstance(converted[1], torch.nn.SyncBatchNorm)
    assert set(converted.state_dict()) == set(bn.state_dict())  # checkpoints stay compatible


def test_new_ranks_after_a_resume_get_their_own_rng_streams():
    """Resuming an epoch checkpoint of 2 ranks with 4: ranks 2 and 3 used to copy rank 0's
    global RNG state (identical dropout / DiffAugment draws); now each derives its own."""
    from gankit.training.state import rank_seed

    seeds = [rank_seed(0, r, 1562) for r in range(4)]
    assert len(set(seeds)) == 4
    assert rank_seed(0, 2, 1562) == seeds[2]            # reproducible
    assert rank_seed(1, 2, 1562) != seeds[2] and rank_seed(0, 2, 1563) != seeds[2]


def test_prdc_goes_to_the_gpu_when_there_is_one(monkeypatch):
    """Issue 24.7: precision/recall's 50k x 50k distances ran in float64 on the CPU even on a
    GPU machine (minutes, while the other DDP ranks wait). ``auto`` now places them on the GPU:
    this CPU-only build fails trying, which shows it tried; ``cpu`` still works."""
    import numpy as np

    from gankit.metrics.prdc import prdc

    feats = np.random.default_rng(0).normal(size=(20, 8))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises((AssertionError, RuntimeError), match="CUDA|cuda"):
        prdc(feats, feats)
    assert prdc(feats, feats, device="cpu")["precision"] == 1.0


def test_more_ranks_than_gpus_is_an_error_unless_gloo_shares_them(monkeypatch):
    """A 2-rank torchrun on a one-GPU machine used to die in ``set_device(1)`` (invalid device
    ordinal); now it is one clear error, and ``perf.backend=gloo`` shares the GPU round-robin
    (the functional DDP check scripts/gpu_check.sh runs on one GPU)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: None)
    assert runtime.pick_device("cuda", 0) == torch.device("cuda", 0)
    with pytest.raises(GankitError, match="nproc_per_node=1.*perf.backend=gloo"):
        runtime.pick_device("cuda", 1)
    assert runtime.pick_device("cuda", 1, share=True) == torch.device("cuda", 0)
    assert runtime.pick_device("cuda:0", 1) == torch.device("cuda", 0)  # an explicit device


def test_nccl_on_the_cpu_is_an_error():
    from gankit.config import PerfConfig

    with pytest.raises(GankitError, match="perf.backend=nccl needs CUDA"):
        runtime.setup(PerfConfig(device="cpu", backend="nccl"))
