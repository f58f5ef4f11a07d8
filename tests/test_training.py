import json

import pytest
import torch
from safetensors.torch import load_file

from gankit.errors import GankitError
from gankit.io import read_jsonl
from gankit.training import checkpoint
from gankit.training.loop import load_run_config, train


def _weights(run_dir, epoch):
    return load_file(str(run_dir / "checkpoints" / f"epoch-{epoch:06d}.safetensors"))


@pytest.mark.parametrize("preset", ["dcgan", "sagan"])
def test_short_run_writes_everything(tmp_path, tiny_cfg, images, preset):
    cfg = tiny_cfg(preset, "train.epochs=2", "train.sample_every=1", "train.checkpoint_every=1")
    run = tmp_path / "run"
    train(cfg, run, images, progress=False)
    assert (run / "samples" / "epoch-000001.png").is_file()
    assert (run / "samples" / "epoch-000002.png").is_file()
    assert [e for e, _ in checkpoint.epoch_checkpoints(run / "checkpoints")] == [1, 2] or \
        [e for e, _ in checkpoint.epoch_checkpoints(run / "checkpoints")] == [2]
    recs = read_jsonl(run / "metrics.jsonl")
    steps = [r for r in recs if r["kind"] == "step"]
    assert {"step", "epoch", "d_loss_real", "d_loss_fake", "g_loss", "real_images_per_s",
            "wall_time"} <= set(steps[0])
    assert all(torch.isfinite(torch.tensor(r["g_loss"])) for r in steps)
    assert [r["epoch"] for r in recs if r["kind"] == "epoch"] == [1, 2]
    rec = json.loads((run / "run.json").read_text())
    assert rec["seed"] == cfg.train.seed and "torch" in rec["versions"] and "git" in rec
    assert load_run_config(run) == cfg
    if preset == "sagan":
        assert "wasserstein" in steps[0]


@pytest.mark.parametrize("preset", ["dcgan", "sagan"])
def test_resume_gives_identical_weights(tmp_path, tiny_cfg, images, preset):
    full = tiny_cfg(preset, "train.epochs=4", "train.checkpoint_every=1", "data.hflip=true")
    train(full, tmp_path / "a", images, progress=False)
    half = full.model_copy(update={"train": full.train.model_copy(update={"epochs": 2})})
    train(half, tmp_path / "b", images, progress=False)
    # simulate an interruption after epoch 3 had started: junk metrics from the lost part
    with open(tmp_path / "b" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"kind": "step", "epoch": 3, "step": 999}) + "\n")
    train(full, tmp_path / "b", images, progress=False, resume=True)
    a, b = _weights(tmp_path / "a", 4), _weights(tmp_path / "b", 4)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps_b = [r["step"] for r in read_jsonl(tmp_path / "b" / "metrics.jsonl")]
    assert 999 not in steps_b


def test_checkpoints_keep_last_and_every_nth(tmp_path, tiny_cfg, images):
    cfg = tiny_cfg("dcgan", "train.epochs=5", "train.checkpoint_every=1", "train.keep_every=2")
    train(cfg, tmp_path / "r", images, progress=False)
    kept = [e for e, _ in checkpoint.epoch_checkpoints(tmp_path / "r" / "checkpoints")]
    assert kept == [2, 4, 5]
    assert not list((tmp_path / "r" / "checkpoints").glob("*.tmp"))


def test_existing_run_dir_is_refused_and_untouched(tmp_path, tiny_cfg, images):
    run = tmp_path / "r"
    run.mkdir()
    (run / "precious.txt").write_text("keep")
    with pytest.raises(GankitError, match="--resume"):
        train(tiny_cfg(), run, images, progress=False)
    assert [p.name for p in run.iterdir()] == ["precious.txt"]


@pytest.mark.parametrize("extra", [
    ["loss.name=hinge", "discriminator.output=linear"],
    ["loss.name=wgan-gp", "discriminator.output=linear", "optim.n_dis=2"],
    ["loss.name=wasserstein", "discriminator.output=linear", "loss.clip=0.01"],
    ["loss.name=bce", "loss.g_mode=minimax", "discriminator.norm=batch"],
])
def test_every_loss_trains(tmp_path, tiny_cfg, images, extra):
    cfg = tiny_cfg("dcgan", "train.epochs=1", *extra)
    t = train(cfg, tmp_path / "r", images, progress=False)
    assert t.global_step == len(images) // (cfg.train.batch_size // 2) // cfg.optim.n_dis
    if cfg.loss.clip:
        assert all(p.abs().max() <= cfg.loss.clip + 1e-6 for p in t.d.parameters())


