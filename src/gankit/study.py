"""``gankit study dcgan-vs-sagan``: reference design 2, end to end, under its protocol.

Trains ``sndcgan`` and ``sagan`` (each for ``epochs`` or ``minutes``, ``seeds`` times) with
FID of ``track_n`` samples every ``fid_every`` epochs — the curve the reference plotted — on a
*selection* split (default ``test[5000:6000]``) that picks the best checkpoint. The best and
the final generator of each run are then scored on splits never used for selection: the
reference protocol (``ref_n`` samples vs ``test[0:ref_n]``, mean ± std over ``draws`` sample
draws) and the standard one (``standard_n`` samples vs CIFAR-10 train), beside real-vs-real
baselines at ``ref_n``; seeds aggregate as mean ± std and a 95% interval. Re-running resumes
unfinished runs and rescores; one HTML report holds curves, tables and sample grids.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gankit.config import resolve
from gankit.generate import load_generator, sample_images
from gankit.io import read_jsonl, write_json
from gankit.metrics.baselines import baselines
from gankit.metrics.fid import Stats, fid_from_stats
from gankit.metrics.inception import file_sha256
from gankit.metrics.protocol import (
    PROTOCOL_METHOD,
    SAMPLE_SEED,
    check_disjoint,
    draw_fids,
    fmt,
    summarize,
)
from gankit.metrics.sources import load_source, source_stats
from gankit.reports.html import render
from gankit.reports.images import save_grid
from gankit.reports.plots import plot_run
from gankit.training import checkpoint
from gankit.training.loop import load_training_images, train

PRESETS = ("sndcgan", "sagan")


@dataclass(frozen=True)
class Protocol:
    """What is measured, on which images (defaults: the reference design's, made unbiased)."""

    fid_every: int = 1
    track_n: int = 500
    select: str = "test[5000:6000]"
    ref_n: int = 1000
    draws: int = 5
    standard_n: int = 10000
    standard_ref: str = "train"

    def check(self) -> None:
        check_disjoint(self.select, f"test[0:{self.ref_n}]")


def _cifar(spec: str) -> str:
    return spec if spec.startswith("cifar10:") or spec.endswith(".npz") else f"cifar10:{spec}"


def seed_runs(root: Path, seeds: int) -> list[tuple[int, Path]]:
    """``root/seed-S`` for S = 0 .. seeds-1: one layout for one seed or many."""
    return [(s, root / f"seed-{s}") for s in range(seeds)]


def _best_record(run: Path) -> dict[str, Any]:
    fids = [r for r in read_jsonl(run / "metrics.jsonl") if r.get("kind") == "fid"]
    return min(fids, key=lambda r: r["fid"]) if fids else {}


def run_study(out: Path, data_dir, inception, *, epochs: int, minutes: float | None = None,
              seeds: int = 1, protocol: Protocol = Protocol(), overrides: list[str] | None = None,
              progress: bool = True) -> dict[str, Any]:
    from gankit.metrics.training import TrainingFID

    p = protocol
    p.check()
    out.mkdir(parents=True, exist_ok=True)
    sets = [*(overrides or []), f"train.epochs={epochs}", f"train.fid_every={p.fid_every}",
            f"train.fid_n={p.track_n}", f"train.fid_ref={p.select}"]
    if minutes:
        sets.append(f"train.minutes={minutes}")
    cfgs = {(name, s): resolve(name, [*sets, f"train.seed={s}"])
            for name in PRESETS for s in range(seeds)}  # every config valid before training
    first = cfgs[(PRESETS[0], 0)]
    images = load_training_images(first, data_dir)
    evaluator = TrainingFID(first, data_dir, inception)
    ext = evaluator.ext
    for name in PRESETS:
        for s, run in seed_runs(out / name, seeds):
            train(cfgs[(name, s)], run, images, resume=(run / "config.yaml").is_file(),
                  progress=progress, evaluator=evaluator, on_epoch=plot_run)
    ref = source_stats(load_source(f"cifar10:test[0:{p.ref_n}]", data_dir=data_dir), ext)[0]
    std_spec = _cifar(p.standard_ref)
    std_ref = source_stats(load_source(std_spec, data_dir=data_dir), ext, progress=progress)[0]
    rows, grids = [], {}
    for name in PRESETS:
        for s, run in seed_runs(out / name, seeds):
            best_rec = _best_record(run)
            grids[str(run)] = []
            for which, path in (("best", run / "checkpoints" / "best.safetensors"),
                                ("final", checkpoint.resume_checkpoints(run / "checkpoints")[-1][1])):
                row = _score(run, which, path, ext, ref, std_ref, p, progress)
                row.update(model=name, seed=s)
                if which == "best" and best_rec:
                    row.update(step=best_rec["step"], wall_seconds=best_rec.get("wall_time"),
                               fid_select=best_rec["fid"])
                rows.append(row)
                grids[str(run)].append((f"{which} generator (epoch {row['epoch']:g})",
                                        run / f"{which}-grid.png"))
    summary = _aggregate(rows)
    base = baselines(ext, data_dir, p.ref_n)
    write_json(out / "baselines.json", base)
    result = {"protocol": asdict(p), "epochs": epochs, "minutes": minutes, "seeds": seeds,
              "rows": rows, "summary": summary, "baselines": base}
    write_json(out / "study.json", result)
    render([run for name in PRESETS for _, run in seed_runs(out / name, seeds)],
           out / "report.html", title="DCGAN vs SAGAN (SN, WGAN, TTUR)",
           baselines=out / "baselines.json", extra_tables=_tables(rows, summary, p, std_spec),
           extra_grids=grids)
    return result


def _score(run: Path, which: str, path: Path, ext, ref: Stats, std_ref: Stats, p: Protocol,
           progress: bool) -> dict[str, Any]:
    """One generator's scores and sample grid, kept in ``run/score-WHICH.json``: scoring four
    generators takes about an hour on a CPU, so a killed study rescoring from scratch loses
    it. The cache holds only for the same checkpoint bytes and protocol."""
    key = {"checkpoint": path.name, "sha256": file_sha256(path), "protocol": asdict(p),
           "inception": getattr(ext, "sha256", None)}
    cache = run / f"score-{which}.json"
    if cache.is_file() and (run / f"{which}-grid.png").is_file():
        saved = json.loads(cache.read_text())
        if saved.get("key") == key:
            return dict(saved["row"])
    g, _, epoch = load_generator(path)
    fake = sample_images(g, max(p.standard_n, 64), seed=SAMPLE_SEED)
    row = {"which": which, "epoch": epoch,
           "fid_ref": summarize(draw_fids(g, ext, ref, p.ref_n, p.draws)),
           "fid_standard": fid_from_stats(Stats.from_features(
               ext(fake[:p.standard_n], progress=progress)), std_ref, PROTOCOL_METHOD)}
    save_grid(run / f"{which}-grid.png", fake[:64])
    write_json(cache, {"key": key, "row": row})
    return dict(row)


def _aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model and generator (best / final): the seeds' draw-means and standard FIDs."""
    out = []
    for name in PRESETS:
        for which in ("best", "final"):
            mine = [r for r in rows if r["model"] == name and r["which"] == which]
            out.append({"model": name, "which": which, "seeds": len(mine),
                        "fid_ref": summarize([r["fid_ref"]["mean"] for r in mine]),
                        "fid_standard": summarize([r["fid_standard"] for r in mine])})
    return out


def _tables(rows, summary, p: Protocol, std_spec: str) -> list[dict[str, Any]]:
    ref_h = f"FID {p.ref_n} vs test[0:{p.ref_n}] (mean ± std, {p.draws} draws)"
    std_h = f"FID {p.standard_n} vs {std_spec}"
    per_run = {
        "title": f"Per run: best chosen by FID-{p.track_n} on {p.select}, reported elsewhere",
        "header": ["model", "seed", "generator", "epoch", "wall (min)", ref_h, std_h],
        "rows": [[r["model"], r["seed"], r["which"], f"{r['epoch']:g}",
                  "" if r.get("wall_seconds") is None else f"{r['wall_seconds'] / 60:.1f}",
                  fmt(r["fid_ref"]), f"{r['fid_standard']:.2f}"] for r in rows],
    }

    def interval(s):
        return "" if s["ci95"] is None else f"[{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}]"

    across = {
        "title": "Across seeds (mean ± std of the per-seed values; 95% t-interval)",
        "header": ["model", "generator", "seeds", f"FID-{p.ref_n} (reference protocol)",
                   "95% interval", std_h, "95% interval"],
        "rows": [[s["model"], s["which"], s["seeds"], fmt(s["fid_ref"]), interval(s["fid_ref"]),
                  fmt(s["fid_standard"]), interval(s["fid_standard"])] for s in summary],
    }
    return [per_run, across]
