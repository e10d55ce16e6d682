"""CIFAR-10 (python version): locate or download, validate, load and normalise.

Samples are columns: ``X`` is d x n (d = 3072), ``Y`` is one-hot K x n (K = 10), ``y`` holds the
n integer labels. Every problem the user can fix (missing, incomplete or damaged data, failed
download) raises :class:`DataError` with a message saying what is wrong and what to do.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import os
import pickle
import re
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

import numpy as np

from . import env
from .stops import signals_raise

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
K = 10
D = 3072
LABEL_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"

_FOLDER = "cifar-10-batches-py"
_ARCHIVE = "cifar-10-python.tar.gz"
_PART_PREFIX = f".{_ARCHIVE}.part-"  # partial downloads, in the folder the archive goes to
_BATCH_ROWS = 10_000  # images per batch file
_N_TRAIN = _BATCH_ROWS * len(TRAIN_FILES)
_CHUNK_ROWS = 256  # rows per float64 work chunk: 6 MB, stays in cache
_HINT = "set CIFAR10_DIR (or pass path=) to the folder holding data_batch_1..5 and test_batch"
# The only globals a batch pickle may name: numpy array reconstruction (numpy 1.x and 2.x names)
# and the helper Python 3 uses for bytes in protocol 2. Anything else is refused, so a batch file
# cannot run code.
_PICKLE_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
})
_TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


class DataError(RuntimeError):
    """The data is missing, incomplete or damaged, or could not be downloaded."""


@dataclass(frozen=True, eq=False)
class Split:
    """One split: X d x n (stored so that X.T is C-contiguous), Y one-hot K x n, y int64 (n,)."""

    X: np.ndarray
    Y: np.ndarray
    y: np.ndarray

    @property
    def n(self) -> int:
        return self.y.shape[0]


@dataclass(frozen=True)
class Source:
    """How to load a CIFAR10 again: load_cifar10's arguments, so that another process (a Dask
    worker) can load the same data itself. path None means that process's $CIFAR10_DIR, else
    its download cache."""

    path: str | None = None
    n_val: int = 5000
    dtype: str = "float32"

    def __post_init__(self):    # an absolute path and a dtype name, for another process
        if self.path is not None:
            object.__setattr__(self, "path", str(Path(self.path).expanduser().resolve()))
        object.__setattr__(self, "dtype", np.dtype(self.dtype).name)

    def load(self, *, download: bool = True, progress: bool = False) -> CIFAR10:
        return load_cifar10(self.path, n_val=self.n_val, dtype=self.dtype, download=download,
                            progress=progress)


@dataclass(frozen=True, eq=False)
class CIFAR10:
    """The three splits, all normalised with the training split's mean and std (float64, d x 1).
    `source` says how load_cifar10 loaded them; None for data derived from them (a slice, a
    whitened copy)."""

    train: Split
    val: Split
    test: Split
    mean: np.ndarray
    std: np.ndarray
    source: Source | None = None


def one_hot(y, K: int = K, dtype=np.float64) -> np.ndarray:
    """One-hot K x n matrix of the labels y (n,); like X, stored so that its .T is C-contiguous."""
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() >= K)):
        raise ValueError(f"labels must be a 1-D array of integers in 0..{K - 1}")
    return np.eye(K, dtype=dtype)[y].T


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/assignment3, or ~/.cache/assignment3 when that is unset or relative."""
    xdg = env.read("XDG_CACHE_HOME") or ""
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "assignment3"


def find_data_dir(path=None, *, download: bool = True, progress: bool = True) -> Path:
    """The folder holding the batch files: path, else $CIFAR10_DIR, else the download cache.

    Only the cache folder is ever downloaded into (when it is missing and download is true).
    """
    if path is not None:
        return _checked_user_dir(Path(path).expanduser(), "the CIFAR-10 folder")
    if env.read("CIFAR10_DIR"):
        folder = Path(env.read("CIFAR10_DIR")).expanduser()
        return _checked_user_dir(folder, "the CIFAR10_DIR folder")
    folder = default_cache_dir() / _FOLDER
    if folder.exists():
        missing = _missing_files(folder)
        if missing:
            raise DataError(
                f"the cached CIFAR-10 folder {folder} is incomplete (no {', '.join(missing)}): "
                f"delete {folder} so it is downloaded again, or {_HINT}"
            )
        return folder
    if not download:
        raise DataError(
            f"CIFAR-10 is not in the cache folder {folder} and download=False: call with "
            f"download=True to download it from {CIFAR10_URL} (163 MB), or {_HINT}"
        )
    return download_cifar10(folder.parent, progress=progress)


