"""Which class builds a network: the built-in ``dcgan`` / ``resnet``, a registered name, or an
import path of the user's own (``my_package.nets:MyGenerator`` or ``path/to/nets.py:MyG``).

Everything that rebuilds a model (training, ``--resume``, ``generate``, ``fid RUN``, the
report) goes through :func:`build_generator` / :func:`build_discriminator` with the run's
recorded config, so a custom network's run is reloaded exactly like a built-in one's.

**The model contract** (checked by :func:`check_generator` / :func:`check_discriminator`):

- G is an ``nn.Module`` with an int ``latent_dim``; ``G(z)`` maps ``z`` of shape
  ``(N, latent_dim)`` to images ``(N, 3, R, R)`` in ``[-1, 1]`` (R = ``data.resolution``).
- D is an ``nn.Module``; ``D(x)`` maps images to raw scores ``(N,)`` or ``(N, 1)``: logits
  for ``bce`` (the loss applies the sigmoid), critic values for the others.
- ``D.has_batchnorm`` (optional): whether D's output for one image depends on the others in
  its batch. When absent it is read off the modules (any ``BatchNorm``); set it to ``True``
  for other batch coupling (minibatch-std), because without it gankit scores real and fake
  in one concatenated batch, which is only the same maths for a per-sample D.
- Class-conditional (``cond.n_classes`` = K > 0): both say ``n_classes = K`` and take the
  labels, ``G(z, y)`` and ``D(x, y)`` with ``y`` int64 ``(N,)``; an AC-GAN D returns
  ``(scores, class_logits)``.
- Constructor arguments come from ``generator.kwargs`` / ``discriminator.kwargs``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from gankit.errors import GankitError

BUILTIN = ("dcgan", "resnet")
_REGISTRY: dict[str, dict[str, type[nn.Module]]] = {"generator": {}, "discriminator": {}}
T = TypeVar("T", bound=type[nn.Module])


def _register(kind: str, name: str) -> Callable[[T], T]:
    if name in BUILTIN or ":" in name or not name:
        raise ValueError(f"{name!r} cannot name a registered {kind}: it is built in or looks "
                         "like an import path")

    def wrap(cls: T) -> T:
        _REGISTRY[kind][name] = cls
        return cls

    return wrap


def register_generator(name: str) -> Callable[[T], T]:
    """Class decorator: ``generator.arch: name`` builds this class (the defining module must
    be imported before the run is built or reloaded, so prefer an import path in configs that
    the CLI reloads)."""
    return _register("generator", name)


def register_discriminator(name: str) -> Callable[[T], T]:
    """Class decorator: ``discriminator.arch: name`` builds this class."""
    return _register("discriminator", name)


def is_custom(arch: str) -> bool:
    return arch not in BUILTIN


def _load_file(file: Path) -> Any:
    """Import a ``.py`` file as a module of its own (not ``__main__``: a script's training code
    behind ``if __name__ == "__main__"`` does not run again when a run is reloaded)."""
    name = f"gankit_user_{abs(hash(str(file)))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def resolve_class(kind: str, arch: str, base: type = nn.Module) -> Any:
    """The class ``arch`` names (a subclass of ``base``); one clear error when it cannot be
    found. ``kind``: generator, discriminator (registered names apply) or loss."""
    if arch in _REGISTRY.get(kind, {}):
        return _REGISTRY[kind][arch]
    label = "loss.name" if kind == "loss" else f"{kind}.arch"
    where, sep, attr = arch.rpartition(":")
    if not sep or not where or not attr:
        known = sorted(_REGISTRY.get(kind, {})) + list(BUILTIN)
        raise GankitError(f"{label} {arch!r} is neither built in nor registered ({', '.join(known)}) "
                          "nor an import path such as my_package.nets:MyModel or nets.py:MyModel")
    try:
        module = _load_file(Path(where)) if where.endswith(".py") else importlib.import_module(where)
    except FileNotFoundError:
        raise GankitError(f"{label} {arch!r}: file {where} not found") from None
    except Exception as err:  # an ImportError or the user module's own failure
        raise GankitError(f"{label} {arch!r}: cannot import {where} "
                          f"({type(err).__name__}: {err}); check the path and PYTHONPATH") from None
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise GankitError(f"{label} {arch!r}: {where} has no {base.__name__} class {attr}")
    return obj


def class_path(obj: Any) -> str:
    """The ``arch`` string that rebuilds ``obj``'s class: ``module:QualName``, or the defining
    file's absolute path where the module is a script (``__main__``) or not importable."""
    cls = obj if isinstance(obj, type) else type(obj)
    if "<locals>" in cls.__qualname__:
        raise GankitError(f"{cls.__qualname__} is defined inside a function; define it at module "
                          "level so the run can rebuild it")
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    if cls.__module__ == "__main__" or cls.__module__.startswith("gankit_user_"):
        if file is None:
            raise GankitError(f"{cls.__qualname__} is defined interactively; put it in a file so "
                              "the run can rebuild it")
        return f"{Path(file).resolve()}:{cls.__qualname__}"
    return f"{cls.__module__}:{cls.__qualname__}"


