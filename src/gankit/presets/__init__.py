"""The shipped presets (``gankit/presets/*.yaml``): complete configs to train or to copy."""

from __future__ import annotations

from gankit.config import Config, preset_names, resolve


def names() -> list[str]:
    return preset_names()


def load(name: str, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Preset ``name`` (or a YAML file path) with ``section.key=value`` overrides, validated:
    ``load("cpu", ["train.minutes=5"])`` is what ``gankit train --preset cpu --minutes 5``
    trains."""
    return resolve(name, list(overrides))


__all__ = ["load", "names"]
