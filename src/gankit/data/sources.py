"""Image datasets from any source, as one uint8 ``N x 3 x R x R`` tensor.

A source is named by one string, the same for training (``--data``) and for FID
(``gankit fid`` / ``fid-stats`` / ``--fid-ref``):

* ``cifar10`` / ``cifar100``, optionally ``:train`` / ``:test`` and a slice ``[a:b]``;
* a folder of PNG/JPEG/WebP images (searched recursively, sorted by relative path);
* a ``.zip`` of such images;
* an ``.npz`` (key ``images``, or its only array) or ``.npy`` of uint8 ``N x H x W x 3`` or
  ``N x 3 x H x W`` (or ``N x H x W`` grayscale) pixels.

Files are decoded once: the result at the asked resolution is cached in the user cache
(atomically), keyed by a hash of the source's *bytes*, the resolution and the resize filter,
so an edited folder is decoded again and a cached copy never stands in for other pixels.
Non-square images are center-cropped, then resized with a named PIL filter that is recorded
with the run. Grayscale / RGBA / palette images are converted to RGB, and said.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from gankit.data.cifar import KINDS, class_names, load_cifar
from gankit.errors import GankitError
from gankit.io import atomic_path, user_cache_dir

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp"}
FILTERS = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "box": Image.Resampling.BOX,
    "nearest": Image.Resampling.NEAREST,
}
CACHE_VERSION = 1  # bump when decoding changes, so old caches are not reused
_CIFAR_RE = re.compile(r"^(cifar10|cifar100)(?::(train|test))?(?:\[(\d*):(\d*)\])?$")


@dataclass
class Images:
    """Decoded images, their class labels where the source has them, and how they were
    obtained (``info``, recorded in ``run.json``: with labels, the class names and counts)."""

    pixels: torch.Tensor  # uint8 N x 3 x H x W
    info: dict[str, Any] = field(default_factory=dict)
    labels: torch.Tensor | None = None  # int64 N, indices into info["classes"]

    def __post_init__(self) -> None:
        if self.labels is not None:
            counts = torch.bincount(self.labels, minlength=len(self.info.get("classes", [])))
            self.info = {**self.info, "class_counts": counts.tolist()}

    def select(self, n: int) -> Images:
        """The first ``n`` images (``data.limit``), labels and class counts with them."""
        labels = None if self.labels is None else self.labels[:n]
        return Images(self.pixels[:n], {**self.info, "limit": n}, labels)


def _names_labels(names: list[str]) -> tuple[torch.Tensor | None, list[str]]:
    """Labels by the ImageFolder convention: the class is the first-level folder (names
    sorted); None when some image is not inside a class folder."""
    parts = [n.replace("\\", "/").split("/") for n in names]
    while parts and all(len(p) >= 3 and p[0] == parts[0][0] for p in parts):
        parts = [p[1:] for p in parts]  # one wrapping folder (a zipped dataset/ root)
    if not parts or any(len(p) < 2 for p in parts):
        return None, []
    classes = sorted({p[0] for p in parts})
    index = {c: i for i, c in enumerate(classes)}
    return torch.tensor([index[p[0]] for p in parts], dtype=torch.int64), classes


def parse_cifar(spec: str) -> tuple[str, str | None, int | None, int | None] | None:
    """``cifar10:test[0:1000]`` -> ``("cifar10", "test", 0, 1000)``; None if not CIFAR."""
    m = _CIFAR_RE.match(spec)
    if not m:
        return None
    name, split, a, b = m.groups()
    return name, split, int(a) if a else None, int(b) if b else None


def describe_sources() -> str:
    return ("cifar10 or cifar100 (optionally :train/:test and [a:b]), a folder of PNG/JPEG/WebP "
            "images, a .zip of images, or an .npz/.npy uint8 array")


def load_images(
    spec: str | Path,
    *,
    data_dir: str | Path | None = None,
    split: str = "train",
    resolution: int | None = None,
    resize_filter: str = "lanczos",
    progress: bool = True,
    labels: str = "fine",
) -> Images:
    """Load a source (see the module docstring) at ``resolution`` (None: native, one size).

    ``split`` is the CIFAR split when the spec names none; ``labels`` CIFAR-100's fine or
    coarse classes. Labels come with CIFAR, with folders / zips whose images all sit in
    first-level class folders, and with an ``.npz`` holding a ``labels`` array.
    """
    spec = str(spec)
    if resize_filter not in FILTERS:
        raise GankitError(f"unknown resize filter {resize_filter!r}; use one of "
                          f"{', '.join(FILTERS)}")
    cifar = parse_cifar(spec)
    if cifar:
        name, sp, a, b = cifar
        pixels, y = load_cifar(name, data_dir, sp or split, labels=labels)
        pixels, y = pixels[a:b], y[a:b]
        if len(pixels) < 1:
            raise GankitError(f"{spec} selects no images")
        info = {"source": spec, "kind": name, "split": sp or split, "slice": [a, b]}
        if resolution not in (None, 32):
            pixels, _ = _cached(info, fingerprint(pixels), resolution, resize_filter,
                                progress, lambda: _resize_all(_tensor_images(pixels), resolution,
                                                              resize_filter, spec, progress))
        names = class_names(name, data_dir, labels)
        if name == "cifar100":
            info["labels"] = labels
        return Images(pixels, {**info, **_geometry(pixels, resolution, resize_filter),
                               "classes": names}, y)
    if spec.split(":")[0].split("[")[0] in KINDS:
        raise GankitError(f"bad dataset {spec!r}; use e.g. cifar10, cifar10:test or "
                          "cifar100:train[0:1000]")
    path = Path(spec).expanduser()
    if not path.exists():
        raise GankitError(f"dataset not found: {spec} (expected {describe_sources()})")
    names: list[str] = []  # file names inside the folder / zip (their labels)
    array_labels: np.ndarray | None = None
    if path.is_dir():
        kind, files = "folder", _folder_files(path)
        names = [p.relative_to(path).as_posix() for p in files]
        digest = _digest_files((str(p.relative_to(path)), p.read_bytes) for p in files)

        def decode() -> tuple[torch.Tensor, dict]:
            return _decode_all(((str(p.relative_to(path)), p.read_bytes) for p in files),
                               len(files), spec, resolution, resize_filter, progress)
    elif path.suffix.lower() == ".zip":
        kind = "zip"
        with _open_zip(path) as zf:
            names = sorted(n for n in zf.namelist() if _is_image_name(n))
        if not names:
            raise GankitError(f"{spec}: the zip holds no PNG/JPEG/WebP images")
        digest = _digest_bytes(path.read_bytes())

        def decode() -> tuple[torch.Tensor, dict]:
            with _open_zip(path) as zf:
                return _decode_all(((n, lambda n=n: zf.read(n)) for n in names), len(names),
                                   spec, resolution, resize_filter, progress)
    elif path.suffix.lower() in (".npz", ".npy"):
        arr = _read_array(path)
        array_labels = _read_labels(path, len(arr))
        if resolution is None or arr.shape[2] == arr.shape[3] == resolution:
            pixels = torch.from_numpy(arr)
            return _with_array_labels(pixels, {"source": spec, "kind": "array",
                                               **_geometry(pixels, resolution, resize_filter)},
                                      array_labels)
        kind, digest = "array", fingerprint(arr)

        def decode() -> tuple[torch.Tensor, dict]:
            return _resize_all(_tensor_images(torch.from_numpy(arr)), resolution, resize_filter,
                               spec, progress)
    else:
        raise GankitError(f"unsupported dataset {spec!r}: expected {describe_sources()}")
    info = {"source": spec, "kind": kind}
    pixels, notes = _cached(info, digest, resolution, resize_filter, progress, decode)
    if notes.get("converted_to_rgb"):
        modes = ", ".join(f"{n} {m}" for m, n in sorted(notes["converted_to_rgb"].items()))
        print(f"note: {spec}: converted to RGB: {modes} images (alpha dropped)", file=sys.stderr)
    info = {**info, **_geometry(pixels, resolution, resize_filter), **notes}
    if kind == "array":
        return _with_array_labels(pixels, info, array_labels)
    # Labels follow from the file names, which the cache key covers, so they need no cache.
    y, classes = _names_labels(names)
    return Images(pixels, {**info, "classes": classes} if y is not None else info, y)


def _read_labels(path: Path, n: int) -> np.ndarray | None:
    """An ``.npz``'s ``labels`` array (integers, one per image), if it has one."""
    if path.suffix.lower() != ".npz":
        return None
    with np.load(path, allow_pickle=False) as z:
        if "labels" not in z:
            return None
        y = z["labels"]
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise GankitError(f"{path}: 'labels' must hold one integer per image ({n}), got "
                          f"{y.dtype} of shape {y.shape}")
    if n and y.min() < 0:
        raise GankitError(f"{path}: 'labels' has negative entries; use 0..K-1")
    return y.astype(np.int64)


