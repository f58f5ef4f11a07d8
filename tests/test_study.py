"""``gankit study``: the reference protocol's draws, the selection split, budgets."""

import json

import numpy as np
import pytest

from gankit.generate import load_generator, sample_images
from gankit.io import read_jsonl
from gankit.metrics import training as training_fid
from gankit.metrics.fid import Stats, fid_from_stats
from gankit.metrics.protocol import SAMPLE_SEED
from gankit.metrics.sources import load_source, source_stats
from gankit.study import Protocol, run_study

from .conftest import TINY
from .stubs import StubExtractor

# fixed speed settings: no tuner in a test
SETS = [*TINY, "data.limit=64", "perf.precision=fp32", "perf.channels_last=false", "perf.threads=2"]


def test_study_protocol_by_hand(tmp_path, fake_cifar, monkeypatch):
    real = training_fid.TrainingFID
    monkeypatch.setattr(training_fid, "TrainingFID",
                        lambda cfg, data_dir, inc: real(cfg, data_dir, inc, extractor=StubExtractor()))
    p = Protocol(fid_every=1, track_n=32, select="test[5000:5064]", ref_n=64, draws=3,
                 standard_n=64, standard_ref="test[1000:1064]")
    out = tmp_path / "study"
    res = run_study(out, fake_cifar, None, epochs=3, protocol=p,
                    overrides=SETS, progress=False)
    assert [(r["model"], r["which"]) for r in res["rows"]] == [
        ("sndcgan", "best"), ("sndcgan", "final"), ("sagan", "best"), ("sagan", "final")]
    ext = StubExtractor()
    ref = source_stats(load_source("cifar10:test[0:64]", data_dir=fake_cifar), ext)[0]
    for r in res["rows"]:
        run = out / r["model"] / "seed-0"
        fids = [x for x in read_jsonl(run / "metrics.jsonl") if x["kind"] == "fid"]
        assert {x["ref"] for x in fids} == {"cifar10:test[5000:5064]"}  # never the reported one
        ckpt = "best.safetensors" if r["which"] == "best" else "epoch-000003.safetensors"
        g, _, _ = load_generator(run / "checkpoints" / ckpt)
        want = [fid_from_stats(Stats.from_features(ext(sample_images(g, 64, SAMPLE_SEED + d))),
                               ref) for d in range(3)]
        assert r["fid_ref"]["values"] == pytest.approx(want)
        assert r["fid_ref"]["mean"] == pytest.approx(np.mean(want))
        assert r["fid_ref"]["std"] == pytest.approx(np.std(want, ddof=1))
        if r["which"] == "best":
            best = min(fids, key=lambda x: x["fid"])
            assert r["epoch"] == best["epoch"] and r["fid_select"] == best["fid"]
    saved = json.loads((out / "study.json").read_text())
    assert saved["protocol"]["select"] == "test[5000:5064]" and len(saved["summary"]) == 4
    assert "95% interval" in (out / "report.html").read_text()

    # a rerun (e.g. after a kill during scoring) reuses each generator's saved scores ...
    import gankit.study as study

    def no_draws(*a, **k):
        raise AssertionError("rescored a generator whose scores were saved")

    monkeypatch.setattr(study, "draw_fids", no_draws)
    again = run_study(out, fake_cifar, None, epochs=3, protocol=p,
                      overrides=SETS, progress=False)
    assert again["rows"] == res["rows"]
    # ... but not for another protocol
    with pytest.raises(AssertionError, match="rescored"):
        run_study(out, fake_cifar, None, epochs=3, protocol=Protocol(**{**p.__dict__, "draws": 2}),
                  overrides=SETS, progress=False)


def test_study_refuses_a_selection_split_that_overlaps_the_report(tmp_path, capsys):
    from gankit.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["study", "dcgan-vs-sagan", "--out", str(tmp_path / "s"), "--select-ref",
              "test[500:1500]"])
    assert exc.value.code == 2 and "share images" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
