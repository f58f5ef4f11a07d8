"""What ``gankit fid`` can compare, each side given as a string.

Any image source :func:`gankit.data.load_images` reads (``cifar10:train``, ``cifar100:test``,
slices such as ``cifar10:test[0:1000]``, a folder or ``.zip`` of images, an ``.npz``/``.npy``
uint8 array), a statistics ``.npz`` (keys ``mu``/``sigma``, the pytorch-fid / TTUR format), or
a generator checkpoint / run folder. Statistics of image sources are cached in the user cache,
keyed by a fingerprint of the pixels, so the 50,000-image side is computed once (and its
features too, once KID, precision/recall or intra-FID needed them).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gankit.data.sources import fingerprint, load_images
from gankit.errors import GankitError
from gankit.io import atomic_path, user_cache_dir
from gankit.metrics.fid import Stats, fid_from_stats, kid
from gankit.metrics.inception import FeatureExtractor
from gankit.metrics.shards import SINGLE, World, gather_features


@dataclass
class Source:
    spec: str
    images: np.ndarray | None = None  # uint8 N x H x W x 3
    stats: Stats | None = None
    cache_key: str | None = None
    labels: np.ndarray | None = None  # int64 N: class labels (labelled data, conditional G)
    part: tuple[int, int] | None = None  # images holds only these of the N (a rank's share)


def _stats_file(path: Path) -> Stats | None:
    """The statistics in a pytorch-fid/TTUR ``.npz`` (``mu``, ``sigma``), else None."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "mu" not in z or "sigma" not in z:
                return None
    except (OSError, ValueError) as err:
        raise GankitError(f"cannot read {path}: {err}") from None
    return Stats.load(path)


def load_source(
    spec: str, *, data_dir: str | Path | None = None, n: int = 10000, seed: int = 0,
    resolution: int | None = None, resize_filter: str = "lanczos", world: World = SINGLE,
) -> Source:
    """One side of a comparison. ``resolution`` resizes image sources (None: native size).
    A generator source under ``torchrun`` generates only ``world``'s share of its ``n``
    images (its labels stay whole); image sources are read whole by every rank."""
    path = Path(spec)
    if path.suffix == ".npz" and path.is_file():
        stats = _stats_file(path)
        if stats is not None:
            return Source(spec, stats=stats)
    if path.suffix == ".safetensors" or (path.is_dir() and (path / "config.yaml").is_file()):
        from gankit.generate import load_generator, sample_images, sample_labels

        g, cfg, _ = load_generator(path)
        if resolution is not None and cfg.data.resolution != resolution:
            raise GankitError(f"{spec} generates {cfg.data.resolution}-px images, not "
                              f"{resolution}")
        labels = sample_labels(g, n)  # a conditional G: class-balanced, the standard protocol
        part = world.part(n)
        fake = sample_images(g, n, seed, labels=labels, part=part)
        return Source(spec, images=fake, labels=None if labels is None else labels.numpy(),
                      part=part)

    imgs = load_images(spec, data_dir=data_dir, split="train", resolution=resolution,
                       resize_filter=resize_filter, progress=False)
    if len(imgs.pixels) < 2:
        raise GankitError(f"{spec} selects {len(imgs.pixels)} images; need at least 2")
    arr = imgs.pixels.permute(0, 2, 3, 1).contiguous().numpy()
    labels = None if imgs.labels is None else imgs.labels.numpy()
    if imgs.info["kind"] == "array":  # usually generated samples: scored once, not cached
        return Source(spec, images=arr, labels=labels)
    # The key names the pixels, not just the source: statistics cached from one copy of a
    # dataset must never be reused for a different copy.
    name = re.sub(r"[^A-Za-z0-9]+", "-", Path(spec).name if path.exists() else spec).strip("-")
    return Source(spec, images=arr, cache_key=f"{name[:40]}-{fingerprint(arr)}", labels=labels)


def stats_cache_path(key: str, ext: FeatureExtractor) -> Path:
    return (user_cache_dir() / "fid-stats" /
            f"{key}-{ext.mode}-{ext.precision}-{ext.sha256[:12]}.npz")


