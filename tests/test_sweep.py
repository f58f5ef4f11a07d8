"""``gankit sweep`` trains each variant on its own data settings."""

import json

import pytest
import yaml

from gankit.errors import GankitError
from gankit.io import read_jsonl
from gankit.metrics import training as training_fid
from gankit.sweep import run_sweep

from .conftest import TINY
from .stubs import StubExtractor


def test_variants_train_on_their_own_data(tmp_path, fake_cifar, monkeypatch):
    real = training_fid.TrainingFID
    monkeypatch.setattr(training_fid, "TrainingFID",
                        lambda cfg, data_dir, inc: real(cfg, data_dir, inc, extractor=StubExtractor()))
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        "base: dcgan\nepochs: 1\n"
        f"set: {json.dumps({k: yaml.safe_load(v) for k, v in (t.split('=') for t in TINY)})}\n"
        "fid: {n: 64, ref: 'test[0:64]'}\n"
        "variants:\n  - {name: small, set: {data.limit: 64}}\n"
        "  - {name: large, set: {data.limit: 128}}\n"
        "  - {name: test-split, set: {data.split: test, data.limit: 96}}\n"
    )
    run_sweep(spec, tmp_path / "out", fake_cifar, None, progress=False)
    steps = {}
    for name in ("small", "large", "test-split"):
        ends = [r for r in read_jsonl(tmp_path / "out" / "runs" / name / "seed-0" / "metrics.jsonl")
                if r["kind"] == "epoch"]
        steps[name] = ends[-1]["step"]
    # 8 real images per step (batch 16, half real): 64 -> 8 steps, 128 -> 16, 96 -> 12
    assert steps == {"small": 8, "large": 16, "test-split": 12}


def _stub_fid(monkeypatch):
    real = training_fid.TrainingFID
    monkeypatch.setattr(training_fid, "TrainingFID",
                        lambda cfg, data_dir, inc: real(cfg, data_dir, inc, extractor=StubExtractor()))


def test_seeds_and_minutes(tmp_path, fake_cifar, monkeypatch):
    """Two seeds per variant under a time budget: every run stops at the first step boundary
    past its budget, the table's mean / std / interval are the seeds' draw-means computed by
    hand, and a re-run rescores nothing."""
    import math

    _stub_fid(monkeypatch)
    sets = {k: yaml.safe_load(v) for k, v in (t.split("=") for t in TINY)}
    sets.update({"train.log_every": 1, "data.limit": 64})
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        f"base: dcgan\nepochs: 1000\nset: {json.dumps(sets)}\n"
        "fid: {n: 64, ref: 'test[0:64]', draws: 3}\n"
        "variants:\n  - {name: a}\n  - {name: b, set: {generator.latent_dim: 8}}\n")
    budget_s = 1.5
    out = tmp_path / "out"
    results = run_sweep(spec, out, fake_cifar, None, progress=False, minutes=budget_s / 60,
                        seeds=2)
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert sorted((r["name"], r["seed"]) for r in runs) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    for r in runs:
        recs = read_jsonl(out / "runs" / r["name"] / f"seed-{r['seed']}" / "metrics.jsonl")
        steps = [x for x in recs if x["kind"] == "step"]
        assert recs[-1]["kind"] == "end" and recs[-1]["reason"] == "budget"
        # the last step began before the budget ran out, and the run ended after it did
        assert steps[-2]["wall_time"] < budget_s <= recs[-1]["wall_time"]
        assert len(r["final"]["values"]) == 3 and r["best"] == r["final"]  # nothing tracked
    cfg0 = yaml.safe_load((out / "runs" / "a" / "seed-0" / "config.yaml").read_text())
    cfg1 = yaml.safe_load((out / "runs" / "a" / "seed-1" / "config.yaml").read_text())
    assert (cfg0["train"]["seed"], cfg1["train"]["seed"]) == (0, 1)
    for row in results:
        means = [r["final"]["mean"] for r in runs if r["name"] == row["name"]]
        m = sum(means) / 2
        sd = math.sqrt(sum((v - m) ** 2 for v in means))  # ddof 1 with n = 2
        half = 12.706204736174703 * sd / math.sqrt(2)  # t(0.975, 1)
        assert row["best"]["mean"] == pytest.approx(m) and row["best"]["std"] == pytest.approx(sd)
        assert row["best"]["ci95"] == pytest.approx([m - half, m + half])
    assert [r["best"]["mean"] for r in results] == sorted(r["best"]["mean"] for r in results)
    md = (out / "results.md").read_text()
    assert "| 2 |" in md and "0.025 min" in md  # the seeds column; the budget in the title
    assert "Seeds: best FID" in (out / "report.html").read_text()  # the report groups seeds
    stamp = (out / "runs" / "a" / "seed-1" / "result.json").stat().st_mtime_ns
    run_sweep(spec, out, fake_cifar, None, progress=False, minutes=budget_s / 60, seeds=2)
    assert (out / "runs" / "a" / "seed-1" / "result.json").stat().st_mtime_ns == stamp