def _with_array_labels(pixels: torch.Tensor, info: dict, y: np.ndarray | None) -> Images:
    if y is None:
        return Images(pixels, info)
    classes = [str(i) for i in range(int(y.max()) + 1)] if len(y) else []
    return Images(pixels, {**info, "classes": classes}, torch.from_numpy(y))


def _geometry(pixels: torch.Tensor, resolution: int | None, resize_filter: str) -> dict:
    out: dict[str, Any] = {"n": len(pixels), "resolution": int(pixels.shape[-1])}
    if resolution is not None:
        out["resize_filter"] = resize_filter
    return out


# -- reading ---------------------------------------------------------------------------------


def _is_image_name(name: str) -> bool:
    p = Path(name)
    return (p.suffix.lower() in IMAGE_EXTS and not name.endswith("/")
            and not p.name.startswith(".") and "__MACOSX" not in p.parts)


def _folder_files(folder: Path) -> list[Path]:
    files = sorted((p for p in folder.rglob("*") if p.is_file() and _is_image_name(str(p))),
                   key=lambda p: p.relative_to(folder).as_posix())
    if not files:
        raise GankitError(f"{folder}: no PNG/JPEG/WebP images found (searched recursively)")
    return files


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise GankitError(f"cannot read {path} as a zip file: {err}") from None