def features_cache_path(key: str, ext: FeatureExtractor) -> Path:
    """Where a dataset's features are kept once KID / precision-recall / intra-FID needed them
    (float32, lossless: the network's outputs are float32; 50,000 images: 410 MB)."""
    return stats_cache_path(key, ext).with_suffix(".features.npy")


def cached_features(src: Source, ext: FeatureExtractor, progress: bool,
                     world: World) -> np.ndarray | None:
    """:func:`features`, read from / written to the user cache for a dataset (not for arrays
    or generated samples), so ``--intra`` / ``--kid`` / ``--pr`` against ``cifar10:train``
    embed its 50,000 images once; the statistics cache is filled from them too."""
    path = features_cache_path(src.cache_key, ext) if src.cache_key else None
    if world.broadcast(path is not None and path.is_file()):  # rank 0's cache decides
        if not world.main:
            return None
        feats = np.load(path).astype(np.float64)
        if len(feats) != len(src.images):
            raise GankitError(f"{path} holds {len(feats)} feature rows for {len(src.images)} "
                              "images; delete it and rerun")
        return feats
    feats = features(src, ext, progress, world)
    if feats is not None and path is not None:
        small = feats.astype(np.float32)
        if np.array_equal(small, feats):  # exactly the features, at half the size
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.save(f, small)
        stats = stats_cache_path(src.cache_key, ext)
        if not stats.is_file():
            Stats.from_features(feats, {"source": src.spec, **ext.describe()}).save(stats)
    return feats


def _check_mode(stats: Stats, spec: str, mode: str) -> None:
    """A statistics file that records its preprocessing mode must have been made with ``mode``
    (files from other tools record none and are taken as they are)."""
    recorded = stats.meta.get("mode")
    if recorded and recorded != mode:
        raise GankitError(f"{spec} was computed with mode {recorded}, not {mode}")


def features(src: Source, ext: FeatureExtractor, progress: bool = False,
             world: World = SINGLE) -> np.ndarray | None:
    """Inception features of a source's images, in order; under ``torchrun`` each rank embeds
    its share and rank 0 gets them all (None on the other ranks)."""
    if src.images is None:
        raise GankitError(f"{src.spec} is a statistics file, not images")
    if src.part is not None:  # generated: this rank holds just its share
        mine = src.images
    else:
        lo, hi = world.part(len(src.images))
        mine = src.images[lo:hi]
    return gather_features(ext(mine, progress=progress and world.main), world)


def source_stats(
    src: Source, ext: FeatureExtractor, progress: bool = False, world: World = SINGLE,
) -> tuple[Stats | None, np.ndarray | None]:
    """Statistics of a source (cached for CIFAR-10) and, when computed, its features; under
    ``torchrun`` on rank 0 only (the others get ``(None, None)``)."""
    if src.stats is not None:
        _check_mode(src.stats, src.spec, ext.mode)
        return src.stats, None
    cache = stats_cache_path(src.cache_key, ext) if src.cache_key else None
    if world.broadcast(cache is not None and cache.is_file()):  # rank 0's cache decides
        return (Stats.load(cache) if world.main else None), None
    feats = features(src, ext, progress, world)
    if feats is None:
        return None, None
    stats = Stats.from_features(feats, {"source": src.spec, **ext.describe()})
    if cache is not None:
        stats.save(cache)
    return stats, feats


def compare_stats(a: Source, b: Source, mode: str, method: str = "scipy") -> dict[str, Any]:
    """FID of two statistics files, without the Inception network (nothing to extract).

    Each file's recorded preprocessing mode, where it has one, must be ``mode``; the record
    carries what the files say they were computed with (files from other tools say nothing)."""
    t0 = time.perf_counter()
    for src in (a, b):
        if src.stats is None:
            raise GankitError(f"{src.spec} is not a statistics file")
        _check_mode(src.stats, src.spec, mode)
    rec: dict[str, Any] = {"a": a.spec, "b": b.spec,  # None: the file does not say
                           "n_a": a.stats.n or None, "n_b": b.stats.n or None,
                           "fid": fid_from_stats(a.stats, b.stats, method), "mode": mode}
    for key in ("precision", "inception_sha256"):
        rec[f"{key}_a"], rec[f"{key}_b"] = (src.stats.meta.get(key) for src in (a, b))
    rec["seconds"] = time.perf_counter() - t0
    return rec