def _checked_user_dir(folder: Path, source: str) -> Path:
    """folder if it holds all batch files, else DataError (never downloads into it)."""
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise DataError(f"{source} {folder} {problem}: {_HINT}")
    missing = _missing_files(folder)
    if missing:
        nested = folder / _FOLDER
        guess = f" (did you mean {nested}?)" if nested.is_dir() else ""
        raise DataError(f"{source} {folder} has no {', '.join(missing)}{guess}: {_HINT}")
    return folder


def _missing_files(folder: Path) -> list[str]:
    return [name for name in (*TRAIN_FILES, TEST_FILE) if not (folder / name).is_file()]


def download_cifar10(root, *, url: str = CIFAR10_URL, md5: str = CIFAR10_MD5,
                     progress: bool = True) -> Path:
    """Download, verify and safely extract the CIFAR-10 archive into root.

    Returns root/cifar-10-batches-py and keeps the verified archive next to it. On any failure
    every partial file and folder is removed again and DataError is raised; so they are when
    the download is stopped by Ctrl-C, SIGTERM or SIGHUP (`stops.signals_raise`), and the
    partial files of earlier downloads that were killed outright are removed first.
    """
    root = Path(root)
    target = root / _FOLDER
    if target.exists():
        raise DataError(f"{target} already exists: delete it to download CIFAR-10 again")
    root.mkdir(parents=True, exist_ok=True)
    with signals_raise():
        _remove_stale_parts(root)
        return _download(url, md5, root, target, progress)


def _download(url: str, md5: str, root: Path, target: Path, progress: bool) -> Path:
    """The body of download_cifar10: fetch, check the md5, extract."""
    if progress:
        print(f"Downloading {url} to {root}", file=sys.stderr)
    part, digest = _fetch(url, root, progress)
    archive = root / _ARCHIVE
    try:
        if digest != md5.lower():
            raise DataError(
                f"the file downloaded from {url} is corrupt (md5 {digest}, expected {md5}): "
                "try again"
            )
        os.replace(part, archive)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    try:
        _extract(archive, target, progress)
    except BaseException:
        archive.unlink(missing_ok=True)
        raise
    return target


def _fetch(url: str, root: Path, progress: bool) -> tuple[Path, str]:
    """Stream url into a new temporary file in root; return its path and md5 hex digest.

    The temporary file is removed on any failure; a transfer shorter than its Content-Length
    is a failure.
    """
    fd, name = tempfile.mkstemp(dir=root, prefix=_PART_PREFIX)
    part = Path(name)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held while the file is written: it is not stale
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            length = response.headers.get("Content-Length", "")
            expected = int(length) if length.isdigit() else None
            digest, received = _copy(response, out, expected, progress)
        if expected is not None and received != expected:
            raise DataError(
                f"the download from {url} was cut short ({received} of {expected} bytes): "
                "try again"
            )
    except BaseException as exc:
        part.unlink(missing_ok=True)
        if isinstance(exc, (OSError, http.client.HTTPException)):
            raise DataError(
                f"could not download {url} ({exc}): check the network connection and try "
                f"again, or download and extract it by hand and {_HINT}"
            ) from exc
        raise
    return part, digest


def _remove_stale_parts(root: Path) -> None:
    """Remove the partial files of downloads into root that no process is writing any more
    (killed outright, e.g. by SIGKILL): a live download holds a lock on its file."""
    for part in root.glob(f"{_PART_PREFIX}*"):
        try:
            with part.open("rb") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                part.unlink()
        except (BlockingIOError, FileNotFoundError):
            pass  # being written by another download, or already removed


def _copy(response, out, expected: int | None, progress: bool) -> tuple[str, int]:
    """Copy response into out; return the md5 hex digest and the byte count."""
    md5 = hashlib.md5(usedforsecurity=False)
    received, shown = 0, 0.0
    while chunk := response.read(1 << 18):
        out.write(chunk)
        md5.update(chunk)
        received += len(chunk)
        if progress and time.monotonic() - shown >= 0.1:
            _show_progress(received, expected)
            shown = time.monotonic()
    if progress:
        _show_progress(received, expected)
        print(file=sys.stderr)
    return md5.hexdigest(), received


