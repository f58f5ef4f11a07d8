"""What ``gankit fid`` can compare, each side given as a string.

``cifar10:train`` / ``cifar10:test`` (optionally sliced, ``cifar10:train[0:1000]``), a folder
of PNG/JPEG images, an ``.npz`` (key ``images``) or ``.npy`` of uint8 N x H x W x 3 images, a
statistics ``.npz`` (keys ``mu``/``sigma``), or a generator checkpoint / run folder. CIFAR-10
statistics are cached in the user cache so the 50,000-image side is computed once.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from gankit.errors import GankitError
from gankit.io import user_cache_dir
from gankit.metrics.fid import Stats, fid_from_stats, kid
from gankit.metrics.inception import FeatureExtractor, as_nchw_uint8

_CIFAR_RE = re.compile(r"^cifar10:(train|test)(?:\[(\d*):(\d*)\])?$")
IMAGE_EXTS = {".png", ".jpg", ".jpeg"}


@dataclass
class Source:
    spec: str
    images: np.ndarray | None = None  # uint8 N x H x W x 3
    stats: Stats | None = None
    cache_key: str | None = None

    @property
    def n(self) -> int:
        return len(self.images) if self.images is not None else self.stats.n


def fingerprint(images: np.ndarray) -> str:
    """A short content hash of an image array (shape and pixels)."""
    h = hashlib.blake2b(str(images.shape).encode(), digest_size=8)
    h.update(np.ascontiguousarray(images).data)
    return h.hexdigest()


def parse_cifar(spec: str) -> tuple[str, int | None, int | None] | None:
    m = _CIFAR_RE.match(spec)
    if not m:
        return None
    split, a, b = m.group(1), m.group(2), m.group(3)
    return split, int(a) if a else None, int(b) if b else None


def _folder_images(folder: Path) -> np.ndarray:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise GankitError(f"{folder}: no PNG/JPEG images found")
    out = []
    for p in files:
        try:
            with Image.open(p) as im:
                out.append(np.asarray(im.convert("RGB")))
        except (UnidentifiedImageError, OSError) as err:
            raise GankitError(f"cannot read image {p}: {err}") from None
    if len({a.shape for a in out}) > 1:
        raise GankitError(f"{folder}: images differ in size; FID needs one size")
    return np.stack(out)


def _array_images(path: Path) -> Source:
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as z:
                if "mu" in z and "sigma" in z:
                    return Source(str(path), stats=Stats.load(path))
                if "images" not in z:
                    raise GankitError(f"{path}: no 'images' array (or 'mu'/'sigma' statistics)")
                arr = z["images"]
    except (OSError, ValueError) as err:
        raise GankitError(f"cannot read {path}: {err}") from None
    as_nchw_uint8(arr, str(path))
    if arr.shape[-1] != 3:
        raise GankitError(f"{path}: expected N x H x W x 3 images, got shape {arr.shape}")
    return Source(str(path), images=arr)


def load_source(
    spec: str, *, data_dir: str | Path | None = None, n: int = 10000, seed: int = 0
) -> Source:
    cifar = parse_cifar(spec)
    if cifar:
        from gankit.data import load_cifar10

        split, a, b = cifar
        images, _ = load_cifar10(data_dir, split)
        sl = images[a:b]
        if len(sl) < 2:
            raise GankitError(f"{spec} selects {len(sl)} images; need at least 2")
        arr = sl.permute(0, 2, 3, 1).contiguous().numpy()
        # The key names the pixels, not just the split: statistics cached from one copy of
        # CIFAR-10 must never be reused for a different copy.
        key = (f"cifar10-{split}-{a if a is not None else ''}-{b if b is not None else ''}-"
               f"{fingerprint(arr)}")
        return Source(spec, images=arr, cache_key=key)
    if spec.startswith("cifar10"):
        raise GankitError(f"bad CIFAR-10 source {spec!r}; use cifar10:train, cifar10:test or "
                          "cifar10:train[START:END]")
    path = Path(spec)
    if not path.exists():
        raise GankitError(f"FID source not found: {spec}")
    if path.suffix in (".npz", ".npy"):
        return _array_images(path)
    if path.suffix == ".safetensors" or (path.is_dir() and (path / "config.yaml").is_file()):
        from gankit.generate import load_generator, sample_images

        g, _, _ = load_generator(path)
        return Source(spec, images=sample_images(g, n, seed))
    if path.is_dir():
        return Source(spec, images=_folder_images(path))
    raise GankitError(f"unsupported FID source {spec!r}: use cifar10:SPLIT, a folder of images, "
                      ".npz/.npy images, a statistics .npz or a .safetensors checkpoint")


def stats_cache_path(key: str, ext: FeatureExtractor) -> Path:
    return (user_cache_dir() / "fid-stats" /
            f"{key}-{ext.mode}-{ext.precision}-{ext.sha256[:12]}.npz")


def source_stats(
    src: Source, ext: FeatureExtractor, progress: bool = False
) -> tuple[Stats, np.ndarray | None]:
    """Statistics of a source (cached for CIFAR-10) and, when computed, its features."""
    if src.stats is not None:
        mode = src.stats.meta.get("mode")
        if mode and mode != ext.mode:
            raise GankitError(f"{src.spec} was computed with mode {mode}, not {ext.mode}")
        return src.stats, None
    cache = stats_cache_path(src.cache_key, ext) if src.cache_key else None
    if cache is not None and cache.is_file():
        return Stats.load(cache), None
    feats = ext(src.images, progress=progress)
    stats = Stats.from_features(feats, {"source": src.spec, **ext.describe()})
    if cache is not None:
        stats.save(cache)
    return stats, feats


def compare(
    a: Source, b: Source, ext: FeatureExtractor, *, with_kid: bool = False,
    with_pr: bool = False, progress: bool = False, method: str = "scipy",
) -> dict[str, Any]:
    """FID of ``a`` against ``b``; KID and precision/recall/density/coverage (``b`` is the
    real side) from the same features when asked. Those need images, not statistics."""
    t0 = time.perf_counter()
    feats: list[np.ndarray | None] = [None, None]
    if with_kid or with_pr:
        for i, src in enumerate((a, b)):
            if src.images is None:
                raise GankitError(f"--kid/--pr need images, but {src.spec} is a statistics file")
            feats[i] = ext(src.images, progress=progress)
    sa, sb = (Stats.from_features(f) if f is not None else source_stats(s, ext, progress)[0]
              for f, s in zip(feats, (a, b), strict=True))
    rec: dict[str, Any] = {
        "a": a.spec, "b": b.spec, "n_a": sa.n, "n_b": sb.n,
        "fid": fid_from_stats(sa, sb, method), **ext.describe(),
    }
    if with_kid:
        rec["kid_mean"], rec["kid_std"] = kid(feats[0], feats[1])
    if with_pr:
        from gankit.metrics.prdc import prdc

        rec.update(prdc(real=feats[1], fake=feats[0]))
    rec["seconds"] = time.perf_counter() - t0
    return rec
