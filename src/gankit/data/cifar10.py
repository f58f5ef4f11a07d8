"""CIFAR-10 in the official "python version" layout.

Accepted: a folder holding ``cifar-10-batches-py/``, that folder itself, or a tar archive
of it (``.tar.gz`` as downloaded, ``.tar.xz``). Archives are extracted once into the user
cache, atomically (temp folder + rename). With no copy anywhere the official archive is
downloaded and its md5 checked; offline, that fails at once with a message naming
``--data-dir``.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gankit.errors import GankitError
from gankit.io import user_cache_dir

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILES = ["test_batch"]
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.xz", ".tar")


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


def _find_archive(root: Path) -> Path | None:
    if root.is_file() and root.name.endswith(ARCHIVE_SUFFIXES):
        return root
    if root.is_dir():
        for p in sorted(root.iterdir()):
            if p.name.startswith("cifar-10") and p.name.endswith(ARCHIVE_SUFFIXES):
                return p
    return None


def _extract(archive: Path) -> Path:
    """Extract ``archive`` into the cache once; return the ``cifar-10-batches-py`` folder."""
    st = archive.stat()
    key = hashlib.sha1(f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    target = user_cache_dir() / "extracted" / key[:16]
    if (target / FOLDER).is_dir():
        return target / FOLDER
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
    try:
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(FOLDER + "/") and m.isfile()]
            if not members:
                raise GankitError(f"{archive} does not contain a {FOLDER}/ folder")
            tar.extractall(tmp, members=members, filter="data")
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first
            if not (target / FOLDER).is_dir():
                raise
    except (tarfile.TarError, EOFError, OSError, ValueError) as err:
        raise GankitError(f"cannot extract {archive}: {err}; the archive looks corrupt") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target / FOLDER


def _download(dest_dir: Path) -> Path:
    dest = dest_dir / "cifar-10-python.tar.gz"
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".part")
    try:
        with urllib.request.urlopen(CIFAR10_URL, timeout=15) as resp, open(tmp, "wb") as f:
            total = int(resp.headers.get("Content-Length") or 0)
            md5 = hashlib.md5()
            with tqdm(total=total, unit="B", unit_scale=True, desc="CIFAR-10") as bar:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
                    md5.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        tmp.unlink(missing_ok=True)
        raise GankitError(
            f"CIFAR-10 not found in {dest_dir} and the download failed ({err}); "
            "pass --data-dir (or set GANKIT_DATA_DIR) to a folder with cifar-10-batches-py/ "
            "or cifar-10-python.tar.gz"
        ) from None
    if md5.hexdigest() != CIFAR10_MD5:
        tmp.unlink(missing_ok=True)
        raise GankitError(f"downloaded CIFAR-10 has md5 {md5.hexdigest()}, expected {CIFAR10_MD5}")
    os.replace(tmp, dest)
    return dest


def locate(data_dir: str | os.PathLike[str] | None, download: bool = True) -> Path:
    """Return the ``cifar-10-batches-py`` folder, extracting or downloading as needed."""
    root, named = _resolve(data_dir)
    if named and not root.exists():
        raise GankitError(
            f"data folder {root} does not exist (from --data-dir/GANKIT_DATA_DIR); pass a folder "
            "holding cifar-10-batches-py/ or cifar-10-python.tar.gz, or an existing empty "
            "folder to download into"
        )
    for cand in (root / FOLDER, root):
        if cand.is_dir() and (cand / "test_batch").exists():
            return cand
    archive = _find_archive(root)
    if archive is not None:
        return _extract(archive)
    if root.exists() and not root.is_dir():
        raise GankitError(f"--data-dir {root} is neither a folder nor a CIFAR-10 tar archive")
    if not download:
        raise GankitError(f"CIFAR-10 not found in {root}; pass --data-dir")
    return _extract(_download(root))


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


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = _BatchUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except FileNotFoundError:
        raise GankitError(f"CIFAR-10 file missing: {path}") from None
    except _Refused as err:
        raise GankitError(f"CIFAR-10 file {path} is not a plain CIFAR batch ({err}); "
                          "refusing to load it") from None
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise GankitError(f"CIFAR-10 file {path} is corrupt ({type(err).__name__})") from None
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise GankitError(f"CIFAR-10 file {path} lacks the 'data'/'labels' entries")
    data, labels = d[b"data"], np.asarray(d[b"labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise GankitError(f"CIFAR-10 file {path}: 'data' is not a uint8 matrix")
    if data.shape[1] != 3072 or labels.shape != (data.shape[0],):
        raise GankitError(
            f"CIFAR-10 file {path}: data {data.shape} / labels {labels.shape} do not match "
            "N x 3072 and N"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise GankitError(f"CIFAR-10 file {path}: labels outside 0..9")
    return data, labels


def load_cifar10(
    data_dir: str | os.PathLike[str] | None, split: str = "train", download: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a split as ``(images uint8 N x 3 x 32 x 32, labels int64 N)``, validated."""
    if split not in ("train", "test"):
        raise GankitError(f"unknown CIFAR-10 split {split!r}; use train or test")
    folder = locate(data_dir, download=download)
    files = TRAIN_FILES if split == "train" else TEST_FILES
    parts = [_read_batch(folder / name) for name in files]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts]).astype(np.int64)
    expected = 50000 if split == "train" else 10000
    counts = np.bincount(labels, minlength=10)
    if len(data) != expected or (counts != expected // 10).any():
        raise GankitError(
            f"CIFAR-10 {split} split in {folder} has {len(data)} images with class counts "
            f"{counts.tolist()}; expected {expected} with {expected // 10} per class"
        )
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(labels)