@pytest.mark.parametrize("schedule, start", [("constant", 0.0), ("linear", 0.0), ("linear", 0.75)])
def test_learning_rate_schedule_start_middle_end(tmp_path, tiny_cfg, images, schedule, start):
    cfg = tiny_cfg("dcgan", "train.epochs=2", "train.log_every=1", f"optim.schedule={schedule}",
                   f"optim.decay_start={start}", "optim.g_lr=1e-3", "optim.d_lr=4e-3")
    t = train(cfg, tmp_path / "r", images, progress=False)
    total = t.total_steps
    assert total == 32
    lrs = {r["step"]: (r["g_lr"], r["d_lr"]) for r in read_jsonl(tmp_path / "r" / "metrics.jsonl")
           if r["kind"] == "step"}
    # hand-written factor of step s (its lr is set after s - 1 of the 32 steps): full until
    # 24 steps are done with decay_start 0.75, then down by 1/8 per step
    expected = {"constant": {1: 1.0, 17: 1.0, 25: 1.0, 32: 1.0},
                "linear": {1: 1.0, 17: 1 - 16 / 32, 25: 1 - 24 / 32, 32: 1 / 32}}[schedule]
    if start:
        expected = {1: 1.0, 17: 1.0, 25: 1.0, 26: 7 / 8, 29: 4 / 8, 32: 1 / 8}
    for s, f in expected.items():
        assert lrs[s] == (pytest.approx(1e-3 * f), pytest.approx(4e-3 * f)), s


def test_linear_schedule_decays_to_zero_over_a_time_budget(tmp_path, tiny_cfg, images):
    # 1,000 epochs would take far longer than the 6-second budget, so the clock decides: the lr
    # of step s is set from the clock read between step s - 1 and step s, so the time it used
    # lies between the two steps' records' wall_times (an epoch-end checkpoint in between, slow
    # under load, made "equal to step s - 1's wall_time" fail by 0.2 s on a busy machine).
    budget_s = 6.0
    cfg = tiny_cfg("dcgan", "train.epochs=1000", "train.log_every=1", "optim.schedule=linear",
                   "optim.g_lr=1e-3", f"train.minutes={budget_s / 60}")
    t = train(cfg, tmp_path / "r", images, progress=False)
    steps = [r for r in read_jsonl(tmp_path / "r" / "metrics.jsonl") if r["kind"] == "step"]
    assert len(steps) == t.global_step > 5
    assert steps[0]["g_lr"] == pytest.approx(1e-3)
    for prev, rec in zip(steps, steps[1:], strict=False):
        lo, hi = (max(w / budget_s, prev["step"] / t.total_steps)
                  for w in (prev["wall_time"], rec["wall_time"]))
        assert 1e-3 * (1 - hi) - 1e-9 <= rec["g_lr"] <= 1e-3 * (1 - lo) + 1e-9, (prev, rec)
    assert steps[-1]["g_lr"] < 0.1e-3  # about one step's time before the end
    # resumed with a budget twice as long, the decay continues from the time already used
    cfg2 = cfg.model_copy(update={"train": cfg.train.model_copy(update={"minutes": 2 * budget_s / 60})})
    train(cfg2, tmp_path / "r", images, progress=False, resume=True)
    after = [r for r in read_jsonl(tmp_path / "r" / "metrics.jsonl")
             if r["kind"] == "step" and r["step"] == t.global_step + 1]
    lo, hi = (w / (2 * budget_s) for w in (steps[-1]["wall_time"], after[0]["wall_time"]))
    assert 1e-3 * (1 - hi) - 1e-9 <= after[0]["g_lr"] <= 1e-3 * (1 - lo) + 1e-9


def test_resuming_a_run_whose_budget_ran_out_trains_no_further(tmp_path, tiny_cfg, images):
    """Resuming a finished budgeted run used to train one more step before the clock check."""
    cfg = tiny_cfg("dcgan", "train.minutes=1e-9", "train.epochs=5")
    run = tmp_path / "r"
    first = train(cfg, run, images, progress=False)
    assert first.global_step == 1  # the budget stops the run after its first step
    again = train(cfg, run, images, progress=False, resume=True)
    assert again.global_step == first.global_step
    ends = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "end"]
    assert [e["reason"] for e in ends] == ["budget", "budget"]


def test_a_pinned_tanh_critic_is_warned_about_once(tmp_path, tiny_cfg, images, capsys):
    """head_gain 1000 pins sndcgan's tanh critic from the first step: one warning record (and
    one stderr line) after 3 saturated log windows, not one per window; the preset's own gain
    over the same steps gives none."""
    sets = ["train.epochs=2", "train.log_every=1", "train.batch_size=16", "data.limit=128"]
    train(tiny_cfg("sndcgan", *sets, "discriminator.head_gain=1000.0"), tmp_path / "pinned",
          images, progress=False)
    recs = read_jsonl(tmp_path / "pinned" / "metrics.jsonl")
    warns = [r for r in recs if r["kind"] == "warning"]
    steps = [r for r in recs if r["kind"] == "step"]
    assert len(steps) >= 6 and all(r["d_saturated"] >= 0.9 for r in steps[:3])
    assert [w["what"] for w in warns] == ["critic_saturated"] and warns[0]["step"] == 3
    assert capsys.readouterr().err.count("the tanh critic is pinned") == 1
    train(tiny_cfg("sndcgan", *sets), tmp_path / "ok", images, progress=False)
    recs = read_jsonl(tmp_path / "ok" / "metrics.jsonl")
    assert not [r for r in recs if r["kind"] == "warning"]
    assert max(r["d_saturated"] for r in recs if r["kind"] == "step") < 0.9
