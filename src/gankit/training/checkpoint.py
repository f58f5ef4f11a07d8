"""Checkpoints: weights in safetensors, the rest (optimizers, RNG states) in a ``.state.pt``.

``epoch-000010.safetensors`` holds ``G.*``/``D.*`` tensors and, in its metadata, the format
tag, the resolved config, the epoch and the global step, so a generator can be rebuilt from
that one file. ``epoch-000010.state.pt`` holds optimizer and RNG state and is read with
``weights_only=True``. Both are written atomically (temp + fsync + rename); the safetensors
file is written last and marks the checkpoint complete.

Names are never reused for different content: ``epoch-N`` at epoch ends, ``step-N`` for the
checkpoints written every few minutes and on SIGINT/SIGTERM (older ``step-`` files are
removed once a newer checkpoint is complete). So a crash at any moment leaves every visible
checkpoint whole, and resume takes the complete one with the highest step.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from gankit.config import Config, validate
from gankit.errors import GankitError
from gankit.io import atomic_path

FORMAT = "gankit-checkpoint-v1"
_NAME_RE = re.compile(r"^(epoch|step)-(\d+)\.safetensors$")


def _flat(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def save(
    path: Path,
    cfg: Config,
    epoch: int,
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    state: dict[str, Any] | None = None,
    extra_meta: dict[str, Any] | None = None,
    step: int | None = None,
    extra_modules: dict[str, torch.nn.Module] | None = None,
) -> None:
    """Write ``path`` (``.safetensors``) and, if ``state`` is given, its ``.state.pt`` twin."""
    if state is not None:
        with atomic_path(state_path(path)) as tmp:
            torch.save(state, tmp)
    meta = {"format": FORMAT, "config": cfg.model_dump_json(), "epoch": str(epoch)}
    if step is not None:
        meta["step"] = str(step)
    meta.update({k: json.dumps(v) for k, v in (extra_meta or {}).items()})
    tensors = _flat("G", generator) | _flat("D", discriminator)
    for prefix, module in (extra_modules or {}).items():
        tensors |= _flat(prefix, module)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def state_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".safetensors") + ".state.pt")


def read_meta(path: Path) -> dict[str, str]:
    """Metadata of a gankit checkpoint; a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise GankitError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise GankitError(f"{path} is not a gankit checkpoint (not safetensors: {err})") from None
    if meta.get("format") != FORMAT:
        raise GankitError(f"{path} is not a gankit checkpoint (no '{FORMAT}' format tag)")
    return meta


def load_tensors(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The state dicts in a checkpoint by prefix: ``{"G": ..., "D": ..., "G_ema": ...}``."""
    read_meta(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise GankitError(f"{path} is unreadable ({err})") from None
    out: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        prefix, _, name = k.partition(".")
        out.setdefault(prefix, {})[name] = v
    return out


def load_config(path: Path) -> tuple[Config, int]:
    """The config and epoch a checkpoint was written with (no tensors read)."""
    meta = read_meta(path)
    return validate(json.loads(meta["config"])), int(meta["epoch"])


def load(path: Path) -> tuple[Config, int, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Return ``(config, epoch, G state dict, D state dict)``."""
    cfg, epoch = load_config(path)
    parts = load_tensors(path)
    return cfg, epoch, parts.get("G", {}), parts.get("D", {})


def load_state(path: Path, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The ``.state.pt`` twin of ``path``; a clear error if it is missing, unreadable or lacks
    any of ``required``."""
    sp = state_path(path)
    try:
        st = torch.load(sp, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise GankitError(f"training state {sp} is missing; cannot resume from {path}") from None
    except Exception as err:  # noqa: BLE001 - unpickling errors have many types
        raise GankitError(f"training state {sp} is unreadable ({type(err).__name__})") from None
    missing = [k for k in required if not isinstance(st, dict) or k not in st]
    if missing:
        raise GankitError(f"training state {sp} lacks {', '.join(missing)}; it was not written by "
                          "this gankit version or was altered; resume from another checkpoint")
    return st


def checkpoint_step(path: Path) -> int | None:
    step = read_meta(path).get("step")
    return int(step) if step is not None else None


def _complete(folder: Path, kind: str | None = None) -> list[tuple[int, Path]]:
    """Complete ``epoch-``/``step-`` checkpoints as ``(number in the name, path)``."""
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _NAME_RE.match(p.name)
        if m and (kind is None or m.group(1) == kind) and state_path(p).exists():
            found.append((int(m.group(2)), p))
    return sorted(found)


def epoch_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """Complete epoch-end checkpoints in ``folder``, oldest first."""
    return _complete(folder, "epoch")


def resume_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """Every complete checkpoint (epoch ends and mid-epoch) as ``(global step, path)``,
    oldest first."""
    out = []
    for _, p in _complete(folder):
        try:
            step = checkpoint_step(p)
        except GankitError:
            continue
        if step is not None:
            out.append((step, p))
    return sorted(out)


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)  # the completion marker first: never a marker without state
    state_path(path).unlink(missing_ok=True)


def prune(folder: Path, keep_every: int) -> None:
    """Keep the newest epoch checkpoint, every ``keep_every``-th one, and only ``step-``
    checkpoints newer than every epoch checkpoint (the newest of them)."""
    ckpts = epoch_checkpoints(folder)
    for epoch, p in ckpts[:-1]:
        if epoch % keep_every:
            remove(p)
    steps = resume_checkpoints(folder)
    newest = steps[-1][1] if steps else None
    for _, p in _complete(folder, "step"):
        if p != newest:
            remove(p)


def clean_partial(folder: Path) -> None:
    """Remove what an interrupted write can leave: temp files and state without weights."""
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        if p.name.startswith(".") and p.name.endswith(".tmp"):
            p.unlink(missing_ok=True)
        elif p.name.endswith(".state.pt"):
            if not p.with_name(p.name.removesuffix(".state.pt") + ".safetensors").exists():
                p.unlink(missing_ok=True)


def find_generator_checkpoint(path: Path) -> Path:
    """A checkpoint file, or a run folder (its ``best`` if FID was tracked, else the latest)."""
    path = Path(path)
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        if (folder / "best.safetensors").is_file():
            return folder / "best.safetensors"
        ckpts = resume_checkpoints(folder) or epoch_checkpoints(folder)
        if not ckpts:
            raise GankitError(f"no checkpoint found in {path}")
        return ckpts[-1][1]
    return path
