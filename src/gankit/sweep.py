"""``gankit sweep``: train variants of a base preset, score each by FID, tabulate.

A sweep file names a base preset, shared overrides, FID settings, and variants given as a
list and/or a grid (cartesian product of key lists). Each variant trains in
``OUT/runs/NAME``; a finished variant leaves ``result.json`` and is skipped on re-runs, an
interrupted one is resumed from its last checkpoint.
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


class FidSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(1000, ge=2)
    ref: str = "test[0:1000]"
    every: int = Field(0, ge=0, description="0: only after the last epoch")
    mode: str = "tf"


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.+-]+$")
    set: dict[str, Any] = Field(default_factory=dict)


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base: str
    epochs: int = Field(30, ge=1)
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


def variant_config(spec: SweepSpec, v: Variant) -> Config:
    sets = {**spec.set, **v.set, "train.epochs": spec.epochs, "train.fid_n": spec.fid.n,
            "train.fid_ref": spec.fid.ref, "train.fid_every": spec.fid.every or spec.epochs,
            "train.fid_mode": spec.fid.mode}
    cfg = resolve(spec.base, [f"{k}={json.dumps(val)}" for k, val in sets.items()])
    return cfg.model_copy(update={"name": v.name})


def run_sweep(spec_path: Path, out: Path, data_dir: str | Path | None,
              inception: str | Path | None, progress: bool = True) -> list[dict[str, Any]]:
    from gankit.metrics.training import TrainingFID
    from gankit.reports.plots import plot_run
    from gankit.training.loop import load_training_images, train

    spec = load_spec(spec_path)
    variants = expand(spec)
    cfgs = {v.name: variant_config(spec, v) for v in variants}  # validate all before training
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "sweep.yaml", yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    # Each variant trains on its own data (data.split/limit may differ); loads are shared.
    images: dict[tuple, Any] = {}
    evaluators: dict[tuple, Any] = {}
    results = []
    for v in variants:
        run = out / "runs" / v.name
        done = run / "result.json"
        if done.is_file():
            results.append(json.loads(done.read_text()))
            continue
        cfg = cfgs[v.name]
        d = cfg.data
        data_key = (d.dataset, d.split, d.limit, d.resolution, d.resize_filter)
        if data_key not in images:
            images[data_key] = load_training_images(cfg, data_dir)
        fid_key = (cfg.train.fid_n, cfg.train.fid_ref, cfg.train.fid_mode, cfg.train.fid_pr,
                   d.dataset, d.resolution, d.resize_filter)
        if fid_key not in evaluators:
            evaluators[fid_key] = TrainingFID(cfg, data_dir, inception)
        train(cfg, run, images[data_key], resume=(run / "config.yaml").is_file(),
              progress=progress, evaluator=evaluators[fid_key], on_epoch=plot_run)
        fids = [r for r in read_jsonl(run / "metrics.jsonl") if r.get("kind") == "fid"]
        best = min(fids, key=lambda r: r["fid"])
        res = {"name": v.name, "set": v.set, "best_fid": best["fid"], "best_epoch": best["epoch"],
               "final_fid": fids[-1]["fid"], "epochs": spec.epochs, "fid_n": spec.fid.n,
               "fid_ref": spec.fid.ref}
        write_json(done, res)
        results.append(res)
    results.sort(key=lambda r: r["best_fid"])
    _write_tables(out, results)
    from gankit.reports.html import render

    render([out / "runs" / r["name"] for r in results], out / "report.html",
           title=f"gankit sweep: {spec.base}, {len(results)} variants",
           extra_tables=[table(results)])
    return results


def table(results: list[dict[str, Any]]) -> dict[str, Any]:
    header = ["rank", "variant", "overrides", "best FID", "best epoch", "final FID"]
    rows = [[i + 1, r["name"], ", ".join(f"{k}={json.dumps(v)}" for k, v in r["set"].items()),
             f"{r['best_fid']:.2f}", r["best_epoch"], f"{r['final_fid']:.2f}"]
            for i, r in enumerate(results)]
    return {"title": "Sweep results (sorted by best FID)", "header": header, "rows": rows}


def _write_tables(out: Path, results: list[dict[str, Any]]) -> None:
    t = table(results)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(t["header"])
    w.writerows(t["rows"])
    write_text(out / "results.csv", buf.getvalue())
    md = ["| " + " | ".join(t["header"]) + " |", "|" + "---|" * len(t["header"])]
    md += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in t["rows"]]
    write_text(out / "results.md", "\n".join(md) + "\n")
