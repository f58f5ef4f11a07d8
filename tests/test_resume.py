"""Resume is bit-identical on the CPU from any checkpoint (mid-epoch, after a signal, after a
time budget), with every feature on; non-finite losses stop cleanly or roll back."""

import json
import signal

import pytest
import torch
import yaml
from safetensors.torch import load_file

from gankit.errors import GankitError
from gankit.io import read_jsonl
from gankit.metrics.training import TrainingFID
from gankit.training import checkpoint
from gankit.training.loop import TrainingStopped, train
from gankit.training.step import GANStep

from .stubs import StubExtractor

FEATURES = {
    "dcgan-dropout-hflip": ("dcgan", ["data.hflip=true"]),
    "sagan-bn-sn-attention": ("sagan", []),
    "wgan-gp-ndis2": ("dcgan", ["loss.name=wgan-gp", "discriminator.output=linear",
                                "optim.n_dis=2"]),
    "ema-diffaugment-linear-decay": ("dcgan", ["augment.policy=[color, translation, cutout]",
                                               "ema.enabled=true", "optim.schedule=linear"]),
    "resnet-hinge-ndis2": ("sngan-resnet", ["generator.base_channels=16",
                                            "generator.widths=[16, 16, 16]",
                                            "discriminator.widths=[16, 16, 16, 16]",
                                            "optim.n_dis=2", "train.batch_size=16"]),
    "fid-tracking-1-thread": ("sagan", ["train.fid_every=1", "train.fid_n=64",
                                        "train.fid_ref=test[0:64]", "perf.threads=1"]),
}


def _final(run):
    (_, path), *_ = reversed(checkpoint.resume_checkpoints(run / "checkpoints"))
    return load_file(str(path)), checkpoint.load_state(path)


def _assert_same_run(a, b):
    (wa, sa), (wb, sb) = _final(a), _final(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert sa["global_step"] == sb["global_step"]
    for opt in ("g_opt", "d_opt"):
        for pa, pb in zip(sa["step"][opt]["state"].values(), sb["step"][opt]["state"].values(),
                          strict=True):
            assert all(torch.equal(pa[k], pb[k]) for k in pa)
    fids = [[r["fid"] for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "fid"]
            for run in (a, b)]
    assert fids[0] == fids[1]


@pytest.fixture
def after_step(monkeypatch):
    """``after_step[n] = action``: call ``action(step)`` once, right after global step n."""
    hooks: dict = {}
    orig = GANStep.__call__

    def patched(self, reals):
        orig(self, reals)
        action = hooks.pop(int(self._step_no), None)
        if action is not None:
            action(self)

    monkeypatch.setattr(GANStep, "__call__", patched)
    return hooks


def interrupt(_step):
    signal.raise_signal(signal.SIGINT)


def poison(step):
    """Set one of D's weights to NaN: the next step's losses are not finite."""
    with torch.no_grad():
        next(step.d_plain.parameters()).fill_(float("nan"))


def _evaluator(cfg, fake_cifar):
    return TrainingFID(cfg, fake_cifar, None, extractor=StubExtractor()) if cfg.train.fid_every \
        else None


@pytest.mark.parametrize("feature", FEATURES)
def test_signal_mid_epoch_then_resume_is_bit_identical(tmp_path, tiny_cfg, images, fake_cifar,
                                                      after_step, feature):
    preset, extra = FEATURES[feature]
    cfg = tiny_cfg(preset, "train.epochs=3", "train.checkpoint_every=3", *extra)
    ev = _evaluator(cfg, fake_cifar)
    train(cfg, tmp_path / "a", images, progress=False, evaluator=ev)
    # stop mid-epoch 1, exactly at the end of epoch 2's first half, and once more
    spe = len(images) // (cfg.train.batch_size // (2 if cfg.train.d_batch == "half" else 1)) \
        // cfg.optim.n_dis
    stops = [3, spe + spe // 2, 2 * spe + 1]
    after_step.update(dict.fromkeys(stops, interrupt))
    run = tmp_path / "b"
    for k, at in enumerate(stops):
        with pytest.raises(TrainingStopped) as exc:
            train(cfg, run, images, progress=False, evaluator=ev, resume=k > 0)
        assert exc.value.step == at and exc.value.signum == signal.SIGINT
        assert checkpoint.resume_checkpoints(run / "checkpoints")[-1][0] == at
    train(cfg, run, images, progress=False, evaluator=ev, resume=True)
    _assert_same_run(tmp_path / "a", run)
    recs = read_jsonl(run / "metrics.jsonl")
    steps = [r["step"] for r in recs if r["kind"] == "step"]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # no replayed records
    assert [r["reason"] for r in recs if r["kind"] == "end"] == ["signal"] * 3 + ["epochs"]


def test_time_budget_stops_with_checkpoint_and_final_fid_then_resumes(tmp_path, tiny_cfg, images,
                                                                      fake_cifar):
    cfg = tiny_cfg("sagan", "train.epochs=2", "train.fid_every=2", "train.fid_n=64",
                   "train.fid_ref=test[0:64]")
    ev = _evaluator(cfg, fake_cifar)
    train(cfg, tmp_path / "a", images, progress=False, evaluator=ev)
    budget = cfg.model_copy(update={"train": cfg.train.model_copy(update={"minutes": 1e-9})})
    t = train(budget, tmp_path / "b", images, progress=False, evaluator=ev)
    assert t.global_step == 1  # stops within one step of the budget
    recs = read_jsonl(tmp_path / "b" / "metrics.jsonl")
    assert [r["reason"] for r in recs if r["kind"] == "end"] == ["budget"]
    (fid,) = [r for r in recs if r["kind"] == "fid"]
    assert fid["step"] == 1 and (tmp_path / "b" / "checkpoints" / "best.safetensors").is_file()
    assert list((tmp_path / "b" / "samples").glob("final-step-*.png"))
    assert checkpoint.resume_checkpoints(tmp_path / "b" / "checkpoints")[-1][0] == 1
    # the final FID did not disturb anything: continuing gives the uninterrupted weights
    t = train(cfg, tmp_path / "b", images, progress=False, evaluator=ev, resume=True)
    assert t.epoch == 2
    wa, wb = _final(tmp_path / "a")[0], _final(tmp_path / "b")[0]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_minute_checkpoints_keep_only_the_newest_step_file(tmp_path, tiny_cfg, images):
    cfg = tiny_cfg("dcgan", "train.epochs=2", "train.checkpoint_every=5",
                   "train.checkpoint_minutes=1e-9")  # due after every step
    train(cfg, tmp_path / "r", images, progress=False)
    names = sorted(p.name for p in (tmp_path / "r" / "checkpoints").glob("*.safetensors"))
    assert names == ["epoch-000002.safetensors"]  # older step- files pruned
    cfg1 = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 1})})
    train(cfg1, tmp_path / "s", images, progress=False)
    ck = tmp_path / "s" / "checkpoints"
    assert sorted(p.name for p in ck.glob("*.safetensors")) == ["epoch-000001.safetensors"]
    assert not list(ck.glob(".*.tmp"))


