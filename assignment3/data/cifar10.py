"""CIFAR-10 (python version) loaded into normalised splits: each batch file read safely and
validated, the last n_val training images kept for validation, every split normalised with the
training split's mean and std.

Samples are columns: ``X`` is d x n (d = 3072), ``Y`` is one-hot K x n (K = 10), ``y`` holds the
n integer labels. `files` finds (or downloads) the batch files.
"""

import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from ..nn.augment import ZCA_EPS_SCALE, apply_zca, fit_zca
from ..nn.checks import checked_float_dtype, is_int
from .files import TEST_FILE, TRAIN_FILES, DataError, find_data_dir, not_found

K = 10
D = 3072
LABEL_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

_BATCH_ROWS = 10_000  # images per batch file
_N_TRAIN = _BATCH_ROWS * len(TRAIN_FILES)
_CHUNK_ROWS = 256  # rows per float64 work chunk: 6 MB, stays in cache
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

#: What a batch's data and labels must be, checked in order: (whether they are, what is wrong if
#: not), each a function of (data, labels as an array).
_BATCH_CHECKS: tuple[tuple[Callable[[Any, np.ndarray], object],
                           Callable[[Any, np.ndarray], str]], ...] = (
    (lambda data, _: isinstance(data, np.ndarray),
     lambda data, _: f"has data of type {type(data).__name__}, expected a numpy array"),
    (lambda data, _: data.dtype == np.uint8 and data.shape == (_BATCH_ROWS, D),
     lambda data, _: f"has data {data.dtype} {data.shape}, expected uint8 ({_BATCH_ROWS}, {D})"),
    (lambda _, labels: labels.shape == (_BATCH_ROWS,) and labels.dtype.kind in "iu",
     lambda _, labels: f"has labels {labels.dtype} {labels.shape}, expected {_BATCH_ROWS} "
                       "integers"),
    (lambda _, labels: labels.min() >= 0 and labels.max() < K,
     lambda _, labels: f"has labels in {labels.min()}..{labels.max()}, expected 0..{K - 1}"),
)


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

    def __post_init__(self) -> None:    # an absolute path and a dtype name, for another process
        if self.path is not None:
            object.__setattr__(self, "path", str(Path(self.path).expanduser().resolve()))
        object.__setattr__(self, "dtype", np.dtype(self.dtype).name)

    def load(self, *, download: bool = True, progress: bool = False) -> "CIFAR10":
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


def one_hot(y: Any, K: int = K, dtype: DTypeLike = np.float64) -> NDArray[Any]:
    """One-hot K x n matrix of the labels y (n,); like X, stored so that its .T is C-contiguous."""
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() >= K)):
        raise ValueError(f"labels must be a 1-D array of integers in 0..{K - 1}")
    return np.eye(K, dtype=dtype)[y].T


