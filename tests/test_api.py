"""The Python API: plug-in networks (a file outside the package), callbacks, ``gankit.fid``.

The full cycle a researcher runs: their own G and D trained through ``Trainer`` or
``--set generator.arch=...``, stopped and resumed (bit-identical to an unbroken run),
sampled with ``gankit generate``, scored with ``gankit fid`` and listed by the report.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import gankit
from gankit.config import resolve
from gankit.errors import GankitError
from gankit.io import read_jsonl
from gankit.models import build_discriminator, build_generator
from gankit.models.registry import has_batchnorm, register_generator
from gankit.training.callbacks import Callback

from .stubs import StubExtractor
from .test_cli import ok, run_cli

NETS = '''
import torch
from torch import nn


class TinyG(nn.Module):
    def __init__(self, latent_dim=8, width=8):
        super().__init__()
        self.latent_dim = latent_dim
        self.fc = nn.Linear(latent_dim, width * 8 * 8)
        self.body = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(), nn.Upsample(scale_factor=4),
                                  nn.Conv2d(width, 3, 3, 1, 1), nn.Tanh())
        self.width = width

    def forward(self, z):
        return self.body(self.fc(z).view(len(z), self.width, 8, 8))


class TinyD(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, width, 4, 4), nn.LeakyReLU(0.2), nn.Flatten(),
                                 nn.Linear(width * 64, 1))

    def forward(self, x):
        return self.net(x)


class WrongShape(TinyG):
    def forward(self, z):
        return super().forward(z)[:, :, :16]
'''
FIXED = ["perf.precision=fp32", "perf.channels_last=false", "perf.threads=1",
         "perf.compile=false", "train.batch_size=16", "train.log_every=2", "train.n_samples=4",
         "data.limit=64", "loss.name=hinge", "discriminator.output=linear",
         "train.checkpoint_every=1"]


@pytest.fixture
def nets(tmp_path):
    f = tmp_path / "elsewhere" / "my_nets.py"  # outside the package, not on sys.path
    f.parent.mkdir()
    f.write_text(NETS)
    return f


def _custom(nets, *extra):
    return resolve("dcgan", [*FIXED, f"generator.arch={nets}:TinyG", "generator.latent_dim=8",
                             f"discriminator.arch={nets}:TinyD", *extra])


def _weights(run, name):
    return load_file(str(run / "checkpoints" / f"{name}.safetensors"))


def test_custom_model_trains_resumes_exactly_samples_scores_and_reports(
        nets, tmp_path, fake_cifar, capsys, monkeypatch):
    run, straight = tmp_path / "run", tmp_path / "straight"
    sets = [x for s in [*FIXED, f"generator.arch={nets}:TinyG", "generator.latent_dim=8",
                        f"discriminator.arch={nets}:TinyD"] for x in ("--set", s)]
    common = ["--data-dir", str(fake_cifar), "--no-progress", *sets]
    ok(["train", "--out", str(straight), "--epochs", "3", *common], capsys)
    ok(["train", "--out", str(run), "--epochs", "1", *common], capsys)
    cfg = gankit.load_config(run)
    assert cfg.generator.arch == f"{nets}:TinyG" and cfg.discriminator.arch == f"{nets}:TinyD"
    out = ok(["train", "--resume", str(run), "--epochs", "3", "--no-progress",
              "--data-dir", str(fake_cifar)], capsys)
    assert "epoch 3" in out
    a, b = _weights(run, "epoch-000003"), _weights(straight, "epoch-000003")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ok(["generate", str(run), "--n", "6", "--out", str(tmp_path / "s.npz")], capsys)
    with np.load(tmp_path / "s.npz") as z:
        assert z["images"].shape == (6, 32, 32, 3) and z["images"].dtype == np.uint8
    monkeypatch.setattr("gankit.cli._extractor", lambda *a, **k: StubExtractor())
    rec = json.loads(ok(["fid", str(run), "cifar10:test[0:64]", "--n", "64", "--json",
                         "--data-dir", str(fake_cifar)], capsys))
    assert rec["n_a"] == 64 and np.isfinite(rec["fid"])
    ok(["report", str(run), "--out", str(tmp_path / "report.html")], capsys)
    assert "TinyG" in (tmp_path / "report.html").read_text()  # the run's config, as recorded


def test_trainer_with_instances_records_their_classes(nets, tmp_path, fake_cifar):
    from gankit.models.registry import resolve_class

    G, D = resolve_class("generator", f"{nets}:TinyG"), resolve_class("discriminator", f"{nets}:TinyD")
    cfg = resolve("dcgan", [*FIXED, "train.epochs=1", "train.fid_every=1"])
    seen: list[str] = []

    class Hooks(Callback):
        def on_fit_start(self, trainer):
            seen.append("fit_start")

        def on_step(self, trainer):
            seen.append("step")

        def on_epoch_end(self, trainer):
            seen.append(f"epoch_end:{trainer.state.epoch}")

        def on_checkpoint(self, trainer, path):
            seen.append(f"checkpoint:{path.name}")
            assert path.is_file()

        def on_eval(self, trainer, result):
            seen.append(f"eval:{result['fid']:.0f}")

        def on_fit_end(self, trainer, reason):
            seen.append(f"fit_end:{reason}")

    evaluator = lambda g: {"fid": 42.0}  # noqa: E731
    state = gankit.Trainer(cfg, generator=G(), discriminator=D(), evaluator=evaluator,
                           callbacks=[Hooks()]).fit(tmp_path / "r", data_dir=fake_cifar,
                                                    progress=False)
    steps = state.steps_per_epoch
    # the epoch's FID comes before its checkpoint (the best is in the checkpoint's state)
    assert seen == ["fit_start", *["step"] * steps, "eval:42", "epoch_end:1",
                    "checkpoint:epoch-000001.safetensors", "fit_end:epochs"]
    assert (tmp_path / "r" / "checkpoints" / "best.safetensors").is_file()
    saved = gankit.load_config(tmp_path / "r")
    assert saved.generator.arch == f"{nets}:TinyG" and saved.generator.latent_dim == 8
    g, _, _ = gankit.load_generator(tmp_path / "r", device="cpu")
    assert type(g).__name__ == "TinyG"


def test_instances_that_the_recorded_class_cannot_rebuild_are_refused(nets):
    from gankit.models.registry import resolve_class

    G, D = resolve_class("generator", f"{nets}:TinyG"), resolve_class("discriminator", f"{nets}:TinyD")
    cfg = resolve("dcgan", FIXED)
    with pytest.raises(GankitError, match="put its constructor arguments in cfg.generator.kwargs"):
        gankit.Trainer(cfg, generator=G(width=4), discriminator=D())
    ok_cfg = _custom(nets, "generator.kwargs={width: 4}")
    gankit.Trainer(ok_cfg, generator=G(width=4), discriminator=D())  # recorded kwargs rebuild it


@pytest.mark.parametrize("arch, match", [
    ("no/such/file.py:G", "file .*no/such/file.py not found"),
    ("no_such_module_xyz:G", "cannot import no_such_module_xyz"),
    ("{nets}:Missing", "has no Module class Missing"),
    ("{nets}:WrongShape", r"returned \(2, 3, 16, 32\)"),
    ("unknown-name", "neither built in nor registered"),
])
def test_a_custom_arch_that_cannot_be_built_is_one_clear_error(nets, arch, match):
    cfg = resolve("dcgan", [*FIXED, f"generator.arch={arch.format(nets=nets)}",
                            "generator.latent_dim=8"])
    with pytest.raises(GankitError, match=match):
        build_generator(cfg.generator)


def test_cli_error_for_a_missing_import_and_a_latent_mismatch(nets, fake_cifar, tmp_path, capsys):
    base = ["train", "--data-dir", str(fake_cifar), "--out", str(tmp_path / "x"),
            *[x for s in FIXED for x in ("--set", s)]]
    code, _, err = run_cli([*base, "--set", "generator.arch=nowhere_pkg.nets:G"], capsys)
    assert code == 2 and "cannot import nowhere_pkg.nets" in err and "Traceback" not in err
    code, _, err = run_cli([*base, "--set", f"generator.arch={nets}:TinyG"], capsys)
    assert code == 2 and "set generator.latent_dim=8" in err
    assert not (tmp_path / "x").exists()


def test_registered_and_module_path_archs(nets, monkeypatch):
    monkeypatch.syspath_prepend(str(nets.parent))
    cfg = _custom(nets, "generator.arch=my_nets:TinyG")
    assert type(build_generator(cfg.generator)).__name__ == "TinyG"

    @register_generator("test-tiny")
    class Registered(torch.nn.Module):
        latent_dim = 8

        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(8, 3 * 32 * 32)

        def forward(self, z):
            return self.fc(z).view(-1, 3, 32, 32).tanh()

    cfg = _custom(nets, "generator.arch=test-tiny")
    assert isinstance(build_generator(cfg.generator), Registered)
    with pytest.raises(GankitError, match="kwargs applies to a custom"):
        resolve("dcgan", ["generator.kwargs={a: 1}"])


def test_batch_coupling_is_read_off_the_modules_unless_d_says(nets):
    d = build_discriminator(_custom(nets).discriminator)
    assert not has_batchnorm(d)  # per-sample: real and fake may share one forward
    bn = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    assert has_batchnorm(bn)
    bn.has_batchnorm = False  # D's own word wins (e.g. a D that never trains its BN)
    assert not has_batchnorm(bn)


def test_fid_api_takes_a_generator_arrays_or_sources(nets, fake_cifar, monkeypatch):
    monkeypatch.setattr("gankit.metrics.inception.FeatureExtractor",
                        lambda *a, **k: StubExtractor())
    g = build_generator(_custom(nets).generator)
    arr = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    ref = "cifar10:test[0:64]"
    v1 = gankit.fid(g, ref, n=64, data_dir=fake_cifar)
    v2 = gankit.fid(arr, ref, data_dir=fake_cifar)
    v3 = gankit.fid(torch.from_numpy(arr).permute(0, 3, 1, 2), ref, data_dir=fake_cifar)
    assert np.isfinite(v1) and v2 == pytest.approx(v3) and v1 != v2
    rec = gankit.fid(arr, ref, data_dir=fake_cifar, details=True)
    assert rec["n_a"] == 64 and rec["fid"] == pytest.approx(v2)
    with pytest.raises(GankitError, match="takes a generator"):
        gankit.fid(3.0, ref)


def test_public_names():
    for name in gankit.__all__:
        assert getattr(gankit, name) is not None
    assert "cpu" in gankit.presets.names()
    assert gankit.presets.load("cpu", ["train.minutes=2"]).train.minutes == 2


def test_metrics_record_penalties_by_name(tmp_path, fake_cifar):
    cfg = resolve("dcgan", [*FIXED, "train.epochs=1", "loss.r1_gamma=1.0", "loss.r1_every=1",
                            "loss.lecam_weight=0.1", "generator.base_channels=16",
                            "generator.widths=[8, 8, 8]", "discriminator.widths=[8, 8, 8, 8]"])
    gankit.Trainer(cfg).fit(tmp_path / "r", data_dir=fake_cifar, progress=False)
    steps = [r for r in read_jsonl(tmp_path / "r" / "metrics.jsonl") if r["kind"] == "step"]
    assert steps and all(r["r1"] > 0 and r["lecam"] > 0 for r in steps)


COND_NETS = '''
import torch
from torch import nn


class CondG(nn.Module):
    def __init__(self, n_classes=3):
        super().__init__()
        self.latent_dim, self.n_classes = 8, n_classes
        self.embed = nn.Embedding(n_classes, 8)
        self.fc = nn.Linear(8, 3 * 32 * 32)

    def forward(self, z, y):
        return self.fc(z * self.embed(y)).view(-1, 3, 32, 32).tanh()


class CondD(nn.Module):
    def __init__(self, n_classes=3):
        super().__init__()
        self.n_classes = n_classes
        self.fc = nn.Linear(3 * 32 * 32, n_classes)

    def forward(self, x, y):
        return self.fc(x.flatten(1)).gather(1, y[:, None])
'''


def test_custom_conditional_instances_train_and_reload(tmp_path):
    from gankit.data.sources import Images
    from gankit.models.registry import resolve_class

    f = tmp_path / "cond_nets.py"
    f.write_text(COND_NETS)
    G, D = resolve_class("generator", f"{f}:CondG"), resolve_class("discriminator", f"{f}:CondD")
    cfg = resolve("cpu", [*FIXED, "train.epochs=1", "cond.n_classes=3"])
    x = torch.randint(0, 256, (48, 3, 32, 32), dtype=torch.uint8)
    images = Images(x, {"classes": ["a", "b", "c"]}, torch.arange(48) % 3)
    gankit.Trainer(cfg, generator=G(), discriminator=D()).fit(tmp_path / "r", images,
                                                              progress=False)
    g, saved, _ = gankit.load_generator(tmp_path / "r", device="cpu")
    assert type(g).__name__ == "CondG" and saved.cond.n_classes == 3
    assert gankit.sample_images(g, 6, 0).shape == (6, 32, 32, 3)  # class-balanced labels