def build(kind: str, arch: str, kwargs: dict[str, Any]) -> nn.Module:
    """``arch``'s class constructed with ``kwargs`` (the config's ``kwargs``)."""
    cls = resolve_class(kind, arch)
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise GankitError(f"{kind}.arch {arch}: cannot construct it with {kind}.kwargs={kwargs} "
                          f"({err})") from None


def has_batchnorm(d: nn.Module) -> bool:
    """Whether D couples the images of a batch: its ``has_batchnorm`` if it says, else whether
    any batch-norm layer is inside."""
    flag = getattr(d, "has_batchnorm", None)
    if flag is not None:
        return bool(flag)
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in d.modules())


def _classes_agree(m: nn.Module, kind: str, n_classes: int) -> torch.Tensor | None:
    """A conditional model says its ``n_classes``; the labels (0, 1) to probe it with."""
    name = type(m).__qualname__
    have = int(getattr(m, "n_classes", 0) or 0)
    if have != n_classes:
        raise GankitError(f"{kind} {name} has n_classes={have} but the config says "
                          f"cond.n_classes={n_classes} (the model contract, docs/api.md)")
    return torch.tensor([0, min(1, n_classes - 1)]) if n_classes else None


def check_generator(g: nn.Module, latent_dim: int, resolution: int, n_classes: int = 0) -> None:
    """The generator half of the contract, on one tiny batch (eval mode, no grad, restored)."""
    name = type(g).__qualname__
    y = _classes_agree(g, "generator", n_classes)
    lat = getattr(g, "latent_dim", None)
    if not isinstance(lat, int):
        raise GankitError(f"generator {name} has no int attribute latent_dim (the model contract, "
                          "docs/api.md)")
    if lat != latent_dim:
        raise GankitError(f"generator {name} has latent_dim {lat} but the config says "
                          f"generator.latent_dim={latent_dim}; set generator.latent_dim={lat}")
    device = next(g.parameters()).device
    was = g.training
    g.eval()
    try:
        with torch.no_grad():
            z = torch.zeros(2, lat, device=device)
            x = g(z) if y is None else g(z, y.to(device))
    finally:
        g.train(was)
    if not isinstance(x, torch.Tensor) or tuple(x.shape) != (2, 3, resolution, resolution):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise GankitError(f"generator {name} returned {shape} for 2 latents; the contract is "
                          f"(N, 3, {resolution}, {resolution}) images in [-1, 1] (data.resolution)")


def check_discriminator(d: nn.Module, resolution: int, n_classes: int = 0) -> None:
    name = type(d).__qualname__
    y = _classes_agree(d, "discriminator", n_classes)
    device = next(d.parameters()).device
    was = d.training
    d.eval()
    try:
        with torch.no_grad():
            x = torch.zeros(2, 3, resolution, resolution, device=device)
            out = d(x) if y is None else d(x, y.to(device))
            if isinstance(out, tuple):  # AC-GAN: (scores, class logits)
                out = out[0]
    finally:
        d.train(was)
    if not isinstance(out, torch.Tensor) or out.numel() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise GankitError(f"discriminator {name} returned {shape} for 2 images; the contract is "
                          "one score per image, shape (N,) or (N, 1)")
