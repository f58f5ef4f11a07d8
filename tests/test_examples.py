"""The scripts in examples/ run as a user runs them, on a real CIFAR-10 slice, and their runs
are then sampled and listed by the CLI (the classes are rebuilt from the example files)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import real_paths
from .test_cli import ok

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
pytestmark = pytest.mark.realdata


@pytest.mark.parametrize("script, arch", [
    ("custom_model.py", "custom_model.py:SmallGenerator"),
    ("custom_loss.py", "dcgan"),
])
def test_example_trains_and_the_cli_reloads_its_run(script, arch, tmp_path, capsys):
    data, _ = real_paths()
    run = tmp_path / "run"
    env = {**os.environ, "GANKIT_DATA_DIR": data}
    res = subprocess.run([sys.executable, str(EXAMPLES / script), "--out", str(run),
                          "--epochs", "1", "--limit", "512"], capture_output=True, text=True,
                         env=env, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert str(run) in res.stdout
    text = (run / "config.yaml").read_text()
    assert arch in text
    ok(["generate", str(run), "--n", "8", "--out", str(tmp_path / "s.npz")], capsys)
    with np.load(tmp_path / "s.npz") as z:
        assert z["images"].shape == (8, 32, 32, 3)
    assert "finished" in ok(["runs", str(tmp_path)], capsys)