def _show_progress(received: int, expected: int | None) -> None:
    done = f"{received / 1e6:6.1f}"
    if expected:
        done = f"{100 * received / expected:5.1f}% {done}/{expected / 1e6:.1f}"
    sys.stderr.write(f"\r  {done} MB")
    sys.stderr.flush()


def _extract(archive: Path, target: Path, progress: bool) -> None:
    """Extract archive into a temporary folder next to target, then rename its batch folder to
    target. The temporary folder is always removed."""
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".cifar-10-extract-"))
    try:
        if progress:
            print(f"Extracting {archive}", file=sys.stderr)
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(tmp, members=_safe_members(tar), **_TAR_FILTER)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise DataError(f"could not extract {archive} ({exc}): download it again") from exc
        _move_into_place(tmp / _FOLDER, target, archive)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _safe_members(tar: tarfile.TarFile):
    """Yield the members of tar, raising DataError at the first one that is unsafe to extract."""
    for member in tar:
        problem = _unsafe(member)
        if problem:
            raise DataError(
                f"refusing to extract {member.name!r} from {tar.name}: it {problem}. This is not "
                f"the official CIFAR-10 archive; download it again from {CIFAR10_URL}"
            )
        yield member


def _unsafe(member: tarfile.TarInfo) -> str | None:
    """Why extracting member could write outside the target folder, or None if it cannot."""
    if not (member.isfile() or member.isdir()):
        return "is a link or special file"
    name = member.name
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        return "has an absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "has a '..' path component"
    return None


def _move_into_place(extracted: Path, target: Path, archive: Path) -> None:
    """Rename the extracted batch folder to target (one atomic step) once it is complete."""
    missing = _missing_files(extracted)
    if missing:
        raise DataError(
            f"{archive} has no {_FOLDER}/{', '.join(missing)}: it is not the CIFAR-10 python "
            f"archive; download it again from {CIFAR10_URL}"
        )
    try:
        os.rename(extracted, target)
    except OSError as exc:
        if _missing_files(target):  # else a concurrent download finished first: use its copy
            raise DataError(
                f"could not move the extracted data to {target} ({exc}): delete {target} and "
                "try again"
            ) from exc


def load_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """Load and validate one batch file: data uint8 10000 x 3072 (an image per row, R|G|B planes),
    labels int64 (10000,) in 0..9."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CIFAR-10 batch {path} not found: {_HINT}")
    try:
        with path.open("rb") as f:
            batch = _BatchUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # a damaged pickle can fail in many ways
        raise _bad_batch(path, f"cannot be read, it is truncated or corrupt ({exc!r})") from exc
    if not isinstance(batch, dict) or not {b"data", b"labels"} <= batch.keys():
        raise _bad_batch(path, "is not a dict with the keys b'data' and b'labels'")
    data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    if not isinstance(data, np.ndarray):
        raise _bad_batch(path, f"has data of type {type(data).__name__}, expected a numpy array")
    if data.dtype != np.uint8 or data.shape != (_BATCH_ROWS, D):
        raise _bad_batch(
            path, f"has data {data.dtype} {data.shape}, expected uint8 ({_BATCH_ROWS}, {D})"
        )
    if labels.shape != (_BATCH_ROWS,) or labels.dtype.kind not in "iu":
        raise _bad_batch(
            path, f"has labels {labels.dtype} {labels.shape}, expected {_BATCH_ROWS} integers"
        )
    if labels.min() < 0 or labels.max() >= K:
        raise _bad_batch(
            path, f"has labels in {labels.min()}..{labels.max()}, expected 0..{K - 1}"
        )
    return data, labels.astype(np.int64)


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that builds only numpy arrays and plain containers, never runs other code."""

    def find_class(self, module, name):
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _bad_batch(path: Path, problem: str) -> DataError:
    return DataError(
        f"CIFAR-10 batch {path} {problem}. Replace it with an intact copy: delete {path.parent} "
        "if it is the download cache so it is downloaded again, or set CIFAR10_DIR to a complete "
        "copy"
    )


def load_cifar10(path=None, *, n_val: int = 5000, dtype=np.float32, download: bool = True,
                 progress: bool = True) -> CIFAR10:
    """Load CIFAR-10 normalised per dimension with the training split's mean and std.

    The last n_val of the 50,000 training images form the validation split, the others the
    training split (45,000 by default); test_batch is the test split. X has the given dtype
    (float32 or float64). See find_data_dir for where the data is looked for.
    """
    n_val, dtype = _checked_n_val(n_val), _checked_dtype(dtype)
    folder = find_data_dir(path, download=download, progress=progress)
    train, val, mean, std = _train_val(folder, n_val, dtype)
    test_data, test_labels = load_batch(folder / TEST_FILE)
    test = _normalised([test_data], test_labels, mean, std, dtype)
    return CIFAR10(train=train, val=val, test=test, mean=mean[:, None], std=std[:, None],
                   source=Source(path, n_val, dtype))


