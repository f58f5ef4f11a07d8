"""``gankit sweep`` trains each variant on its own data settings."""

import json

import yaml

from gankit.io import read_jsonl
from gankit.metrics import training as training_fid
from gankit.sweep import run_sweep

from .conftest import TINY, StubExtractor


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
        ends = [r for r in read_jsonl(tmp_path / "out" / "runs" / name / "metrics.jsonl")
                if r["kind"] == "epoch"]
        steps[name] = ends[-1]["step"]
    # 8 real images per step (batch 16, half real): 64 -> 8 steps, 128 -> 16, 96 -> 12
    assert steps == {"small": 8, "large": 16, "test-split": 12}
