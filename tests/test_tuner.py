"""The measured tuner: candidates timed side by side, cached per device/torch/model, forced
settings respected, bf16 only where its losses match fp32."""

import json

import pytest
import torch

from gankit.training import tuner

CPU = torch.device("cpu")


class FakeClock:
    """Stands in for timing: a table of seconds per step by label, and recorded calls."""

    def __init__(self, secs, losses=None):
        self.secs, self.losses, self.calls = secs, losses or {}, []

    def __call__(self, cfg, choice, device):
        self.calls.append(choice.label)
        base = {"d_loss_real": 0.7, "d_loss_fake": 0.6, "g_loss": 0.9}
        return self.secs(choice), self.losses.get(choice.precision, base)


@pytest.fixture
def bf16_cpu(monkeypatch):
    monkeypatch.setattr(tuner, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(tuner, "thread_budget", lambda world=1: 2)


def _speed(fast_bf16=True, fast_cl=True, fast_one_thread=False):
    def secs(c):
        s = 1.0
        s *= 0.5 if (c.precision == "bf16") == fast_bf16 else 1.0
        s *= 0.8 if c.channels_last == fast_cl else 1.0
        s *= 0.9 if (c.threads == 1) == fast_one_thread else 1.0
        return s
    return secs


def test_picks_the_fastest_measured_and_records_timings(tiny_cfg, bf16_cpu):
    for fast_bf16 in (True, False):  # bf16 is faster on one machine, slower on another
        clock = FakeClock(_speed(fast_bf16=fast_bf16, fast_cl=False))
        rec = tuner.search(tiny_cfg("dcgan"), CPU, measure_fn=clock)
        assert rec["choice"]["precision"] == ("bf16" if fast_bf16 else "fp32")
        assert rec["choice"]["channels_last"] is False and rec["choice"]["threads"] == 2
        assert len(rec["timings_ms"]) == 5  # 2 precisions x 2 layouts, then 1 thread count
        assert set(clock.calls[:4]) == {"fp32, NCHW, 2 threads", "fp32, channels_last, 2 threads",
                                        "bf16, NCHW, 2 threads", "bf16, channels_last, 2 threads"}


def test_fewer_threads_win_when_measured_faster(tiny_cfg, bf16_cpu):
    rec = tuner.search(tiny_cfg("dcgan"), CPU, measure_fn=FakeClock(_speed(fast_one_thread=True)))
    assert rec["choice"]["threads"] == 1


def test_bf16_is_rejected_when_its_losses_differ(tiny_cfg, bf16_cpu):
    bad = {"bf16": {"d_loss_real": 0.7, "d_loss_fake": 0.9, "g_loss": 0.9}}
    rec = tuner.search(tiny_cfg("dcgan"), CPU, measure_fn=FakeClock(_speed(), bad))
    assert rec["choice"]["precision"] == "fp32"
    assert rec["rejected"] and all("differ from fp32" in r for r in rec["rejected"].values())


def test_forced_settings_win_over_auto(tiny_cfg, bf16_cpu):
    cfg = tiny_cfg("dcgan", "perf.precision=fp32")
    clock = FakeClock(_speed(fast_bf16=True))
    out, rec = tuner.resolve(cfg, measure_fn=clock)
    assert out.perf.precision == "fp32" and all(c.startswith("fp32") for c in clock.calls)
    cfg = tiny_cfg("dcgan", "perf.precision=bf16", "perf.channels_last=false", "perf.threads=2")
    clock = FakeClock(_speed())
    out, rec = tuner.resolve(cfg, measure_fn=clock)
    assert clock.calls == [] and rec["forced"]
    assert (out.perf.precision, out.perf.channels_last, out.perf.threads) == ("bf16", False, 2)
    # compile=auto with nothing left to tune on the CPU is off (it was bool("auto") = on)
    assert out.perf.compile is False and rec["choice"]["compile"] is False
    out, _ = tuner.resolve(tiny_cfg("dcgan", "perf.precision=fp32", "perf.channels_last=true",
                                    "perf.threads=2", "perf.compile=true"), measure_fn=clock)
    assert out.perf.compile is True and out.perf.channels_last is True


def test_cache_hit_miss_and_invalidation(tiny_cfg, bf16_cpu, tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path))
    clock = FakeClock(_speed())
    cfg = tiny_cfg("dcgan")
    first = tuner.tune(cfg, CPU, measure_fn=clock)
    n = len(clock.calls)
    assert not first["cached"] and n == 5
    again = tuner.tune(cfg, CPU, measure_fn=clock)  # hit: nothing timed
    assert again["cached"] and len(clock.calls) == n and again["choice"] == first["choice"]
    changed = tiny_cfg("dcgan", "generator.widths=[8, 8, 16]")  # another model: a miss
    assert not tuner.tune(changed, CPU, measure_fn=clock)["cached"] and len(clock.calls) == 2 * n
    assert tuner.cache_key(cfg, CPU) != tuner.cache_key(changed, CPU)
    # the run-length settings do not change the key (same step cost)
    assert tuner.cache_key(tiny_cfg("dcgan", "train.epochs=7"), CPU) == tuner.cache_key(cfg, CPU)
    data = json.loads((tmp_path / "tuner.json").read_text())
    assert len(data) == 2 and all("timings_ms" in v for v in data.values())
    assert all("|precision=auto,channels_last=auto," in k for k in data)
    # a choice searched with precision forced does not answer a search where it is auto
    forced = tiny_cfg("dcgan", "perf.precision=bf16")
    assert not tuner.tune(forced, CPU, measure_fn=clock)["cached"]
    assert tuner.cache_key(forced, CPU) != tuner.cache_key(cfg, CPU)
    assert tuner.tune(cfg, CPU, measure_fn=clock)["cached"]
    monkeypatch.setattr(torch, "__version__", "0.0.0-other")  # a new torch: a miss
    assert not tuner.tune(cfg, CPU, measure_fn=clock)["cached"]


def test_real_measurement_leaves_the_global_rng_alone(tiny_cfg):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    threads = torch.get_num_threads()
    choice = tuner.Choice("fp32", True, 1, False)
    secs, losses = tuner.measure(tiny_cfg("dcgan"), choice, CPU, steps=1, warmup=0)
    assert secs > 0 and set(losses) >= {"d_loss_real", "d_loss_fake", "g_loss"}
    assert torch.equal(torch.get_rng_state(), state) and torch.get_num_threads() == threads


def test_training_records_the_choice(tmp_path, tiny_cfg, images):
    from gankit.training.loop import train

    train(tiny_cfg("dcgan", "train.epochs=1"), tmp_path / "r", images, progress=False)
    rec = json.loads((tmp_path / "r" / "run.json").read_text())
    perf = rec["perf"]
    assert perf["choice"]["precision"] in ("fp32", "bf16") and perf["timings_ms"]
    assert rec["runtime"]["precision"] == perf["choice"]["precision"]
    assert rec["runtime"]["channels_last"] == perf["choice"]["channels_last"]
