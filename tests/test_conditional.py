"""Class-conditional GANs: conditional batch norm, the projection / AC discriminators, labels
from every data source, training with labels (exact resume), sampling by class, intra-FID."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from gankit.config import resolve
from gankit.data import BatchSampler, load_images
from gankit.errors import GankitError
from gankit.metrics.sources import intra_fid
from gankit.models import build_models
from gankit.models.layers import ConditionalBatchNorm2d
from gankit.training.loop import train
from gankit.training.runtime import Runtime
from gankit.training.step import GANStep

from .test_cli import ok, run_cli

SMALL = ["generator.base_channels=16", "generator.widths=[8, 8, 8]",
         "discriminator.widths=[8, 8, 8]", "train.batch_size=16", "train.log_every=2",
         "train.n_samples=8", "perf.precision=fp32", "perf.channels_last=false",
         "perf.threads=1", "perf.compile=false", "train.checkpoint_every=1"]


def cond_cfg(*extra, k=10):
    return resolve("cpu-cond", [*SMALL, f"cond.n_classes={k}", *extra])


def test_conditional_bn_is_bn_then_a_per_class_affine():
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(3, 4)
    with torch.no_grad():
        cbn.gain.weight.copy_(torch.randn(4, 3))
        cbn.bias.weight.copy_(torch.randn(4, 3))
    x, y = torch.randn(6, 3, 5, 5), torch.tensor([0, 1, 2, 3, 1, 0])
    mean, var = x.mean((0, 2, 3), keepdim=True), x.var((0, 2, 3), unbiased=False, keepdim=True)
    want = (x - mean) / torch.sqrt(var + 1e-5)
    want = want * cbn.gain.weight[y][:, :, None, None] + cbn.bias.weight[y][:, :, None, None]
    torch.testing.assert_close(cbn(x, y), want, rtol=1e-5, atol=1e-5)
    fresh = ConditionalBatchNorm2d(3, 4)  # starts at the identity: plain (affine-free) BN
    torch.testing.assert_close(fresh(x, y), (x - mean) / torch.sqrt(var + 1e-5), rtol=1e-5, atol=1e-5)


def test_projection_d_is_psi_plus_the_embedded_inner_product():
    cfg = resolve("sndcgan", ["discriminator.widths=[4, 4, 4, 4]", "cond.n_classes=3"])
    _, d = build_models(cfg)
    d.eval()
    x, y = torch.randn(5, 3, 32, 32), torch.tensor([0, 2, 1, 1, 0])
    with torch.no_grad():
        h = d.features(x).flatten(1)
        pre = d.head(h).squeeze(1) + (d.cond.embed.weight[y] * h).sum(1)  # SN'd weights
        want = torch.tanh(pre * d.gain)  # sndcgan: head gain 1/sqrt(fan-in), tanh output
        torch.testing.assert_close(d(x, y), want, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(d(x, y), d(x, y[torch.tensor([1, 0, 3, 4, 2])]))


def test_ac_d_returns_scores_and_class_logits():
    cfg = cond_cfg("cond.discriminator=ac")
    _, d = build_models(cfg)
    score, logits = d(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]))
    assert score.shape == (4,) and logits.shape == (4, 10)


def _one_step_weights(cfg, labels):
    torch.manual_seed(0)
    g, d = build_models(cfg)
    step = GANStep(cfg, g, d, Runtime(torch.device("cpu"), None, False),
                   torch.Generator().manual_seed(1))
    x = torch.rand(step.n_real, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    step([(x, labels)] if cfg.cond.n_classes else [x])
    return torch.cat([p.detach().flatten() for p in [*g.parameters(), *d.parameters()]])


@pytest.mark.parametrize("kind", ["projection", "ac"])
def test_the_labels_reach_the_loss(kind):
    cfg = cond_cfg(f"cond.discriminator={kind}")
    n = cfg.train.n_real
    y = torch.arange(n) % 10
    a, b = _one_step_weights(cfg, y), _one_step_weights(cfg, y.roll(1))
    assert not torch.equal(a, b)  # the same images under other labels train differently


def test_an_unconditional_run_ignores_labels(tmp_path, fake_cifar):
    """Labelled data, unconditional model: permuting the labels changes nothing."""
    from gankit.data.sources import Images

    imgs = load_images("cifar10:train[0:64]", data_dir=fake_cifar)
    cfg = resolve("cpu", [*SMALL, "train.epochs=1"])
    runs = []
    for i, labels in enumerate((imgs.labels, imgs.labels.flip(0))):
        st = train(cfg, tmp_path / f"r{i}", Images(imgs.pixels, imgs.info, labels),
                   progress=False)
        runs.append(torch.cat([p.detach().flatten() for p in st.g.parameters()]))
    assert torch.equal(runs[0], runs[1])


def test_conditional_g_learns_dark_class_0_and_bright_class_1(tmp_path):
    """Two classes, dark and bright images: after a few hundred steps the conditional G's
    class-0 samples are darker than its class-1 samples (the labels steer G)."""
    from gankit.data.sources import Images
    from gankit.generate import sample_images

    rng = np.random.default_rng(0)
    n = 256
    y = np.arange(n) % 2
    base = np.where(y[:, None, None, None] == 0, 40, 215)
    pix = np.clip(base + rng.normal(0, 20, (n, 3, 32, 32)), 0, 255).astype(np.uint8)
    images = Images(torch.from_numpy(pix), {"classes": ["dark", "bright"]}, torch.from_numpy(y))
    cfg = cond_cfg("train.epochs=25", "train.sample_every=25", "generator.base_channels=64",
                   "generator.widths=[32, 32, 32]", "discriminator.widths=[16, 32, 64]",
                   k=2)  # 16 steps per epoch
    st = train(cfg, tmp_path / "r", images, progress=False)
    assert st.global_step == 400
    g = st.g_eval
    dark = sample_images(g, 64, 0, labels=torch.zeros(64, dtype=torch.long)).mean()
    bright = sample_images(g, 64, 0, labels=torch.ones(64, dtype=torch.long)).mean()
    # measured: 86 vs 170 (the data: 40 vs 215); an unconditional G gives both the same mean
    assert dark + 40 < bright, (dark, bright)


def test_resume_with_labels_is_bit_identical(tmp_path, fake_cifar):
    args = ["--data-dir", str(fake_cifar), "--no-progress", "--preset", "cpu-cond",
            *[x for s in [*SMALL, "data.limit=96", "cond.fake_labels=data"] for x in ("--set", s)]]
    from gankit.cli import main

    def cli(a):
        try:
            main(a)
        except SystemExit as exc:
            assert exc.code in (0, None)

    cli(["train", "--out", str(tmp_path / "straight"), "--epochs", "3", *args])
    cli(["train", "--out", str(tmp_path / "r"), "--epochs", "1", *args])
    cli(["train", "--resume", str(tmp_path / "r"), "--epochs", "3", "--no-progress",
         "--data-dir", str(fake_cifar)])
    a = load_file(str(tmp_path / "r" / "checkpoints" / "epoch-000003.safetensors"))
    b = load_file(str(tmp_path / "straight" / "checkpoints" / "epoch-000003.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    rec = json.loads((tmp_path / "r" / "run.json").read_text())
    assert rec["data"]["class_counts"] == [10] * 6 + [9] * 4 and len(rec["data"]["classes"]) == 10


def test_two_ranks_see_the_labels_one_process_sees():
    x = torch.arange(64, dtype=torch.uint8).view(64, 1, 1, 1).expand(64, 3, 2, 2).contiguous()
    y = torch.arange(64) % 7
    ranks = [BatchSampler(x, 8, torch.Generator().manual_seed(3), rank=r, world_size=2, labels=y)
             for r in (0, 1)]
    single = BatchSampler(x, 16, torch.Generator().manual_seed(3), labels=y)
    for (x0, y0), (x1, y1), (xs, ys) in zip(ranks[0].epoch(), ranks[1].epoch(), single.epoch(),
                                            strict=True):
        torch.testing.assert_close(torch.cat([x0, x1]), xs)
        assert torch.equal(torch.cat([y0, y1]), ys)
        ids = ((xs[:, 0, 0, 0] + 1) * 127.5).round().long()
        assert torch.equal(ys, y[ids])  # each image keeps its own label


def _png(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


def test_labels_from_folders_zips_and_npz(tmp_path):
    root = tmp_path / "data"
    for cls, v in (("cat", 10), ("dog", 200)):
        for i in range(3):
            _png(root / "wrap" / cls / f"{i}.png", v)
    imgs = load_images(root, progress=False)  # one wrapping folder, then class folders
    assert imgs.info["classes"] == ["cat", "dog"] and imgs.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert imgs.info["class_counts"] == [3, 3]
    assert imgs.pixels[imgs.labels == 1].float().mean() > 100  # the labels follow the files
    z = tmp_path / "d.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in sorted(root.rglob("*.png")):
            zf.write(p, p.relative_to(root / "wrap").as_posix())
    zl = load_images(z, progress=False)
    assert zl.info["classes"] == ["cat", "dog"] and torch.equal(zl.labels, imgs.labels)
    flat = tmp_path / "flat"
    _png(flat / "a.png", 1)
    _png(flat / "b" / "c.png", 2)
    assert load_images(flat, progress=False).labels is None  # not every image in a class folder
    arr = np.zeros((4, 8, 8, 3), np.uint8)
    np.savez(tmp_path / "a.npz", images=arr, labels=np.array([2, 0, 1, 2]))
    nl = load_images(tmp_path / "a.npz", progress=False)
    assert nl.labels.tolist() == [2, 0, 1, 2] and nl.info["class_counts"] == [1, 1, 2]
    np.savez(tmp_path / "bad.npz", images=arr, labels=np.array([0.5, 1, 2, 3]))
    with pytest.raises(GankitError, match="one integer per image"):
        load_images(tmp_path / "bad.npz", progress=False)


def test_cifar_labels_names_and_coarse(fake_cifar):
    imgs = load_images("cifar10:test[0:20]", data_dir=fake_cifar)
    assert imgs.labels.tolist() == [i % 10 for i in range(20)] and len(imgs.info["classes"]) == 10


def test_intra_fid_is_the_mean_of_per_class_fids_closed_form():
    """Per class c, A's features are B's shifted by d_c: equal covariances, so each class's
    FID is exactly ||d_c||^2 and intra-FID their mean."""
    rng = np.random.default_rng(0)
    fb = rng.normal(size=(300, 4))
    yb = np.arange(300) % 3
    shifts = np.array([[1.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 0, 3.0]])
    fa = fb + shifts[yb]
    rec = intra_fid(fa, yb, fb, yb)
    assert rec["intra_fid_per_class"] == pytest.approx({"0": 1.0, "1": 4.0, "2": 9.0}, abs=1e-6)
    assert rec["intra_fid"] == pytest.approx(14 / 3, abs=1e-6)
    assert rec["intra_n_a"] == {"0": 100, "1": 100, "2": 100}
    with pytest.raises(GankitError, match="no images of class"):
        intra_fid(fa[yb != 2], yb[yb != 2], fb, yb)


def test_intra_fid_during_training_and_the_best_chosen_by_it(tmp_path):
    """``train.fid_intra`` logs intra-FID with each FID: the logged value is the hand-built
    intra-FID of the final G's class-balanced samples against the reference's images of each
    class (stub features); ``fid_best=intra_fid`` keeps the best by it, not by FID."""
    from gankit.data.sources import Images
    from gankit.generate import sample_images
    from gankit.io import read_jsonl
    from gankit.metrics.training import TrainingFID

    from .stubs import StubExtractor

    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    np.savez(tmp_path / "ref.npz", images=rng.integers(0, 256, (60, 32, 32, 3), np.uint8),
             labels=y)
    images = Images(torch.from_numpy(rng.integers(0, 256, (64, 3, 32, 32), np.uint8)),
                    {"classes": ["a", "b", "c"]}, torch.arange(64) % 3)
    cfg = cond_cfg("train.epochs=3", "train.fid_every=1", "train.fid_n=30", "train.fid_intra=true",
                   "train.fid_best=intra_fid", f"train.fid_ref={tmp_path / 'ref.npz'}", k=3)
    ext = StubExtractor()
    ev = TrainingFID(cfg, None, None, extractor=ext)
    st = train(cfg, tmp_path / "r", images, progress=False, evaluator=ev)
    fids = [r for r in read_jsonl(tmp_path / "r" / "metrics.jsonl") if r["kind"] == "fid"]
    assert len(fids) == 3
    ref = np.load(tmp_path / "ref.npz")
    fa, ya = ext(sample_images(st.g_eval, 30, ev.seed)), np.arange(30) % 3  # class-balanced
    want = intra_fid(fa, ya, ext(ref["images"]), ref["labels"], method="eigh")
    assert fids[-1]["intra_fid"] == pytest.approx(want["intra_fid"], rel=1e-6)
    assert fids[-1]["intra_n_a"] == {"0": 10, "1": 10, "2": 10}
    assert fids[-1]["intra_n_b"] == {"0": 20, "1": 20, "2": 20}
    best = min(fids, key=lambda r: r["intra_fid"])
    assert fids[-1]["best_intra_fid"] == best["intra_fid"]
    assert fids[-1]["best_epoch"] == best["epoch"] and st.best["fid"] == best["fid"]


@pytest.mark.parametrize("best, want_epoch", [("fid", 2.0), ("intra_fid", 3.0)])
def test_the_best_checkpoint_follows_train_fid_best(tmp_path, best, want_epoch):
    """Scripted scores on which FID and intra-FID disagree: FID is lowest at epoch 2,
    intra-FID at epoch 3; best.safetensors and the state's best follow ``train.fid_best``."""
    from gankit.data.sources import Images

    scores = iter([(5.0, 2.0), (3.0, 6.0), (4.0, 1.0)])

    def scripted(g):
        fid, intra = next(scores)
        return {"fid": fid, "intra_fid": intra, "n": 30, "ref": "x"}

    rng = np.random.default_rng(0)
    images = Images(torch.from_numpy(rng.integers(0, 256, (64, 3, 32, 32), np.uint8)),
                    {"classes": ["a", "b", "c"]}, torch.arange(64) % 3)
    cfg = cond_cfg("train.epochs=3", "train.fid_every=1", "train.fid_intra=true",
                   f"train.fid_best={best}", k=3)
    st = train(cfg, tmp_path / "r", images, progress=False, evaluator=scripted)
    assert st.best["epoch"] == want_epoch
    meta = json.loads(load_file_meta(tmp_path / "r" / "checkpoints" / "best.safetensors")["fid"])
    assert meta["fid"] == {2.0: 3.0, 3.0: 4.0}[want_epoch]


