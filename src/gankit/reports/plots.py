"""Per-run plots: ``loss.png`` and ``fid.png``, redrawn from ``metrics.jsonl``."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gankit.io import atomic_path, read_jsonl  # noqa: E402


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_run(run_dir: Path) -> None:
    """Redraw the run's plots and its progress animation (cheap; called at every epoch end)."""
    from gankit.reports.images import progress_animation

    progress_animation(run_dir)
    recs = read_jsonl(Path(run_dir) / "metrics.jsonl")
    steps = [r for r in recs if r.get("kind") == "step"]
    if steps:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        x = [r["step"] for r in steps]
        for key, label in (("d_loss_real", "D loss on real"), ("d_loss_fake", "D loss on fake"),
                           ("g_loss", "G loss"), ("wasserstein", "Wasserstein estimate")):
            if key in steps[0]:
                ax.plot(x, [r[key] for r in steps], label=label, lw=1)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        _save(fig, Path(run_dir) / "loss.png")
    fids = [r for r in recs if r.get("kind") == "fid"]
    if fids:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot([r["epoch"] for r in fids], [r["fid"] for r in fids], marker="o", lw=1)
        best = min(fids, key=lambda r: r["fid"])
        ax.scatter([best["epoch"]], [best["fid"]], s=120, facecolors="none", edgecolors="red",
                   label=f"best {best['fid']:.2f} @ epoch {best['epoch']}", zorder=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"FID ({best.get('n', '?')} samples vs {best.get('ref', '?')})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        _save(fig, Path(run_dir) / "fid.png")
