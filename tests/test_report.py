import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from gankit.errors import GankitError
from gankit.reports.html import render
from gankit.reports.plots import plot_run
from gankit.sweep import SweepSpec, Variant, expand, load_spec
from gankit.training.loop import train


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    import numpy as np
    import torch

    from gankit.config import resolve

    from .conftest import TINY

    root = tmp_path_factory.mktemp("runs")
    imgs = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (64, 3, 32, 32), np.uint8))
    runs = []
    for name, preset in (("dc<i>gan&", "dcgan"), ("sagan", "sagan")):
        cfg = resolve(preset, [*TINY, "train.epochs=2", "train.sample_every=1"])
        run = root / name
        train(cfg, run, imgs, progress=False, on_epoch=plot_run)
        runs.append(run)
    return runs


def test_plots_written(two_runs):
    assert (two_runs[0] / "loss.png").stat().st_size > 1000


def test_report_is_self_contained_and_escaped(two_runs, tmp_path):
    out = render(two_runs, tmp_path / "r.html", title="<script>x</script>")
    html = out.read_text()
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html
    assert "dc&lt;i&gt;gan&amp;" in html
    assert "http://" not in html and "https://" not in html  # nothing fetched from a network
    assert html.count("data:image/png;base64,") >= 2 * 2 + 1
    assert "loss.d_batch" not in html and "generator.spectral_norm" in html  # config diff
    assert html.count("data:image/gif;base64,") == 2  # each run's progress animation
    assert html.count("latent interpolations (slerp), epoch 2") == 2


def test_report_rejects_non_runs(tmp_path):
    with pytest.raises(GankitError, match="not a gankit run folder"):
        render([tmp_path], tmp_path / "r.html")


def chromium() -> str | None:
    return os.environ.get("GANKIT_CHROMIUM") or shutil.which("chromium")


def headless(args: list[str]) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=5000", *args],
            capture_output=True, text=True, timeout=120,
        )


@pytest.mark.browser
def test_report_renders_in_headless_chromium(two_runs, tmp_path):
    if not chromium():
        pytest.skip("chromium not installed")
    out = render(two_runs, tmp_path / "r.html")
    res = headless(["--dump-dom", out.as_uri()])
    assert res.returncode == 0, res.stderr[-2000:]
    import re

    m = re.search(r'<body data-images="(\d+)" data-images-ok="(\d+)"', res.stdout)
    assert m, res.stdout[:500]
    assert int(m.group(1)) >= 5 and m.group(1) == m.group(2)
    console = [ln for ln in res.stderr.splitlines() if ":CONSOLE" in ln]
    assert console == []
    shot = tmp_path / "shot.png"
    headless([f"--screenshot={shot}", "--window-size=1200,1600", out.as_uri()])
    assert shot.stat().st_size > 10000


def test_sweep_spec_expands_grid_and_list(tmp_path):
    spec = SweepSpec(base="sndcgan", variants=[Variant(name="a", set={"generator.latent_dim": 16})],
                     grid={"generator.latent_dim": [16, 64], "generator.attention": [[], [32]]})
    names = [v.name for v in expand(spec)]
    assert names[0] == "a" and len(names) == 5 and len(set(names)) == 5
    p = tmp_path / "s.yaml"
    p.write_text("base: sndcgan\nvariants: [{name: x, bogus: 1}]\n")
    with pytest.raises(GankitError, match="bogus"):
        load_spec(p)


def test_shipped_sweep_is_valid():
    from importlib import resources

    from gankit.sweep import variant_config

    path = Path(str(resources.files("gankit") / "sweeps" / "architecture.yaml"))
    spec = load_spec(path)
    vs = expand(spec)
    assert len(vs) >= 10
    for v in vs:
        variant_config(spec, v)  # every variant is a valid config
