"""What a run records about itself so it can be reproduced: config, seed, versions, commit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

import gankit
from gankit.malloc import malloc_mode

PACKAGES = ["torch", "numpy", "scipy", "pydantic", "safetensors", "pillow", "matplotlib"]


def git_commit() -> dict[str, Any] | None:
    """The commit of the gankit source tree, if it is a git checkout."""
    src = Path(gankit.__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if commit.returncode:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "gankit": gankit.__version__}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def run_record(seed: int, runtime: dict[str, Any]) -> dict[str, Any]:
    return {
        "seed": seed,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv,
        "versions": versions(),
        "git": git_commit(),
        "host": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                 "torch_threads": torch.get_num_threads(), "malloc": malloc_mode()},
        "runtime": runtime,
    }
