"""CIFAR-10 and CIFAR-100 in the official "python version" layout.

Accepted: a folder holding ``cifar-10-batches-py/`` (``cifar-100-python/``), that folder
itself, or a tar archive of it (``.tar.gz`` as downloaded, ``.tar.xz``). Archives are
extracted once into the user cache, atomically (temp folder + rename). With no copy anywhere
the official archive is downloaded and its md5 checked; offline, that fails at once with a
message naming ``--data-dir``.
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import io
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gankit.errors import GankitError
from gankit.io import user_cache_dir

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.xz", ".tar")


@dataclass(frozen=True)
class CifarKind:
    """What differs between CIFAR-10 and CIFAR-100: where it lives and how labels are named."""

    name: str
    title: str
    url: str
    md5: str
    archive: str  # the archive's stem, e.g. cifar-10-python
    folder: str  # the folder inside the archive
    files: dict[str, tuple[str, ...]]
    label_key: bytes
    classes: int

    @property
    def all_files(self) -> tuple[str, ...]:
        return self.files["train"] + self.files["test"]


CIFAR10 = CifarKind(
    "cifar10", "CIFAR-10", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "c58f30108f718f92721af3b95e74349a", "cifar-10-python", "cifar-10-batches-py",
    {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
    b"labels", 10,
)
CIFAR100 = CifarKind(
    "cifar100", "CIFAR-100", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python", "cifar-100-python",
    {"train": ("train",), "test": ("test",)}, b"fine_labels", 100,
)
KINDS = {k.name: k for k in (CIFAR10, CIFAR100)}
CIFAR10_MD5 = CIFAR10.md5


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """``--data-dir``, else ``$GANKIT_DATA_DIR``, else the user cache folder."""
    return _resolve(data_dir)[0]


def _resolve(data_dir: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """The data folder and whether the user named it (a named folder is never created)."""
    if data_dir:
        return Path(data_dir).expanduser(), True
    env = os.environ.get("GANKIT_DATA_DIR")
    if env:
        return Path(env).expanduser(), True
    return user_cache_dir() / "data", False


def _find_archive(root: Path, kind: CifarKind) -> Path | None:
    if root.is_file() and root.name.endswith(ARCHIVE_SUFFIXES):
        return root
    if root.is_dir():
        for p in sorted(root.iterdir()):
            if p.name.startswith(kind.archive + ".") and p.name.endswith(ARCHIVE_SUFFIXES):
                return p
    return None


def _extract(archive: Path, kind: CifarKind) -> Path:
    """Extract ``archive`` into the cache once; return the dataset's folder inside it."""
    st = archive.stat()
    key = hashlib.sha1(f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    target = user_cache_dir() / "extracted" / key[:16]
    if (target / kind.folder).is_dir():
        return target / kind.folder
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
    try:
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(kind.folder + "/") and m.isfile()]
            if not members:
                raise GankitError(f"{archive} does not contain a {kind.folder}/ folder")
            tar.extractall(tmp, members=members, filter="data")
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first
            if not (target / kind.folder).is_dir():
                raise
    except (tarfile.TarError, EOFError, OSError, ValueError) as err:
        raise GankitError(f"cannot extract {archive}: {err}; the archive looks corrupt") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target / kind.folder


def _download(dest_dir: Path, kind: CifarKind) -> Path:
    dest = dest_dir / f"{kind.archive}.tar.gz"
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".part")
    try:
        with urllib.request.urlopen(kind.url, timeout=15) as resp, open(tmp, "wb") as f:
            total = int(resp.headers.get("Content-Length") or 0)
            md5 = hashlib.md5()
            with tqdm(total=total, unit="B", unit_scale=True, desc=kind.title) as bar:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
                    md5.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        tmp.unlink(missing_ok=True)
        raise GankitError(
            f"{kind.title} not found in {dest_dir} and the download failed ({err}); "
            f"pass --data-dir (or set GANKIT_DATA_DIR) to a folder with {kind.folder}/ "
            f"or {kind.archive}.tar.gz"
        ) from None
    if md5.hexdigest() != kind.md5:
        tmp.unlink(missing_ok=True)
        raise GankitError(f"downloaded {kind.title} has md5 {md5.hexdigest()}, expected {kind.md5}")
    os.replace(tmp, dest)
    return dest


def locate(
    data_dir: str | os.PathLike[str] | None, download: bool = True, kind: CifarKind = CIFAR10
) -> Path:
    """Return the dataset's batch folder, extracting or downloading as needed."""
    root, named = _resolve(data_dir)
    if named and not root.exists():
        raise GankitError(
            f"data folder {root} does not exist (from --data-dir/GANKIT_DATA_DIR); pass a folder "
            f"holding {kind.folder}/ or {kind.archive}.tar.gz, or an existing empty "
            "folder to download into"
        )
    for cand in (root / kind.folder, root):
        if cand.is_dir() and all((cand / f).is_file() for f in kind.all_files):
            return cand
    archive = _find_archive(root, kind)
    if archive is not None:
        return _extract(archive, kind)
    if root.exists() and not root.is_dir():
        raise GankitError(f"--data-dir {root} is neither a folder nor a {kind.title} tar archive")
    if not download:
        raise GankitError(f"{kind.title} not found in {root}; pass --data-dir")
    return _extract(_download(root, kind), kind)


class _Refused(pickle.UnpicklingError):
    """The pickle asks for something a CIFAR batch never holds."""