def class_stats(feats: np.ndarray, labels: np.ndarray) -> dict[int, Stats]:
    """Per-class statistics of labelled features (the reference side of intra-FID)."""
    return {int(c): Stats.from_features(feats[labels == c]) for c in np.unique(labels)}


def intra_fid_vs(fa: np.ndarray, ya: np.ndarray, ref: dict[int, Stats],
                 method: str = "scipy") -> dict[str, Any]:
    """Intra-FID of features ``fa`` (labels ``ya``) against per-class reference statistics
    (:func:`class_stats`); every reference class must be in A."""
    missing = sorted(set(ref) - set(np.unique(ya).tolist()))
    if missing:
        raise GankitError(f"--intra: the first side has no images of class(es) {missing[:10]}")
    per = {str(c): fid_from_stats(Stats.from_features(fa[ya == c]), sb, method)
           for c, sb in sorted(ref.items())}
    return {"intra_fid": float(np.mean(list(per.values()))), "intra_fid_per_class": per,
            "intra_n_a": {str(c): int((ya == c).sum()) for c in sorted(ref)},
            "intra_n_b": {str(c): sb.n for c, sb in sorted(ref.items())}}


def intra_fid(fa: np.ndarray, ya: np.ndarray, fb: np.ndarray, yb: np.ndarray,
              method: str = "scipy") -> dict[str, Any]:
    """Intra-FID (Miyato & Koyama 2018): the mean over classes of the FID between A's and
    B's images of that class, with the per-class values and sizes. Every class of B must be
    in A (a conditional G sampled class-balanced covers all)."""
    return intra_fid_vs(fa, ya, class_stats(fb, yb), method)


def compare(
    a: Source, b: Source, ext: FeatureExtractor, *, with_kid: bool = False,
    with_pr: bool = False, with_intra: bool = False, progress: bool = False,
    method: str = "scipy", world: World = SINGLE,
) -> dict[str, Any] | None:
    """FID of ``a`` against ``b``; KID, precision/recall/density/coverage (``b`` is the real
    side) and intra-FID from the same features when asked. Those need images, not statistics
    (and intra-FID labels on both sides). Under ``torchrun`` the record is rank 0's (the
    others embed their shares and get None)."""
    t0 = time.perf_counter()
    feats: list[np.ndarray | None] = [None, None]  # kept for KID / PRDC / intra-FID
    if with_intra:
        for src in (a, b):
            if src.labels is None:
                raise GankitError(f"--intra needs class labels on both sides, but {src.spec} has "
                                  "none (a conditional run, CIFAR, a class-folder dataset or an "
                                  ".npz with 'labels')")
    if with_kid or with_pr or with_intra:
        for src in (a, b):
            if src.images is None:
                raise GankitError(f"--kid/--pr/--intra need images, but {src.spec} is a "
                                  "statistics file")
        feats = [cached_features(src, ext, progress, world) for src in (a, b)]
        if not world.main:  # every rank ran the same collectives; rank 0 has the features
            return None
        sa, sb = (Stats.from_features(f) for f in feats)
    else:
        sa, sb = (source_stats(s, ext, progress, world)[0] for s in (a, b))
        if not world.main:
            return None
    rec: dict[str, Any] = {
        "a": a.spec, "b": b.spec, "n_a": sa.n or None, "n_b": sb.n or None,
        "fid": fid_from_stats(sa, sb, method), **ext.describe(),
    }
    if with_kid:
        rec["kid_mean"], rec["kid_std"] = kid(feats[0], feats[1])
    if with_pr:
        from gankit.metrics.prdc import prdc

        rec.update(prdc(real=feats[1], fake=feats[0]))
    if with_intra:
        rec.update(intra_fid(feats[0], a.labels, feats[1], b.labels, method))
    rec["seconds"] = time.perf_counter() - t0
    return rec