def load_file_meta(path):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return f.metadata()


@pytest.mark.parametrize("extra, match", [
    (["train.fid_intra=true", "cond.n_classes=0"], "fid_intra needs a class-conditional run"),
    (["train.fid_best=intra_fid"], "fid_best=intra_fid needs train.fid_intra"),
])
def test_intra_fid_config_errors(extra, match):
    with pytest.raises(GankitError, match=match):
        resolve("cpu-cond", extra)



@pytest.fixture
def cond_run(tmp_path, fake_cifar, capsys):
    run = tmp_path / "run"
    args = [x for s in [*SMALL, "data.limit=64"] for x in ("--set", s)]
    ok(["train", "--preset", "cpu-cond", "--out", str(run), "--epochs", "1", "--data-dir",
        str(fake_cifar), "--no-progress", *args], capsys)
    return run


def test_generate_by_class_and_class_balanced(cond_run, tmp_path, capsys, fake_cifar,
                                             monkeypatch):
    ok(["generate", str(cond_run), "--per-class", "3", "--out", str(tmp_path / "p.npz")], capsys)
    with np.load(tmp_path / "p.npz") as z:
        assert z["images"].shape == (30, 32, 32, 3)
        assert z["labels"].tolist() == [c for c in range(10) for _ in range(3)]
    ok(["generate", str(cond_run), "--class", "3", "--n", "4", "--out", str(tmp_path / "c.npz")],
       capsys)
    with np.load(tmp_path / "c.npz") as z:
        assert z["images"].shape == (4, 32, 32, 3) and "labels" in z and set(z["labels"]) == {3}
    out = ok(["generate", str(cond_run), "--n", "20", "--out", str(tmp_path / "b.npz")], capsys)
    assert "class-balanced" in out
    with np.load(tmp_path / "b.npz") as z:
        assert np.bincount(z["labels"]).tolist() == [2] * 10
    ok(["generate", str(cond_run), "--per-class", "2", "--out", str(tmp_path / "f")], capsys)
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == [f"{c:04d}" for c in range(10)]
    assert (cond_run / "samples" / "epoch-000001.png").is_file()
    from .stubs import StubExtractor

    monkeypatch.setattr("gankit.cli._extractor", lambda *a, **k: StubExtractor())
    rec = json.loads(ok(["fid", str(cond_run), "cifar10:test[0:100]", "--n", "100", "--intra",
                         "--json", "--data-dir", str(fake_cifar)], capsys))
    assert len(rec["intra_fid_per_class"]) == 10 and rec["intra_n_a"]["0"] == 10
    assert rec["intra_fid"] == pytest.approx(np.mean(list(rec["intra_fid_per_class"].values())))