def _checked_n_val(n_val) -> int:
    if isinstance(n_val, bool) or not isinstance(n_val, (int, np.integer)) \
            or not 0 < n_val < _N_TRAIN:
        raise ValueError(
            f"n_val (training images kept for validation) must be an integer with "
            f"0 < n_val < {_N_TRAIN}, got {n_val!r}"
        )
    return int(n_val)


def _checked_dtype(dtype) -> np.dtype:
    try:
        checked = np.dtype(dtype)
    except TypeError:
        checked = None
    if checked not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return checked


def _train_val(folder: Path, n_val: int, dtype) -> tuple[Split, Split, np.ndarray, np.ndarray]:
    """Training and validation splits, and the training split's mean and std (float64, (d,))."""
    batches = [load_batch(folder / name) for name in TRAIN_FILES]
    data = [batch_data for batch_data, _ in batches]  # not concatenated: saves 150 MB
    labels = np.concatenate([batch_labels for _, batch_labels in batches])
    n_train = _N_TRAIN - n_val
    train_rows, val_rows = _rows(data, 0, n_train), _rows(data, n_train, _N_TRAIN)
    mean, std = _mean_std(train_rows)
    constant = np.flatnonzero(std == 0)
    if constant.size:
        raise DataError(
            f"{constant.size} of the {D} pixel values (the first: dimension {constant[0]}) are "
            f"the same in every one of the {n_train} training images, so they cannot be "
            f"normalised (their std is 0): use more training images (a smaller n_val), or replace the batches in "
            f"{folder} with intact copies"
        )
    train = _normalised(train_rows, labels[:n_train], mean, std, dtype)
    val = _normalised(val_rows, labels[n_train:], mean, std, dtype)
    return train, val, mean, std


def _rows(batches: list[np.ndarray], start: int, stop: int) -> list[np.ndarray]:
    """Views holding rows start..stop of the concatenation of batches (each 10000 x d)."""
    return [
        batch[max(start - i * _BATCH_ROWS, 0):max(stop - i * _BATCH_ROWS, 0)]
        for i, batch in enumerate(batches)
    ]


def _mean_std(blocks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std (float64, shape (d,)) of all rows of blocks (uint8, n_i x d).

    The float64 sums of uint8 values and of their squares are exact (< 2**53), so the one-pass
    formula var = E[x^2] - E[x]^2 only rounds once at the end.
    """
    total, total_sq = np.zeros(D), np.zeros(D)
    for _, chunk in _float64_chunks(blocks):
        total += chunk.sum(axis=0)
        total_sq += np.einsum("ij,ij->j", chunk, chunk)
    n = sum(len(block) for block in blocks)
    mean = total / n
    return mean, np.sqrt(total_sq / n - mean**2)


def _normalised(blocks: list[np.ndarray], labels: np.ndarray, mean: np.ndarray,
                std: np.ndarray, dtype) -> Split:
    """Split of (x - mean) / std for the rows x of blocks (uint8, n_i x d) in order, computed in
    float64 and stored as dtype."""
    out = np.empty((len(labels), D), dtype)  # n x d, C-contiguous: X = out.T
    scale = 1.0 / std
    for rows, chunk in _float64_chunks(blocks):
        chunk -= mean
        np.multiply(chunk, scale, out=out[rows])
    return Split(X=out.T, Y=one_hot(labels, dtype=dtype), y=labels)


def _float64_chunks(blocks: list[np.ndarray]):
    """Yield (rows, chunk): consecutive row chunks of blocks (uint8, n_i x d) as float64, rows
    numbering them in the concatenation of blocks. chunk is one reused buffer."""
    buffer = np.empty((_CHUNK_ROWS, D))
    offset = 0
    for block in blocks:
        for start in range(0, len(block), _CHUNK_ROWS):
            part = block[start:start + _CHUNK_ROWS]
            chunk = buffer[:len(part)]
            chunk[...] = part
            yield slice(offset + start, offset + start + len(part)), chunk
        offset += len(block)
