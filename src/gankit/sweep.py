"""``gankit sweep``: train variants of a base preset, score each by FID, tabulate.

A sweep file names a base preset, shared overrides, a budget (``epochs`` and/or ``minutes``
per variant), ``seeds``, FID settings, and variants given as a list and/or a grid (cartesian
product of key lists). Each variant trains once per seed in ``OUT/runs/NAME/seed-S``; a
finished run leaves ``result.json`` and is skipped on re-runs, an interrupted one resumes from
its last checkpoint. Scoring follows :mod:`gankit.metrics.protocol`: the final generator (and,
when FID is tracked, the best one, chosen on ``fid.select``) is scored on ``fid.ref`` as the
mean of ``fid.draws`` sample draws; variants rank by the mean over seeds.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gankit.config import Config, resolve
from gankit.errors import GankitError
from gankit.io import read_jsonl, write_json, write_text
from gankit.metrics.protocol import check_disjoint, draw_fids, fmt, summarize


class FidSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(1000, ge=2, description="generated images per reported FID draw")
    ref: str = "test[0:1000]"
    draws: int = Field(5, ge=1, description="sample draws averaged per reported FID")
    every: int = Field(0, ge=0, description="epochs between FIDs during training, on select; "
                       "0: none, and the final generator is the only one scored")
    track_n: int = Field(500, ge=2, description="generated images per FID during training")
    select: str = Field("test[5000:6000]", description="the split that picks the best checkpoint")
    mode: str = "tf"


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.+-]+$")
    set: dict[str, Any] = Field(default_factory=dict)


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base: str
    epochs: int = Field(30, ge=1)
    minutes: float | None = Field(None, gt=0, description="training budget per variant and seed")
    seeds: int = Field(1, ge=1)
    set: dict[str, Any] = Field(default_factory=dict)
    fid: FidSpec = Field(default_factory=FidSpec)
    variants: list[Variant] = Field(default_factory=list)
    grid: dict[str, list[Any]] = Field(default_factory=dict)

    @field_validator("grid")
    @classmethod
    def _grid_nonempty(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if any(not vals for vals in v.values()):
            raise ValueError("every grid key needs at least one value")
        return v


def _short(key: str, val: Any) -> str:
    v = json.dumps(val, separators=(",", ":")).replace('"', "")
    v = v.replace("[", "").replace("]", "").replace(",", "-") or "none"
    return f"{key.split('.')[-1]}={v}"


def expand(spec: SweepSpec) -> list[Variant]:
    out = list(spec.variants)
    keys = list(spec.grid)
    for combo in itertools.product(*(spec.grid[k] for k in keys)) if keys else []:
        sets = dict(zip(keys, combo, strict=True))
        name = "_".join(_short(k, v) for k, v in sets.items()).replace("=", "")
        out.append(Variant(name=name, set=sets))
    if not out:
        out = [Variant(name="base")]
    names = [v.name for v in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise GankitError(f"sweep variant names repeat: {sorted(dup)}")
    return out


def load_spec(path: Path) -> SweepSpec:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise GankitError(f"cannot read sweep file {path}: {err}") from None
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as err:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise GankitError(f"invalid sweep file {path}: {msgs}") from None


def variant_config(spec: SweepSpec, v: Variant, seed: int = 0) -> Config:
    """The variant's config for one seed: tracking FID (if any) runs on ``fid.select``."""
    f = spec.fid
    sets = {"train.seed": seed, **spec.set, **v.set, "train.epochs": spec.epochs,
            "train.minutes": spec.minutes, "train.fid_n": f.track_n, "train.fid_ref": f.select,
            "train.fid_every": f.every, "train.fid_mode": f.mode}
    if v.set.get("train.seed", spec.set.get("train.seed")) is not None:
        raise GankitError(f"variant {v.name}: train.seed is set by the sweep's seeds, not by set")
    cfg = resolve(spec.base, [f"{k}={json.dumps(val)}" for k, val in sets.items()])
    return cfg.model_copy(update={"name": v.name})


def run_sweep(spec_path: Path, out: Path, data_dir: str | Path | None,
              inception: str | Path | None, progress: bool = True, *,
              minutes: float | None = None, seeds: int | None = None) -> list[dict[str, Any]]:
    """Train and score every variant x seed (``minutes`` / ``seeds`` override the file's)."""
    from gankit.reports.plots import plot_run
    from gankit.training.loop import load_training_images, train

    spec = load_spec(spec_path)
    spec = spec.model_copy(update={k: v for k, v in (("minutes", minutes), ("seeds", seeds))
                                   if v is not None})
    check_disjoint(spec.fid.select, spec.fid.ref)
    variants = expand(spec)
    cfgs = {(v.name, s): variant_config(spec, v, s)  # validate all before training
            for v in variants for s in range(spec.seeds)}
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "sweep.yaml", yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    # Each variant trains on its own data (data.split/limit may differ); loads are shared.
    images: dict[tuple, Any] = {}
    evaluators: dict[tuple, Any] = {}
    per_run = []
    for v in variants:
        for s in range(spec.seeds):
            run = out / "runs" / v.name / f"seed-{s}"
            done = run / "result.json"
            if done.is_file():
                per_run.append(json.loads(done.read_text()))
                continue
            cfg = cfgs[(v.name, s)]
            d = cfg.data
            data_key = (d.dataset, d.split, d.limit, d.resolution, d.resize_filter)
            if data_key not in images:
                images[data_key] = load_training_images(cfg, data_dir)
            fid_key = (cfg.train.fid_mode, d.dataset, d.resolution, d.resize_filter)
            if fid_key not in evaluators:
                evaluators[fid_key] = _Scorer(cfg, spec.fid, data_dir, inception)
            scorer = evaluators[fid_key]
            train(cfg, run, images[data_key], resume=(run / "config.yaml").is_file(),
                  progress=progress, evaluator=scorer.tracker if spec.fid.every else None,
                  on_epoch=plot_run)
            res = {"name": v.name, "seed": s, "set": v.set, **scorer.score(run)}
            write_json(done, res)
            per_run.append(res)
    results = aggregate(per_run, [v.name for v in variants])
    write_json(out / "results.json", {"sweep": spec.model_dump(mode="json"), "runs": per_run,
                                      "variants": results})
    _write_tables(out, results, spec)
    from gankit.reports.html import render

    render([out / "runs" / r["name"] / f"seed-{s}" for r in results for s in range(spec.seeds)],
           out / "report.html", title=f"gankit sweep: {spec.base}, {len(results)} variants",
           extra_tables=[table(results, spec)])
    return results