def _read_array(path: Path) -> np.ndarray:
    """uint8 N x 3 x H x W from an .npy, or an .npz's ``images`` (or only) array."""
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as z:
                if "mu" in z and "sigma" in z:
                    raise GankitError(f"{path} holds FID statistics (mu/sigma), not images")
                keys = list(z.keys())
                if "images" in z:
                    arr = z["images"]
                elif len(keys) == 1:
                    arr = z[keys[0]]
                else:
                    raise GankitError(f"{path}: no 'images' array among {keys}")
    except (OSError, ValueError) as err:
        raise GankitError(f"cannot read {path}: {err}") from None
    if arr.dtype != np.uint8:
        raise GankitError(f"{path}: expected uint8 pixels, got {arr.dtype}; scale to 0..255 "
                          "and save as uint8")
    if arr.ndim == 3:  # N x H x W grayscale
        arr = np.repeat(arr[:, None], 3, axis=1)
    elif arr.ndim == 4 and arr.shape[-1] == 3 and arr.shape[1] != 3:
        arr = arr.transpose(0, 3, 1, 2)
    if arr.ndim != 4 or arr.shape[1] != 3 or len(arr) == 0:
        raise GankitError(f"{path}: expected N x H x W x 3 (or N x 3 x H x W) images, got "
                          f"shape {arr.shape}")
    return np.ascontiguousarray(arr)


