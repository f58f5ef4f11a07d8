"""``gankit report``: one self-contained HTML file comparing runs.

Images and plots are embedded as base64 ``data:`` URIs so the file opens with no network
and no side files; all text from configs and run names goes through Jinja2's autoescaping.
"""

from __future__ import annotations

import base64
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

import gankit  # noqa: E402
from gankit.errors import GankitError  # noqa: E402
from gankit.io import read_jsonl, write_text  # noqa: E402
from gankit.reports.runs import models_label  # noqa: E402


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def _fig_b64(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= _flatten(v, key + ".")
        else:
            out[key] = v
    return out


def _fmt(x: Any, digits: int = 2) -> str:
    return f"{x:.{digits}f}" if isinstance(x, float) else ("-" if x is None else str(x))


def load_run(run_dir: Path, names: set[str]) -> dict[str, Any]:
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise GankitError(f"{run_dir} is not a gankit run folder (no config.yaml)")
    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    recs = read_jsonl(run_dir / "metrics.jsonl")
    name = run_dir.name
    while name in names:
        name = f"{run_dir.parent.name}/{name}"
        if name in names:
            name += "'"
    names.add(name)
    fids = [r for r in recs if r.get("kind") == "fid"]
    best = min(fids, key=lambda r: r["fid"]) if fids else None
    epochs = [r["epoch"] for r in recs if r.get("kind") == "epoch"]
    grids = {int(p.stem.split("-")[1]): p for p in sorted((run_dir / "samples").glob("epoch-*.png"))}
    anim = run_dir / "samples" / "progress.gif"
    interp, interp_from = _interpolation(run_dir)
    return {
        "animation": _b64(anim) if anim.is_file() else None,
        "interpolation": interp, "interpolation_from": interp_from,
        "dir": run_dir, "name": name, "preset": cfg.get("name", "?"), "config": cfg,
        "models": models_label(cfg),
        "steps": [r for r in recs if r.get("kind") == "step"], "fids": fids,
        "epochs": max(epochs, default=0), "best": best, "grid_paths": grids,
        "best_fid": _fmt(best["fid"]) if best else "-",
        "best_epoch": best["epoch"] if best else "-",
        "protocol": (f"{best.get('n')} generated vs {best.get('ref')} "
                     f"({best.get('mode', 'tf')})") if best else "-",
        "last_fid": _fmt(fids[-1]["fid"]) if fids else "-",
    }


def _interpolation(run_dir: Path, rows: int = 4, steps: int = 8) -> tuple[str | None, str]:
    """A PNG (base64) of latent interpolations from the run's generator, if it has one."""
    from gankit.generate import interpolate, load_generator
    from gankit.reports.images import make_grid

    try:
        g, _, epoch = load_generator(run_dir)
    except GankitError:
        return None, ""
    buf = io.BytesIO()
    from PIL import Image

    Image.fromarray(make_grid(interpolate(g, rows, steps), ncol=steps)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii"), f"epoch {epoch}"


def _pick_epochs(runs: list[dict[str, Any]], wanted: list[int] | None, k: int = 6) -> list[int]:
    avail = sorted(set().union(*(r["grid_paths"].keys() for r in runs)))
    if wanted:
        return [e for e in wanted if e in avail] or avail[-1:]
    if len(avail) <= k:
        return avail
    idx = [round(i * (len(avail) - 1) / (k - 1)) for i in range(k)]
    return [avail[i] for i in sorted(set(idx))]


def _plots(runs: list[dict[str, Any]]) -> list[dict[str, str]]:
    plots = []
    wass = any("wasserstein" in (r["steps"] or [{}])[0] for r in runs)
    key, label = ("wasserstein", "Wasserstein estimate E[D(real)] - E[D(fake)]") if wass else \
        ("g_loss", "G loss")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    for r in runs:
        st = [s for s in r["steps"] if key in s]
        if st:
            axes[0].plot([s["step"] for s in st], [s[key] for s in st], lw=1, label=r["name"])
        st = r["steps"]
        if st:
            axes[1].plot([s["step"] for s in st], [s["d_loss_real"] + s["d_loss_fake"] for s in st],
                         lw=1, label=r["name"])
    axes[0].set_title(label, fontsize=10)
    axes[1].set_title("D loss (real + fake)", fontsize=10)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    plots.append({"caption": "training losses", "data": _fig_b64(fig)})
    if any(r["fids"] for r in runs):
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for r in runs:
            if r["fids"]:
                ax.plot([f["epoch"] for f in r["fids"]], [f["fid"] for f in r["fids"]], marker="o",
                        ms=3, lw=1, label=r["name"])
                b = r["best"]
                ax.scatter([b["epoch"]], [b["fid"]], s=90, facecolors="none", edgecolors="red")
        ax.set_xlabel("epoch")
        ax.set_ylabel("FID")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        plots.append({"caption": "FID against epoch (best marked in red)", "data": _fig_b64(fig)})
    return plots


def render(
    run_dirs: list[Path], out: Path, *, title: str = "gankit report",
    epochs: list[int] | None = None, baselines: Path | None = None,
    extra_tables: list[dict[str, Any]] | None = None,
    extra_grids: dict[str, list[tuple[str, Path]]] | None = None,
) -> Path:
    if not run_dirs:
        raise GankitError("report needs at least one run folder")
    names: set[str] = set()
    runs = [load_run(d, names) for d in run_dirs]
    chosen = _pick_epochs(runs, epochs)
    for r in runs:
        r["grids"] = [{"label": f"epoch {e}", "data": _b64(r["grid_paths"][e])}
                      for e in chosen if e in r["grid_paths"]]
        for label, path in (extra_grids or {}).get(str(r["dir"]), []):
            r["grids"].append({"label": label, "data": _b64(path)})
    flat = [_flatten(r["config"]) for r in runs]
    keys = sorted(set().union(*flat))
    diff = [(k, [_fmt(f.get(k), 6) for f in flat]) for k in keys
            if k != "name" and len({json.dumps(f.get(k)) for f in flat}) > 1]
    base_rows = []
    if baselines:
        try:
            b = json.loads(Path(baselines).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise GankitError(f"cannot read baselines {baselines}: {err}") from None
        for k in ("train_vs_train", "test_vs_test", "train_vs_test"):
            if k in b:
                base_rows.append({"name": k.replace("_", " "), "fid": _fmt(b[k]),
                                  "n": b.get("n"), "mode": b.get("mode")})
    tables = [*(extra_tables or []), *_seed_tables(run_dirs)]
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gankit", "reports/templates"),
        autoescape=jinja2.select_autoescape(["html"]),
    )
    html = env.get_template("report.html").render(
        title=title, runs=runs, plots=_plots(runs), config_diff=diff, baselines=base_rows,
        extra_tables=tables, version=gankit.__version__,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
    write_text(out, html)
    return out


def _seed_tables(run_dirs: list[Path]) -> list[dict[str, Any]]:
    """Runs in ``NAME/seed-S`` folders, grouped: the best FIDs' mean ± std and 95% interval."""
    from gankit.metrics.protocol import fmt
    from gankit.reports.runs import group_seeds, summarize

    groups = group_seeds([summarize(Path(d)) for d in run_dirs])
    if not groups:
        return []
    rows = [[g["group"], len(g["seeds"]), "-" if g["best_fid"] is None else fmt(g["best_fid"]),
             "" if not g["best_fid"] or g["best_fid"]["ci95"] is None
             else "[{:.2f}, {:.2f}]".format(*g["best_fid"]["ci95"]), "/".join(g["status"])]
            for g in groups]
    return [{"title": "Seeds: best FID during training (each run's own tracking protocol)",
             "header": ["runs", "seeds", "best FID (mean ± std)", "95% interval", "status"],
             "rows": rows}]