# Plain numeric dtypes a CIFAR batch may hold; an object dtype would unpickle arbitrary objects.
_SAFE_DTYPES = {np.dtype(t) for t in ("u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8",
                                      "b1")}


def _safe_dtype(spec, align=False, copy=False):
    dt = np.dtype(spec)
    if dt.newbyteorder("=") not in _SAFE_DTYPES:
        raise _Refused(f"dtype {spec!r} is not allowed in a CIFAR batch")
    return np.dtype(spec, align, copy)


def _latin1_encode(text, encoding="latin1", errors="strict"):
    # Python 3 writes bytes in protocol-2 pickles as _codecs.encode(str, "latin1").
    if codecs.lookup(encoding).name != "iso8859-1":
        raise _Refused(f"codec {encoding!r} is not allowed in a CIFAR batch")
    return codecs.encode(text, "latin1", errors)


def _reconstruct(cls, shape, dtype):
    if cls is not np.ndarray:
        raise _Refused("only numpy arrays are allowed in a CIFAR batch")
    return np.ndarray.__new__(np.ndarray, shape, _safe_dtype(dtype))


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, str/bytes, ints and numeric numpy arrays, and nothing else.

    A pickle can name any importable callable; ``pickle.load`` on a file from the internet is
    remote code execution. CIFAR batches need only numpy's array reconstruction, so every
    other global is refused before it is ever called.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _safe_dtype,
        ("_codecs", "encode"): _latin1_encode,
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"global {module}.{name} is not allowed") from None


def _read_batch(path: Path, kind: CifarKind) -> tuple[np.ndarray, np.ndarray]:
    what = f"{kind.title} file {path}"
    try:
        d = _BatchUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except FileNotFoundError:
        raise GankitError(f"{kind.title} file missing: {path}") from None
    except _Refused as err:
        raise GankitError(f"{what} is not a plain CIFAR batch ({err}); "
                          "refusing to load it") from None
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise GankitError(f"{what} is corrupt ({type(err).__name__})") from None
    key = kind.label_key
    if not isinstance(d, dict) or b"data" not in d or key not in d:
        raise GankitError(f"{what} lacks the 'data'/'{key.decode()}' entries")
    data, labels = d[b"data"], np.asarray(d[key])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise GankitError(f"{what}: 'data' is not a uint8 matrix")
    if data.shape[1] != 3072 or labels.shape != (data.shape[0],):
        raise GankitError(
            f"{what}: data {data.shape} / labels {labels.shape} do not match N x 3072 and N"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= kind.classes):
        raise GankitError(f"{what}: labels outside 0..{kind.classes - 1}")
    return data, labels


def _expected(split: str) -> int:
    """Images in a split of the official release (both datasets)."""
    return 50000 if split == "train" else 10000


def class_names(name: str, data_dir: str | os.PathLike[str] | None,
                labels: str = "fine") -> list[str]:
    """The class names in label order, from the release's meta file (``batches.meta`` /
    ``meta``); the label indices where the file is missing or does not name them."""
    kind = _labelled(KINDS[name], labels)
    meta_file, key = (("batches.meta", b"label_names") if name == "cifar10" else
                      ("meta", b"coarse_label_names" if labels == "coarse" else b"fine_label_names"))
    try:
        folder = locate(data_dir, download=False, kind=KINDS[name])
        d = _BatchUnpickler(io.BytesIO((folder / meta_file).read_bytes()), encoding="bytes").load()
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in d[key]]
    except Exception:  # noqa: BLE001 -- names are a nicety; the labels are what counts
        names = []
    if len(names) != kind.classes or len(set(names)) != len(names):
        names = [str(i) for i in range(kind.classes)]
    return names


def _labelled(kind: CifarKind, labels: str) -> CifarKind:
    """CIFAR-100 with its 20 coarse superclasses as labels (``labels="coarse"``)."""
    if labels == "coarse" and kind.name == "cifar100":
        return dataclasses.replace(kind, label_key=b"coarse_labels", classes=20)
    return kind


def load_cifar(
    name: str, data_dir: str | os.PathLike[str] | None, split: str = "train",
    download: bool = True, labels: str = "fine",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a split of ``cifar10``/``cifar100`` as ``(uint8 N x 3 x 32 x 32, int64 N)``,
    validated (sizes and per-class counts of the official release). ``labels``: CIFAR-100's
    ``fine`` (100) or ``coarse`` (20) classes."""
    kind = _labelled(KINDS[name], labels)
    if split not in ("train", "test"):
        raise GankitError(f"unknown {kind.title} split {split!r}; use train or test")
    folder = locate(data_dir, download=download, kind=kind)
    parts = [_read_batch(folder / f, kind) for f in kind.files[split]]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts]).astype(np.int64)
    expected = _expected(split)
    counts = np.bincount(labels, minlength=kind.classes)
    if len(data) != expected or (counts != expected // kind.classes).any():
        raise GankitError(
            f"{kind.title} {split} split in {folder} has {len(data)} images with class counts "
            f"{counts.tolist()[:10]}{'...' if kind.classes > 10 else ''}; expected {expected} "
            f"with {expected // kind.classes} per class"
        )
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(labels)


def load_cifar10(
    data_dir: str | os.PathLike[str] | None, split: str = "train", download: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10's ``split`` (see :func:`load_cifar`)."""
    return load_cifar("cifar10", data_dir, split, download)