def test_tracked_best_is_chosen_on_the_selection_split(tmp_path, fake_cifar, monkeypatch):
    _stub_fid(monkeypatch)
    sets = {k: yaml.safe_load(v) for k, v in (t.split("=") for t in TINY)}
    sets["data.limit"] = 64
    spec = tmp_path / "sweep.yaml"
    spec.write_text(f"base: dcgan\nepochs: 3\nset: {json.dumps(sets)}\n"
                    "fid: {n: 64, ref: 'test[0:64]', draws: 2, every: 1, track_n: 32, "
                    "select: 'test[100:164]'}\n")
    (row,) = run_sweep(spec, tmp_path / "out", fake_cifar, None, progress=False)
    fids = [r for r in read_jsonl(tmp_path / "out" / "runs" / "base" / "seed-0" / "metrics.jsonl")
            if r["kind"] == "fid"]
    assert [r["ref"] for r in fids] == ["cifar10:test[100:164]"] * 3 and fids[0]["n"] == 32
    (run,) = json.loads((tmp_path / "out" / "results.json").read_text())["runs"]
    best = min(fids, key=lambda r: r["fid"])
    assert run["best_epoch"] == best["epoch"] and run["best_select_fid"] == best["fid"]
    assert run["best"]["n"] == 2 and run["fid_ref"] == "test[0:64]"
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec.read_text().replace("test[100:164]", "test[32:96]"))
    with pytest.raises(GankitError, match="share images"):
        run_sweep(bad, tmp_path / "out2", fake_cifar, None, progress=False)


def test_shipped_reference_architecture_sweep_covers_every_axis():
    from importlib import resources

    from gankit.sweep import expand, load_spec, variant_config

    spec = load_spec(resources.files("gankit") / "sweeps" / "reference-architectures.yaml")
    cfgs = {v.name: variant_config(spec, v) for v in expand(spec)}
    base = cfgs["base"]
    assert base.name == "base" and base.generator.latent_dim == 32
    assert sorted(c.generator.latent_dim for c in cfgs.values() if c.generator.latent_dim != 32) \
        == [16, 64, 128, 256]
    assert any(c.generator.activation == "none" for c in cfgs.values())
    assert any(c.generator.layer_strides().count(1) == 1 for c in cfgs.values())
    assert any(c.discriminator.strides.count(1) == 2 for c in cfgs.values())
    assert {c.train.batch_size for c in cfgs.values()} == {16, 32, 64}
    assert {c.optim.d_lr / c.optim.g_lr for c in cfgs.values()} == {4.0, 5.0}
    assert {c.loss.name for c in cfgs.values()} == {"wasserstein", "bce"}
    assert {bool(c.generator.attention and c.discriminator.attention)
            for c in cfgs.values()} == {True, False}
    assert spec.fid.select == "test[5000:6000]" and spec.fid.ref == "test[0:1000]"


def test_shipped_cpu_seeds_sweep_is_the_cpu_hour_over_three_seeds():
    """The issue-21 row: the `cpu` preset unchanged, 60 minutes per seed, 3 seeds (0, 1, 2),
    the final generator scored by FID-10k against the training set (nothing selected)."""
    from importlib import resources

    from gankit.config import resolve
    from gankit.sweep import expand, load_spec, variant_config

    spec = load_spec(resources.files("gankit") / "sweeps" / "cpu-seeds.yaml")
    (v,) = expand(spec)
    cfgs = [variant_config(spec, v, s) for s in range(spec.seeds)]
    assert [c.train.seed for c in cfgs] == [0, 1, 2]
    preset = resolve("cpu")
    for c in cfgs:
        assert c.train.minutes == 60 and c.train.fid_every == 0
        for part in ("generator", "discriminator", "loss", "optim", "ema", "data"):
            assert getattr(c, part) == getattr(preset, part), part
    assert (spec.fid.n, spec.fid.ref, spec.fid.draws, spec.fid.every) == (10000, "train", 1, 0)


def test_every_shipped_sweep_resolves_and_never_selects_on_its_report_split():
    from importlib import resources

    from gankit.config import resolve
    from gankit.metrics.protocol import check_disjoint
    from gankit.sweep import expand, load_spec, variant_config

    files = sorted(p for p in (resources.files("gankit") / "sweeps").iterdir()
                   if p.name.endswith(".yaml"))
    assert {p.name for p in files} >= {"architecture.yaml", "reference-architectures.yaml",
                                       "cpu-seeds.yaml", "cpu-cond-recipes.yaml",
                                       "design2-critic.yaml"}
    for path in files:
        spec = load_spec(path)
        check_disjoint(spec.fid.select, spec.fid.ref)
        for v in expand(spec):
            variant_config(spec, v)  # every variant is a valid config
    spec = load_spec(resources.files("gankit") / "sweeps" / "cpu-cond-recipes.yaml")
    kinds = {variant_config(spec, v).cond.discriminator for v in expand(spec)}
    assert kinds == {"projection", "ac"} and spec.fid.ref != "train"
    # design2-critic runs past the ~5k steps where the sndcgan critic pins again
    spec = load_spec(resources.files("gankit") / "sweeps" / "design2-critic.yaml")
    for v in expand(spec):
        c = variant_config(spec, v)
        assert c.train.epochs * (50000 // c.train.batch_size) > 8000, v.name
        assert c.generator == resolve("sndcgan", []).generator, v.name