def load_batch(path: str | os.PathLike[str]) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Load and validate one batch file: data uint8 10000 x 3072 (an image per row, R|G|B planes),
    labels int64 (10000,) in 0..9."""
    path = Path(path)
    if not path.is_file():
        raise not_found(f"CIFAR-10 batch {path} not found: ")
    try:
        with path.open("rb") as f:
            batch = _BatchUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # a damaged pickle can fail in many ways
        raise _bad_batch(path, f"cannot be read, it is truncated or corrupt ({exc!r})") from exc
    if not isinstance(batch, dict) or not {b"data", b"labels"} <= batch.keys():
        raise _bad_batch(path, "is not a dict with the keys b'data' and b'labels'")
    data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    for holds, problem in _BATCH_CHECKS:
        if not holds(data, labels):
            raise _bad_batch(path, problem(data, labels))
    return data, labels.astype(np.int64)


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that builds only numpy arrays and plain containers, never runs other code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _bad_batch(path: Path, problem: str) -> DataError:
    return DataError(
        f"CIFAR-10 batch {path} {problem}. Replace it with an intact copy: delete {path.parent} "
        "if it is the download cache so it is downloaded again, or set CIFAR10_DIR to a complete "
        "copy"
    )


def load_cifar10(path: str | os.PathLike[str] | None = None, *, n_val: int = 5000,
                 dtype: DTypeLike = np.float32, download: bool = True,
                 progress: bool = True) -> CIFAR10:
    """Load CIFAR-10 normalised per dimension with the training split's mean and std.

    The last n_val of the 50,000 training images form the validation split, the others the
    training split (45,000 by default); test_batch is the test split. X has the given dtype
    (float32 or float64). See find_data_dir for where the data is looked for.
    """
    if not is_int(n_val) or not 0 < n_val < _N_TRAIN:
        raise ValueError(
            f"n_val (training images kept for validation) must be an integer with "
            f"0 < n_val < {_N_TRAIN}, got {n_val!r}"
        )
    n_val, dtype = int(n_val), checked_float_dtype(dtype)
    folder = find_data_dir(path, download=download, progress=progress)
    data, batch_labels = zip(*(load_batch(folder / name) for name in TRAIN_FILES))
    labels = np.concatenate(batch_labels)  # the data is not concatenated: saves 150 MB
    n_train = _N_TRAIN - n_val
    train_rows, val_rows = _rows(data, 0, n_train), _rows(data, n_train, _N_TRAIN)
    mean, std = _mean_std(train_rows)
    constant = np.flatnonzero(std == 0)
    if constant.size:
        raise DataError(
            f"{constant.size} of the {D} pixel values (the first: dimension {constant[0]}) are "
            f"the same in every one of the {n_train} training images, so they cannot be "
            f"normalised (their std is 0): use more training images (a smaller n_val), or replace "
            f"the batches in {folder} with intact copies"
        )
    test_data, test_labels = load_batch(folder / TEST_FILE)
    train, val, test = (_normalised(rows, y, mean, std, dtype) for rows, y in (
        (train_rows, labels[:n_train]), (val_rows, labels[n_train:]), ([test_data], test_labels)))
    return CIFAR10(train=train, val=val, test=test, mean=mean[:, None], std=std[:, None],
                   source=Source(None if path is None else str(path), n_val, dtype.name))


def _rows(batches: Sequence[np.ndarray], start: int, stop: int) -> list[np.ndarray]:
    """Views holding rows start..stop of the concatenation of batches (each 10000 x d)."""
    return [
        batch[max(start - i * _BATCH_ROWS, 0):max(stop - i * _BATCH_ROWS, 0)]
        for i, batch in enumerate(batches)
    ]


def _mean_std(blocks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std (float64, shape (d,)) of all rows of blocks (uint8, n_i x d).

    The integer sums of the values and of their squares are exact, so the one-pass formula
    var = E[x^2] - E[x]^2 only rounds once at the end.
    """
    n = sum(len(block) for block in blocks)
    sums = np.sum([block.sum(axis=0, dtype=np.int64) for block in blocks], axis=0)
    squares = np.sum([np.einsum("ij,ij->j", block, block, dtype=np.int64) for block in blocks],
                     axis=0)
    mean = sums / n
    return mean, np.sqrt(squares / n - mean**2)


def _normalised(blocks: list[np.ndarray], labels: np.ndarray, mean: np.ndarray,
                std: np.ndarray, dtype: np.dtype[Any]) -> Split:
    """Split of (x - mean) / std for the rows x of blocks (uint8, n_i x d) in order, computed in
    float64 chunks of rows and stored as dtype."""
    out = np.empty((len(labels), D), dtype)  # n x d, C-contiguous: X = out.T
    scale, start = 1.0 / std, 0
    for rows in (block[i:i + _CHUNK_ROWS] for block in blocks
                 for i in range(0, len(block), _CHUNK_ROWS)):
        np.multiply(rows - mean, scale, out=out[start:start + len(rows)])
        start += len(rows)
    return Split(X=out.T, Y=one_hot(labels, dtype=dtype), y=labels)


def zca_whiten(data: CIFAR10, eps_scale: float = ZCA_EPS_SCALE) -> CIFAR10:
    """A copy of `data` with every split whitened by the ZCA matrix fitted on the training split
    only (`nn.augment.fit_zca`)."""
    W = fit_zca(data.train.X, eps_scale)
    train, val, test = (replace(split, X=apply_zca(W, split.X))
                        for split in (data.train, data.val, data.test))
    return replace(data, train=train, val=val, test=test, source=None)
