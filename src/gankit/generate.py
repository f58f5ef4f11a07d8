"""Sampling from a saved generator: a grid PNG, a folder of PNGs, or an ``.npz`` of uint8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from gankit.config import Config
from gankit.errors import GankitError
from gankit.io import atomic_path
from gankit.models import build_generator
from gankit.models.layers import balanced_labels, call, n_classes_of
from gankit.reports.images import save_grid, save_png, to_uint8
from gankit.training import checkpoint
from gankit.training.ema import standing_statistics


def eval_device(name: str = "auto") -> torch.device:
    """Where sampling and scoring run: the GPU when there is one (``auto``), else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_generator(path: Path, raw: bool = False,
                   device: str | torch.device = "auto") -> tuple[nn.Module, Config, int]:
    """Rebuild G from a checkpoint file or run folder; eval mode, on ``device`` (``auto``:
    the GPU when there is one, so ``generate`` / ``fid RUN`` do not sample on the CPU of a
    GPU machine). The EMA weights
    when the checkpoint has them, unless ``raw`` asks for the trained weights; the EMA G's
    batch-norm statistics are (re)computed for its weights, so checkpoints written before
    training did that sample the same way as new ones."""
    path = checkpoint.find_generator_checkpoint(Path(path))
    cfg, epoch = checkpoint.load_config(path)
    parts = checkpoint.load_tensors(path)
    use_ema = not raw and "G_ema" in parts
    g_sd = parts["G_ema"] if use_ema else parts["G"]
    g = build_generator(cfg.generator, resolution=cfg.data.resolution,
                        n_classes=cfg.cond.n_classes)
    try:
        g.load_state_dict(g_sd)
    except RuntimeError as err:
        raise GankitError(f"{path}: weights do not match its config ({err})") from None
    g = g.to(eval_device(device) if isinstance(device, str) else device)
    if use_ema:
        standing_statistics(g)
    return g.eval(), cfg, epoch


def sample_labels(g: nn.Module, n: int, label: int | None = None) -> torch.Tensor | None:
    """The labels ``sample_images`` uses: None for an unconditional G; class ``label`` for
    all ``n``; else class-balanced ``0, 1, ..., K-1, 0, ...`` (the conditional protocol)."""
    k = n_classes_of(g)
    if not k:
        if label is not None:
            raise GankitError("--class needs a class-conditional generator; this one is "
                              "unconditional (cond.n_classes is 0)")
        return None
    if label is not None:
        return torch.full((n,), label, dtype=torch.long)
    return balanced_labels(n, k)


@torch.no_grad()
def sample_images(g: nn.Module, n: int, seed: int = 0, batch_size: int = 500,
                  labels: torch.Tensor | None = None,
                  part: tuple[int, int] | None = None) -> np.ndarray:
    """``n`` images as uint8 N x R x R x 3 from latents drawn with ``seed``, in fp32; with
    ``part=(lo, hi)`` only images ``lo:hi`` of those ``n`` (a DDP rank's share, :func:`shard`),
    the same pixels the whole draw gives there.

    A conditional G samples ``labels`` (default: class-balanced, :func:`sample_labels`).
    Touches no global state (threads, RNG, precision): it runs on G's device with its own
    generator, so sampling in the middle of training cannot change how training continues.
    G is put in eval mode (batch-norm running statistics, no spectral-norm power iteration)
    and given back in the mode it came in.
    """
    device = next(g.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    if labels is None:
        labels = sample_labels(g, n)
    lo, hi = (0, n) if part is None else part
    was_training = g.training
    g.eval()
    out = []
    try:
        for i in range(0, n, batch_size):
            # every latent is drawn, in the same chunks, so a part is the whole draw's slice
            z = torch.randn(min(batch_size, n - i), g.latent_dim, generator=gen)
            a, b = max(lo, i) - i, min(hi, i + len(z)) - i
            if a >= b:
                continue
            y = None if labels is None else labels[i + a : i + b].to(device)
            out.append(to_uint8(call(g, z[a:b].to(device), y).float()))
    finally:
        g.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 32, 32, 3), np.uint8)


def shard(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous share ``[lo, hi)`` of ``n`` items (sizes differ by <= 1)."""
    return n * rank // world_size, n * (rank + 1) // world_size


def class_index(cfg: Config, run_classes: list[str] | None, name: str) -> int:
    """``--class``: an index, or a class name recorded for the run's data."""
    k = cfg.cond.n_classes
    if not k:
        raise GankitError("--class needs a class-conditional run; this one is unconditional "
                          "(cond.n_classes is 0)")
    if name.lstrip("-").isdigit():
        i = int(name)
        if not 0 <= i < k:
            raise GankitError(f"--class {i} is outside the run's {k} classes (0..{k - 1})")
        return i
    names = run_classes or []
    if name not in names:
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise GankitError(f"--class {name!r} is not one of the run's classes ({shown or 'unnamed'}); "
                          "pass a name or an index 0..{k - 1}".replace("{k - 1}", str(k - 1)))
    return names.index(name)


def run_classes(path: Path) -> list[str] | None:
    """The class names recorded in the run's ``run.json`` (None where there are none)."""
    import json

    path = Path(path)
    run_dir = path if path.is_dir() else path.parent.parent
    try:
        return json.loads((run_dir / "run.json").read_text()).get("data", {}).get("classes")
    except (OSError, ValueError, AttributeError):
        return None


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between latent rows ``a`` and ``b`` at fractions ``t``: Gaussian
    latents live near a sphere, and a straight line through its inside gives atypical codes."""
    an, bn = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.arccos((an * bn).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


@torch.no_grad()
def interpolate(g: nn.Module, rows: int, steps: int, seed: int = 0,
                label: int | None = None) -> np.ndarray:
    """``rows`` interpolations of ``steps`` images each (row-major uint8 N x H x W x 3), each
    between two latents drawn with ``seed``; for a conditional G within one class."""
    gen = torch.Generator().manual_seed(seed)
    ends = torch.randn(2, rows, g.latent_dim, generator=gen)
    t = torch.linspace(0, 1, steps).view(1, steps, 1)
    z = slerp(ends[0].unsqueeze(1), ends[1].unsqueeze(1), t).reshape(rows * steps, -1)
    device = next(g.parameters()).device
    # conditional: each row within one class (``label``, else row r is class r mod K)
    k = n_classes_of(g)
    y = None
    if k:
        y = (torch.full((rows,), label) if label is not None else balanced_labels(rows, k))
        y = y.repeat_interleave(steps).to(device)
    elif label is not None:
        raise GankitError("--class needs a class-conditional generator")
    was_training = g.training
    g.eval()
    try:
        return to_uint8(call(g, z.to(device), y).float())
    finally:
        g.train(was_training)


def write_images(images: np.ndarray, out: Path, labels: torch.Tensor | None = None,
                 ncol: int | None = None) -> str:
    """Write by the name of ``out``: ``.png`` grid, ``.npz`` array (with ``labels`` when
    given), anything else a folder (one sub-folder per class when labelled)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".png":
        save_grid(out, images, ncol)
        return "grid"
    if suffix == ".npz":
        arrays = {"images": images} | ({} if labels is None else {"labels": labels.numpy()})
        with atomic_path(out) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        return "npz"
    if suffix:
        raise GankitError(f"--out {out}: use a .png (grid), .npz (array) or a folder name")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GankitError(f"--out {out} exists and is not an empty folder")
    out.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        sub = out if labels is None else out / f"{int(labels[i]):04d}"
        sub.mkdir(exist_ok=True)
        save_png(sub / f"{i:06d}.png", img)
    return "folder"