def test_resume_with_another_fid_protocol_starts_a_new_best(tmp_path, tiny_cfg, images, fake_cifar):
    cfg = tiny_cfg("sagan", "train.epochs=1", "train.fid_every=1", "train.fid_n=64",
                   "train.fid_ref=test[0:64]")
    run = tmp_path / "r"
    train(cfg, run, images, progress=False, evaluator=_evaluator(cfg, fake_cifar))
    old_best = json.loads(checkpoint.read_meta(run / "checkpoints" / "best.safetensors")["fid"])
    cfg2 = cfg.model_copy(update={"train": cfg.train.model_copy(
        update={"epochs": 2, "fid_n": 80, "fid_ref": "test[0:96]"})})
    t = train(cfg2, run, images, progress=False, evaluator=_evaluator(cfg2, fake_cifar), resume=True)
    assert t.best["protocol"] == {"n": 80, "ref": "test[0:96]", "mode": "tf"}
    assert t.best["epoch"] == 2  # not compared with the 64-image FID of epoch 1
    (note,) = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "resume"]
    assert note["fid_protocol_changed"]["old"]["n"] == 64
    kept = run / "checkpoints" / note["old_best_kept_as"]
    assert json.loads(checkpoint.read_meta(kept)["fid"]) == old_best
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["fid_n"] == 80


def test_failed_resume_changes_nothing(tmp_path, tiny_cfg, images):
    cfg = tiny_cfg("dcgan", "train.epochs=1")
    run = tmp_path / "r"
    train(cfg, run, images, progress=False)
    (_, path), = checkpoint.resume_checkpoints(run / "checkpoints")
    st = checkpoint.load_state(path)
    del st["noise_rng"]
    torch.save(st, checkpoint.state_path(path))
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    cfg2 = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 3})})
    with pytest.raises(GankitError, match="lacks noise_rng"):
        train(cfg2, run, images, progress=False, resume=True)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_edited_config_that_no_longer_fits_the_weights(tmp_path, tiny_cfg, images):
    cfg = tiny_cfg("dcgan", "train.epochs=1")
    train(cfg, tmp_path / "r", images, progress=False)
    wider = tiny_cfg("dcgan", "train.epochs=2", "generator.widths=[8, 8, 16]")
    with pytest.raises(GankitError, match="does not fit the run's config.yaml"):
        train(wider, tmp_path / "r", images, progress=False, resume=True)


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_cfg, images,
                                                                 after_step):
    cfg = tiny_cfg("dcgan", "train.epochs=3", "train.checkpoint_every=1")  # 16 steps an epoch
    after_step[20] = poison
    with pytest.raises(GankitError, match=r"non-finite .* at step 21 \(epoch 2\).*epoch-000001") as exc:
        train(cfg, tmp_path / "r", images, progress=False)
    assert "on_nonfinite=rollback" in str(exc.value)
    ckpts = checkpoint.resume_checkpoints(tmp_path / "r" / "checkpoints")
    assert [s for s, _ in ckpts] == [16]
    assert all(torch.isfinite(v).all() for v in load_file(str(ckpts[0][1])).values())
    assert read_jsonl(tmp_path / "r" / "metrics.jsonl")[-1]["reason"] == "nonfinite"


def test_nonfinite_loss_rolls_back_with_halved_learning_rates(tmp_path, tiny_cfg, images,
                                                             after_step):
    cfg = tiny_cfg("dcgan", "train.epochs=3", "train.checkpoint_every=1",
                   "train.on_nonfinite=rollback")
    after_step[20] = poison
    t = train(cfg, tmp_path / "r", images, progress=False)
    assert t.epoch == 3 and t.rollbacks == 1 and t.lr_scale == 0.5
    assert t.step.g_opt.param_groups[0]["lr"] == pytest.approx(cfg.optim.g_lr / 2)
    recs = read_jsonl(tmp_path / "r" / "metrics.jsonl")
    (rb,) = [r for r in recs if r["kind"] == "rollback"]
    assert rb["step"] == 16 and rb["bad_step"] == 21
    w, _ = _final(tmp_path / "r")
    assert all(torch.isfinite(v).all() for v in w.values())