@pytest.mark.parametrize("extra, match", [
    (["--class", "99"], "outside the run's 10 classes"),
    (["--class", "zebra"], "not one of the run's classes"),
    (["--class", "1", "--per-class", "2"], "exclude each other"),
])
def test_generate_class_errors(cond_run, tmp_path, capsys, extra, match):
    code, _, err = run_cli(["generate", str(cond_run), "--out", str(tmp_path / "x.npz"), *extra],
                           capsys)
    assert code == 2 and match in err


def test_class_options_on_an_unconditional_run(tmp_path, fake_cifar, capsys):
    run = tmp_path / "u"
    ok(["train", "--preset", "cpu", "--out", str(run), "--epochs", "1", "--data-dir",
        str(fake_cifar), "--no-progress", *[x for s in [*SMALL, "data.limit=32"]
                                            for x in ("--set", s)]], capsys)
    for extra in (["--class", "1"], ["--per-class", "2"]):
        code, _, err = run_cli(["generate", str(run), "--out", str(tmp_path / "x.npz"), *extra],
                               capsys)
        assert code == 2 and "unconditional" in err


@pytest.mark.parametrize("data, extra, match", [
    ("flat.npz", [], "needs class labels"),
    ("eleven.npz", [], "has 11 classes but cond.n_classes=10"),
    ("cifar10:train[0:5]", [], "have no images"),
    ("cifar10:train[0:64]", ["generator.norm=none"], "cond.n_classes needs generator.norm=batch"),
])
def test_conditional_data_errors(tmp_path, fake_cifar, capsys, data, extra, match):
    arr = np.zeros((40, 32, 32, 3), np.uint8)
    np.savez(tmp_path / "flat.npz", images=arr)
    np.savez(tmp_path / "eleven.npz", images=arr, labels=np.arange(40) % 11)
    if data.endswith(".npz"):
        data = str(tmp_path / data)
    code, _, err = run_cli(["train", "--preset", "cpu-cond", "--data", data, "--data-dir",
                            str(fake_cifar), "--out", str(tmp_path / "x"), "--no-progress",
                            *[x for s in [*SMALL, "train.batch_size=4", *extra]
                              for x in ("--set", s)]], capsys)
    assert code == 2 and match in err and "Traceback" not in err, err
    assert not (tmp_path / "x").exists()


def test_the_bench_step_feeds_a_conditional_preset_labels():
    from gankit.bench import fast_step

    cfg = cond_cfg()
    fast_step(cfg)(torch.rand(cfg.train.n_real, 3, 32, 32) * 2 - 1)  # raised before: no labels
