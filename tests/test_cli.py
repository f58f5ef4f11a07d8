"""The command line: one clear error line and exit code 2 for every bad input."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from gankit.cli import main
from gankit.data import cifar as cifar_mod

from .conftest import TINY


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def ok(args, capsys):
    try:
        main(args)
    except SystemExit as exc:  # click may exit 0
        assert exc.code in (0, None), capsys.readouterr().err
    return capsys.readouterr().out


@pytest.fixture
def tiny_args(fake_cifar):
    sets = [x for t in TINY + ["data.limit=64", "train.epochs=1"] for x in ("--set", t)]
    return ["--data-dir", str(fake_cifar), "--no-progress", *sets]


def test_train_resume_generate(tmp_path, capsys, tiny_args):
    run = tmp_path / "run"
    assert "done" in ok(["train", "--preset", "sagan", "--out", str(run), *tiny_args], capsys)
    assert (run / "loss.png").is_file()
    out = ok(["train", "--resume", str(run), "--epochs", "2", "--no-progress",
              "--data-dir", tiny_args[1]], capsys)
    assert "epoch 2" in out
    ok(["generate", str(run), "--n", "8", "--out", str(tmp_path / "s.npz")], capsys)
    assert (tmp_path / "s.npz").is_file()


@pytest.mark.parametrize("args, match", [
    (["train", "--preset", "nope"], "unknown preset"),
    (["train", "--set", "generator.bogus=1"], "generator.bogus: unknown key"),
    (["train", "--set", "train.epochs=-3"], "train.epochs"),
    (["train", "--set", "train.batch_size=abc"], "train.batch_size"),
    (["generate", "missing.safetensors", "--out", "x.png"], "checkpoint not found"),
    (["generate", "x.safetensors", "--out", "x.gif"], "--out x.gif"),
    (["train", "--resume", "nowhere"], "not a gankit run folder"),
    (["train", "--set", "train.seed=99999999999999999999"], "train.seed"),
    (["train", "--set", "train.seed=-1"], "train.seed"),
    (["train", "--set", "discriminator.kernel_size=4"], "discriminator.kernel_size must be odd"),
    (["train", "--set", "generator.out_kernel=2"], "generator.out_kernel must be odd"),
    (["train", "--minutes", "0"], "--minutes"),
    (["train", "--data", "no/such/folder"], "dataset not found: no/such/folder"),
    (["train", "--data", "cifar10:valid"], "bad dataset"),
    (["train", "--set", "data.resolution=48"], "data.resolution"),
    (["train", "--set", "data.resize_filter=cubic"], "data.resize_filter"),
    (["train", "--fid-every", "1", "--fid-ref", "no/such.npz"], "dataset not found"),
    (["fid-stats", "no/such/folder"], "dataset not found"),
])
def test_bad_input_one_line_exit_2(args, match, capsys, fake_cifar, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # No weights anywhere: a bad dataset must be reported before the Inception is looked for.
    monkeypatch.delenv("GANKIT_INCEPTION", raising=False)
    code, _, err = run_cli(args + (["--data-dir", str(fake_cifar)] if args[0] == "train" and
                                   "--resume" not in args else []), capsys)
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], err
    assert not (tmp_path / "runs").exists()  # no half-made run folder


def _one_error_line(code, err, match):
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
    assert match in lines[0], err


def test_damaged_runs_give_one_clear_line(tmp_path, capsys, tiny_args):
    import torch

    from gankit.training import checkpoint

    run = tmp_path / "run"
    ok(["train", "--preset", "dcgan", "--out", str(run), *tiny_args], capsys)
    resume = ["train", "--resume", str(run), "--epochs", "2", *tiny_args[:3]]
    cfg_text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(cfg_text + "\n  bad: [unclosed\n")
    _one_error_line(*run_cli(resume, capsys)[::2], "config.yaml")
    (run / "config.yaml").write_text(cfg_text.replace("widths:\n  - 8\n  - 8\n  - 8\n",
                                                      "widths:\n  - 8\n  - 8\n  - 16\n", 1))
    _one_error_line(*run_cli(resume, capsys)[::2], "does not fit the run's config.yaml")
    (run / "config.yaml").write_text(cfg_text)
    (_, path), = checkpoint.resume_checkpoints(run / "checkpoints")
    st = torch.load(checkpoint.state_path(path), weights_only=True)
    torch.save({k: v for k, v in st.items() if k != "step"}, checkpoint.state_path(path))
    _one_error_line(*run_cli(resume, capsys)[::2], "lacks step")
    assert (run / "config.yaml").read_text() == cfg_text  # a failed resume rewrites nothing


def test_missing_and_corrupt_data(tmp_path, capsys, monkeypatch):
    offline = dataclasses.replace(cifar_mod.CIFAR10, url="http://nonexistent.invalid/x")
    monkeypatch.setitem(cifar_mod.KINDS, "cifar10", offline)
    code, _, err = run_cli(["train", "--data-dir", str(tmp_path / "none"), "--out",
                            str(tmp_path / "r")], capsys)
    assert code == 2 and "--data-dir" in err and err.count("\n") == 1
    bad = tmp_path / "cifar-10-python.tar.gz"
    bad.write_bytes(b"\x1f\x8b broken")
    code, _, err = run_cli(["train", "--data-dir", str(bad), "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "corrupt" in err
    assert not (tmp_path / "r").exists()


def test_existing_run_folder_without_resume(tmp_path, capsys, tiny_args):
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep").write_text("x")
    code, _, err = run_cli(["train", "--out", str(run), *tiny_args], capsys)
    assert code == 2 and "--resume" in err and (run / "keep").read_text() == "x"


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "gankit.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for cmd in ("train", "generate", "fid", "fid-stats", "fid-baselines"):
        assert cmd in out


def test_fid_of_two_statistics_files_needs_no_network(tmp_path, capsys, monkeypatch):
    # FID(N(m1, s1^2 I), N(m2, s2^2 I)) in d dims = |m1 - m2|^2 + d (s1 - s2)^2
    monkeypatch.setenv("GANKIT_INCEPTION", str(tmp_path / "absent.pt"))
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))  # nothing to download into
    d = 8
    np.savez(tmp_path / "a.npz", mu=np.zeros(d), sigma=np.eye(d) * 4.0)  # another tool's file
    from gankit.metrics.fid import Stats

    Stats(np.full(d, 0.5), np.eye(d), 100, {"mode": "tf", "precision": "fp32"}).save(
        tmp_path / "b.npz")
    rec = json.loads(ok(["fid", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--json"],
                        capsys))
    assert rec["fid"] == pytest.approx(d * 0.25 + d * (2 - 1) ** 2, rel=1e-9)
    assert (rec["mode"], rec["precision_a"], rec["precision_b"]) == ("tf", None, "fp32")
    assert (rec["n_a"], rec["n_b"]) == (None, 100)  # the first file does not record its N
    code, _, err = run_cli(["fid", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"),
                            "--mode", "pytorch-fid"], capsys)
    assert code == 2 and "computed with mode tf, not pytorch-fid" in err
