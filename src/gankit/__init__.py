"""gankit: train, evaluate and report GANs on CIFAR-10-scale images with standard FID.

The Python API (docs/api.md)::

    from gankit import Trainer, presets, load_generator, fid

    cfg = presets.load("cpu", ["train.minutes=5"])
    Trainer(cfg, generator=my_g, discriminator=my_d).fit("runs/mine")
    g, cfg, epoch = load_generator("runs/mine")
    print(fid(g, "cifar10:train", n=10000))

Names are imported on first use, so ``import gankit`` (and the CLI's start) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "gankit.config",
    "Trainer": "gankit.training.loop",
    "TrainingStopped": "gankit.training.loop",
    "Callback": "gankit.training.callbacks",
    "load_generator": "gankit.generate",
    "sample_images": "gankit.generate",
    "fid": "gankit.api",
    "load_config": "gankit.api",
    "register_generator": "gankit.models.registry",
    "register_discriminator": "gankit.models.registry",
    "Loss": "gankit.losses",
    "Penalty": "gankit.losses",
    "register_loss": "gankit.losses",
    "GankitError": "gankit.errors",
}
__all__ = [*sorted(_EXPORTS), "presets"]


def __getattr__(name: str) -> Any:
    if name == "presets":
        return importlib.import_module("gankit.presets")
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gankit' has no attribute {name!r}")