class _Scorer:
    """The reported side of a sweep: tracking FID on ``fid.select`` during training, then
    ``fid.draws`` draws of ``fid.n`` samples of the best and final generators vs ``fid.ref``."""

    def __init__(self, cfg: Config, fid: FidSpec, data_dir, inception) -> None:
        from gankit.metrics.sources import load_source, source_stats
        from gankit.metrics.training import TrainingFID, reference_spec

        self.fid = fid
        report = cfg.model_copy(update={"train": cfg.train.model_copy(update={"fid_ref": fid.ref})})
        if not fid.every:  # nothing tracked: the one reference is the reported split
            self.tracker = TrainingFID(report, data_dir, inception)
            self.ref = self.tracker.ref
            return
        self.tracker = TrainingFID(cfg, data_dir, inception)
        src = load_source(reference_spec(report), data_dir=data_dir,
                          resolution=cfg.data.resolution, resize_filter=cfg.data.resize_filter)
        self.ref = source_stats(src, self.tracker.ext)[0]

    def score(self, run: Path) -> dict[str, Any]:
        from gankit.generate import load_generator
        from gankit.training import checkpoint

        final_path = checkpoint.resume_checkpoints(run / "checkpoints")[-1][1]
        recs = read_jsonl(run / "metrics.jsonl")
        fids = [r for r in recs if r.get("kind") == "fid"]
        out: dict[str, Any] = {"fid_n": self.fid.n, "fid_ref": self.fid.ref,
                               "draws": self.fid.draws, "select": self.fid.select if fids else None,
                               "step": max((r.get("step", 0) for r in recs), default=0),
                               "wall_seconds": max((r.get("wall_time", 0.0) for r in recs),
                                                   default=0.0)}
        g, _, out["final_epoch"] = load_generator(final_path)
        out["final"] = summarize(draw_fids(g, self.tracker.ext, self.ref, self.fid.n,
                                           self.fid.draws))
        if fids:
            best = min(fids, key=lambda r: r["fid"])
            g, _, out["best_epoch"] = load_generator(run / "checkpoints" / "best.safetensors")
            out["best"] = summarize(draw_fids(g, self.tracker.ext, self.ref, self.fid.n,
                                              self.fid.draws))
            out["best_select_fid"] = best["fid"]
        else:  # nothing tracked: the final generator is the only candidate
            out["best"], out["best_epoch"] = out["final"], out["final_epoch"]
        return out


def aggregate(per_run: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """One row per variant: the seeds' draw-means summarised (mean, std, 95% interval),
    sorted by the mean FID of the best generator."""
    rows = []
    for name in names:
        mine = sorted((r for r in per_run if r["name"] == name), key=lambda r: r["seed"])
        rows.append({"name": name, "set": mine[0]["set"], "seeds": [r["seed"] for r in mine],
                     "best": summarize([r["best"]["mean"] for r in mine]),
                     "final": summarize([r["final"]["mean"] for r in mine]),
                     "best_epoch": [r["best_epoch"] for r in mine],
                     "wall_seconds": summarize([r["wall_seconds"] for r in mine])["mean"]})
    return sorted(rows, key=lambda r: r["best"]["mean"])


def _interval(s: dict[str, Any]) -> str:
    return "" if s["ci95"] is None else f"[{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}]"


def table(results: list[dict[str, Any]], spec: SweepSpec) -> dict[str, Any]:
    f = spec.fid
    budget = (f"{spec.minutes:g} min, at most {spec.epochs} epochs," if spec.minutes
              else f"{spec.epochs} epochs")
    header = ["rank", "variant", "overrides", "seeds", f"best FID-{f.n} (mean ± std)",
              "95% interval", "best epoch", f"final FID-{f.n}", "wall (min)"]
    rows = [[i + 1, r["name"], ", ".join(f"{k}={json.dumps(v)}" for k, v in r["set"].items()),
             len(r["seeds"]), fmt(r["best"]), _interval(r["best"]),
             "/".join(f"{e:g}" for e in r["best_epoch"]), fmt(r["final"]),
             f"{r['wall_seconds'] / 60:.1f}"]
            for i, r in enumerate(results)]
    select = (f"best chosen by FID-{f.track_n} on {f.select} every {f.every} epoch(s)"
              if f.every else "no tracking: best = final")
    return {"title": f"Sweep results, sorted by best FID ({budget} per variant and seed; FID "
                     f"{f.n} vs {f.ref}, mean of {f.draws} draws; {select})",
            "header": header, "rows": rows}


def _write_tables(out: Path, results: list[dict[str, Any]], spec: SweepSpec) -> None:
    t = table(results, spec)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(t["header"])
    w.writerows(t["rows"])
    write_text(out / "results.csv", buf.getvalue())
    md = [f"{t['title']}\n", "| " + " | ".join(t["header"]) + " |", "|" + "---|" * len(t["header"])]
    md += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in t["rows"]]
    write_text(out / "results.md", "\n".join(md) + "\n")
