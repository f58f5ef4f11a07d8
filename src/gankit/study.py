"""``gankit study dcgan-vs-sagan``: reference design 2, end to end.

Trains ``sndcgan`` and ``sagan`` with FID tracking, then scores the best and the final
generator of each under two protocols — the reference design's (1,000 generated images vs
1,000 test images) and the standard one (``--standard-n`` generated vs CIFAR-10 train) — adds
real-vs-real baselines at the reference N, sample grids of best and final generators, and
writes one HTML report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gankit.config import resolve
from gankit.generate import load_generator, sample_images
from gankit.io import write_json
from gankit.metrics.baselines import baselines
from gankit.metrics.fid import Stats, fid_from_stats
from gankit.metrics.sources import load_source, source_stats
from gankit.reports.html import render
from gankit.reports.images import save_grid
from gankit.reports.plots import plot_run
from gankit.training import checkpoint
from gankit.training.loop import load_training_images, train

PRESETS = ("sndcgan", "sagan")


def run_study(out: Path, data_dir, inception, *, epochs: int, fid_every: int, fid_n: int,
              ref_n: int, standard_n: int, standard_ref: str, overrides: list[str],
              progress: bool = True) -> list[dict[str, Any]]:
    from gankit.metrics.training import TrainingFID

    out.mkdir(parents=True, exist_ok=True)
    sets = [*overrides, f"train.epochs={epochs}", f"train.fid_every={fid_every}",
            f"train.fid_n={fid_n}", f"train.fid_ref=test[0:{ref_n}]"]
    cfgs = {p: resolve(p, sets) for p in PRESETS}
    images = load_training_images(cfgs["sagan"], data_dir)
    evaluator = TrainingFID(cfgs["sagan"], data_dir, inception)
    ext = evaluator.ext
    for p, cfg in cfgs.items():
        run = out / p
        train(cfg, run, images, resume=(run / "config.yaml").is_file(), progress=progress,
              evaluator=evaluator, on_epoch=plot_run)
    ref_protocol = source_stats(load_source(f"cifar10:test[0:{ref_n}]", data_dir=data_dir), ext)[0]
    std_spec = standard_ref if standard_ref.startswith("cifar10:") else f"cifar10:{standard_ref}"
    std_ref = source_stats(load_source(std_spec, data_dir=data_dir), ext, progress=progress)[0]
    rows, grids = [], {}
    for p in PRESETS:
        run = out / p
        best = run / "checkpoints" / "best.safetensors"
        last = checkpoint.epoch_checkpoints(run / "checkpoints")[-1][1]
        grids[str(run)] = []
        for label, path in (("best", best), ("final", last)):
            g, _, epoch = load_generator(path)
            fake = sample_images(g, max(ref_n, standard_n), seed=2024)
            feats = ext(fake, progress=progress)
            rows.append({
                "run": p, "which": label, "epoch": epoch,
                "fid_reference_protocol": fid_from_stats(Stats.from_features(feats[:ref_n]),
                                                         ref_protocol),
                "fid_standard": fid_from_stats(Stats.from_features(feats[:standard_n]), std_ref),
            })
            grid = run / f"{label}-grid.png"
            save_grid(grid, fake[:64])
            grids[str(run)].append((f"{label} generator (epoch {epoch})", grid))
    base = baselines(ext, data_dir, ref_n)
    write_json(out / "baselines.json", base)
    write_json(out / "study.json", {"rows": rows, "baselines": base})
    table = {
        "title": "FID of best and final generators",
        "header": ["run", "generator", "epoch",
                   f"FID, reference protocol ({ref_n} vs test[0:{ref_n}])",
                   f"FID, standard ({standard_n} vs {std_spec})"],
        "rows": [[r["run"], r["which"], r["epoch"], f"{r['fid_reference_protocol']:.2f}",
                  f"{r['fid_standard']:.2f}"] for r in rows],
    }
    render([out / p for p in PRESETS], out / "report.html", title="DCGAN vs SAGAN (SN, WGAN, TTUR)",
           baselines=out / "baselines.json", extra_tables=[table], extra_grids=grids)
    return rows