def _decode_all(
    items: Iterator[tuple[str, Callable[[], bytes]]], total: int, spec: str,
    resolution: int | None, resize_filter: str, progress: bool,
) -> torch.Tensor:
    """Decode every file; fail naming the unreadable ones, convert and count odd modes."""
    out, bad, modes = [], [], Counter()
    from tqdm import tqdm

    for name, read in tqdm(items, total=total, desc=f"decoding {Path(spec).name}",
                           disable=not progress, unit="img"):
        try:
            with Image.open(io.BytesIO(read())) as im:
                im.load()
                if im.mode != "RGB":
                    modes[im.mode] += 1
                    im = im.convert("RGB")
                out.append(_fit(im, resolution, resize_filter) if resolution else im.copy())
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            bad.append(f"{name} ({type(err).__name__}: {str(err)[:60]})")
    if bad:
        shown = "; ".join(bad[:5]) + ("; ..." if len(bad) > 5 else "")
        raise GankitError(f"{spec}: {len(bad)} of {total} files could not be read as images: "
                          f"{shown}. Remove or fix them")
    sizes = Counter(im.size for im in out)
    if len(sizes) > 1:
        (s1, n1), (s2, n2) = sizes.most_common(2)
        raise GankitError(f"{spec}: images differ in size ({n1} are {s1[0]}x{s1[1]}, {n2} are "
                          f"{s2[0]}x{s2[1]}, ...); pass a resolution (--resolution N / "
                          "data.resolution) to center-crop and resize them")
    pixels = torch.from_numpy(np.stack([np.asarray(im) for im in out]).transpose(0, 3, 1, 2))
    return pixels.contiguous(), ({"converted_to_rgb": dict(modes)} if modes else {})


def _fit(im: Image.Image, resolution: int, resize_filter: str) -> Image.Image:
    """Center-crop to a square, then resize to ``resolution`` with the named filter."""
    w, h = im.size
    if w != h:
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        im = im.crop((left, top, left + s, top + s))
    if im.size != (resolution, resolution):
        im = im.resize((resolution, resolution), FILTERS[resize_filter])
    return im


def _tensor_images(pixels: torch.Tensor) -> Iterator[Image.Image]:
    for x in pixels.permute(0, 2, 3, 1).numpy():
        yield Image.fromarray(x)


def _resize_all(images: Iterator[Image.Image], resolution: int, resize_filter: str, spec: str,
                progress: bool) -> tuple[torch.Tensor, dict]:
    from tqdm import tqdm

    out = [np.asarray(_fit(im, resolution, resize_filter))
           for im in tqdm(images, desc=f"resizing {spec}", disable=not progress, unit="img")]
    return torch.from_numpy(np.stack(out).transpose(0, 3, 1, 2)).contiguous(), {}


# -- the decode cache ------------------------------------------------------------------------


def _digest_bytes(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def fingerprint(images: np.ndarray | torch.Tensor) -> str:
    """A short content hash of an image array (shape and pixels), without copying it."""
    arr = np.ascontiguousarray(images.numpy() if isinstance(images, torch.Tensor) else images)
    h = hashlib.blake2b(str(arr.shape).encode(), digest_size=8)
    h.update(arr.data)
    return h.hexdigest()


def _digest_files(items: Iterator[tuple[str, Callable[[], bytes]]]) -> str:
    """A hash of every file's name and bytes (reading is far cheaper than decoding)."""
    h = hashlib.blake2b(digest_size=12)
    for name, read in items:
        data = read()
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def _cached(info: dict, digest: str, resolution: int | None, resize_filter: str,
            progress: bool, decode: Callable[[], tuple[torch.Tensor, dict]],
            ) -> tuple[torch.Tensor, dict]:
    """``decode()``'s (pixels, notes), from the cache when this exact source was decoded."""
    key = f"{info['kind']}-{digest}-{resolution or 'native'}-{resize_filter}-v{CACHE_VERSION}"
    path = user_cache_dir() / "datasets" / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return torch.from_numpy(z["pixels"]), json.loads(str(z["notes"]))
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is decoded again and replaced
    pixels, notes = decode()
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, pixels=pixels.numpy(), notes=np.array(json.dumps(notes)))
    return pixels, notes
