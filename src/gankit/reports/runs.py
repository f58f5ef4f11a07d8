"""``gankit runs``: one line per run folder below a directory, read from its files only,
then one line per group of seeds (``NAME/seed-S`` folders, as ``sweep`` and ``study`` write).

Status: ``running`` while the training process that wrote ``running.pid`` is alive;
``finished`` when the last record ends the run by its epochs or time budget; otherwise
``interrupted`` (a signal, a non-finite loss, or a process that died; resume it).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from gankit.io import read_jsonl

PID_FILE = "running.pid"


def models_label(cfg: dict) -> str:
    """``G / D`` by arch: ``dcgan`` / ``resnet``, or a custom network's class name."""
    def short(section: str) -> str:
        return str(cfg.get(section, {}).get("arch", "dcgan")).rpartition(":")[2]

    return f"{short('generator')} / {short('discriminator')}"


def _dataset_label(data: dict) -> str:
    """``cifar10:train``, ``my_images/ @64px``, with ``[:N]`` for a limit."""
    ds = str(data.get("dataset", "?"))
    label = f"{ds}:{data.get('split', '?')}" if ds in ("cifar10", "cifar100") else ds
    if data.get("limit"):
        label += f"[:{data['limit']}]"
    if data.get("resolution", 32) != 32:
        label += f" @{data['resolution']}px"
    return label


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def status(run_dir: Path) -> str:
    pid_file = run_dir / PID_FILE
    if pid_file.is_file():
        try:
            if _alive(int(pid_file.read_text().strip())):
                return "running"
        except ValueError:
            pass
    recs = read_jsonl(run_dir / "metrics.jsonl")
    ends = [r for r in recs if r.get("kind") == "end"]
    if ends and ends[-1].get("reason") in ("epochs", "budget") and ends[-1] is recs[-1]:
        return "finished"
    return "interrupted"


def summarize(run_dir: Path) -> dict[str, Any]:
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    recs = read_jsonl(run_dir / "metrics.jsonl")
    steps = [r for r in recs if r.get("kind") in ("step", "epoch", "end")]
    fids = [r for r in recs if r.get("kind") == "fid"]
    best = min(fids, key=lambda r: r["fid"]) if fids else None
    train, data = cfg.get("train", {}), cfg.get("data", {})
    per_step = train.get("batch_size", 0) // (2 if train.get("d_batch") == "half" else 1) * \
        cfg.get("optim", {}).get("n_dis", 1)
    world = 1
    run_json = run_dir / "run.json"
    if run_json.is_file():
        try:
            world = json.loads(run_json.read_text()).get("runtime", {}).get("world_size", 1)
        except ValueError:
            pass
    step = max((r.get("step", 0) for r in steps), default=0)
    epochs = [r["epoch"] for r in recs if r.get("kind") == "epoch"]
    return {
        "run": str(run_dir), "preset": cfg.get("name", "?"),
        "dataset": _dataset_label(data),
        "epochs_done": max(epochs, default=0), "epochs": train.get("epochs"), "step": step,
        "images_seen": step * per_step * world,
        "best_fid": best["fid"] if best else None, "best_epoch": best["epoch"] if best else None,
        "fid_protocol": f"{best['n']} vs {best.get('ref', '?')}, {best.get('mode', '?')}"
                        if best else None,
        "wall_seconds": max((r.get("wall_time", 0.0) for r in recs), default=0.0),
        "status": status(run_dir),
    }


def find_runs(root: Path) -> list[Path]:
    """Run folders (holding ``config.yaml`` and ``metrics.jsonl``) at or below ``root``."""
    if (root / "config.yaml").is_file() and (root / "checkpoints").is_dir():
        return [root]
    return sorted(p.parent for p in root.rglob("config.yaml")
                  if (p.parent / "checkpoints").is_dir())


def table(rows: list[dict[str, Any]]) -> str:
    header = ["run", "preset", "dataset", "epochs", "images", "best FID (epoch; N vs ref)",
              "wall", "status"]
    lines = []
    for r in rows:
        fid = "-" if r["best_fid"] is None else \
            f"{r['best_fid']:.2f} ({r['best_epoch']:g}; {r['fid_protocol']})"
        wall = r["wall_seconds"]
        lines.append([r["run"], r["preset"], r["dataset"], f"{r['epochs_done']}/{r['epochs']}",
                      f"{r['images_seen']:,}", fid, f"{int(wall // 3600)}:{int(wall % 3600 // 60):02d}"
                      f":{int(wall % 60):02d}", r["status"]])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
    fmt = "  ".join(f"{{:{w}}}" for w in widths)
    return "\n".join(fmt.format(*row) for row in [header, *lines])


_SEED_DIR = re.compile(r"^seed-(\d+)$")


def group_seeds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs in ``NAME/seed-S`` folders grouped by ``NAME``: seeds, statuses and the best FIDs
    as mean, std and 95% interval (``gankit.metrics.protocol.summarize``)."""
    from gankit.metrics.protocol import summarize as stats

    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        path = Path(r["run"])
        m = _SEED_DIR.match(path.name)
        if m:
            groups.setdefault(str(path.parent), []).append({**r, "seed": int(m.group(1))})
    out = []
    for name, members in groups.items():
        fids = [m["best_fid"] for m in members if m["best_fid"] is not None]
        out.append({"group": name, "seeds": sorted(m["seed"] for m in members),
                    "status": sorted({m["status"] for m in members}),
                    "best_fid": stats(fids) if fids else None})
    return out


def group_table(groups: list[dict[str, Any]]) -> str:
    from gankit.metrics.protocol import fmt

    lines = []
    for g in groups:
        fid = "-" if g["best_fid"] is None else fmt(g["best_fid"])
        ci = "" if not g["best_fid"] or g["best_fid"]["ci95"] is None else \
            " 95% [{:.2f}, {:.2f}]".format(*g["best_fid"]["ci95"])
        lines.append(f"{g['group']}: {len(g['seeds'])} seed(s) {g['seeds']}, best FID "
                     f"{fid}{ci} ({'/'.join(g['status'])})")
    return "\n".join(lines)
