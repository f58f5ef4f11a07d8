"""Checkpoints: weights in safetensors, the rest (optimizers, RNG states) in a ``.state.pt``.

``epoch-000010.safetensors`` holds ``G.*``/``D.*`` tensors and, in its metadata, the format
tag, the resolved config and the epoch, so a generator can be rebuilt from that one file.
``epoch-000010.state.pt`` holds optimizer and RNG state and is read with
``weights_only=True``. Both are written atomically; the safetensors file is written last and
marks the checkpoint complete.
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
_EPOCH_RE = re.compile(r"^epoch-(\d+)\.safetensors$")


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
) -> None:
    """Write ``path`` (``.safetensors``) and, if ``state`` is given, its ``.state.pt`` twin."""
    if state is not None:
        with atomic_path(state_path(path)) as tmp:
            torch.save(state, tmp)
    meta = {"format": FORMAT, "config": cfg.model_dump_json(), "epoch": str(epoch)}
    meta.update({k: json.dumps(v) for k, v in (extra_meta or {}).items()})
    tensors = _flat("G", generator) | _flat("D", discriminator)
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


def load(path: Path) -> tuple[Config, int, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Return ``(config, epoch, G state dict, D state dict)``."""
    meta = read_meta(path)
    cfg = validate(json.loads(meta["config"]))
    tensors = load_file(str(path))
    g = {k[2:]: v for k, v in tensors.items() if k.startswith("G.")}
    d = {k[2:]: v for k, v in tensors.items() if k.startswith("D.")}
    return cfg, int(meta["epoch"]), g, d


def load_state(path: Path) -> dict[str, Any]:
    sp = state_path(path)
    try:
        return torch.load(sp, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise GankitError(f"training state {sp} is missing; cannot resume from {path}") from None
    except Exception as err:  # noqa: BLE001 - unpickling errors have many types
        raise GankitError(f"training state {sp} is unreadable ({type(err).__name__})") from None


def epoch_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """Complete epoch checkpoints in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _EPOCH_RE.match(p.name)
        if m and state_path(p).exists():
            found.append((int(m.group(1)), p))
    return sorted(found)


def prune(folder: Path, keep_every: int) -> None:
    """Keep the newest epoch checkpoint and every ``keep_every``-th one."""
    ckpts = epoch_checkpoints(folder)
    for epoch, p in ckpts[:-1]:
        if epoch % keep_every:
            p.unlink(missing_ok=True)
            state_path(p).unlink(missing_ok=True)


def find_generator_checkpoint(path: Path) -> Path:
    """A checkpoint file, or a run folder (its ``best`` if FID was tracked, else the latest)."""
    path = Path(path)
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        if (folder / "best.safetensors").is_file():
            return folder / "best.safetensors"
        ckpts = epoch_checkpoints(folder)
        if not ckpts:
            raise GankitError(f"no checkpoint found in {path}")
        return ckpts[-1][1]
    return path
