"""Checks of inputs, in one place: the predicates every module shares (`is_int`, `is_real`), and
the checks of the arrays given to the public functions of `network`, `cost` and `training.train`.
Each raises ValueError (TypeError for a wrong type) saying what is wrong, instead of a traceback
from deep inside numpy or a silently wrong number. They run once per public call
(`network.check_input`, which also checks the `Net`); the training loop calls the unchecked
passes (`network.forward_unchecked`, `cost.evaluate_unchecked`)."""
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import DTypeLike

from .types import Array, Params, Stats

if TYPE_CHECKING:                             # TypeIs is in typing from Python 3.13 on
    from typing_extensions import TypeIs

#: The keys of the parameter dict, in the order of the flat parameter vector of training.
PARAM_NAMES = ("W", "b", "gamma", "beta")

#: Where BN goes: before or after the ReLU.
BN_ORDERS = ("before", "after")


def is_bool(value: object) -> "TypeIs[bool | np.bool_]":
    """True for bools (Python or numpy)."""
    return isinstance(value, (bool, np.bool_))


def is_int(value: object) -> "TypeIs[int | np.integer[Any]]":
    """True for integers (Python or numpy), False for bools and everything else."""
    return isinstance(value, Integral) and not is_bool(value)


def is_real(value: object) -> "TypeIs[float | np.integer[Any] | np.floating[Any]]":
    """True for real numbers (Python or numpy), False for bools and everything else."""
    return isinstance(value, Real) and not is_bool(value)


def check_samples(X: Array, d: int, name: str = "X") -> None:
    """Raise unless X is a finite float array d x n with n >= 1."""
    check_floats(X, name)
    if X.ndim != 2 or X.shape[0] != d or X.shape[1] < 1:
        raise ValueError(f"{name} must be d x n with d = {d} (one sample per column) and n >= 1; "
                         f"got shape {X.shape}")
    # NaN and inf make the sum NaN or inf: one fast pass; an overflowing sum is checked again
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.isfinite(X.sum()) or np.isfinite(X).all()
    if not finite:
        raise ValueError(f"{name} holds NaN or infinite values: the data is bad (repair or "
                         f"reload it; the training cannot)")


def check_one_hot(Y: Array, K: int, n: int, name: str = "Y") -> None:
    """Raise unless Y is a one-hot K x n array."""
    _check_target_shape(Y, K, n, name)
    if not (((Y == 0) | (Y == 1)).all() and (Y.sum(axis=0) == 1).all()):
        raise ValueError(f"{name} must be one-hot: every column one 1, the other entries 0")


def check_targets(Y: Array, K: int, n: int, name: str = "Y") -> None:
    """Raise unless Y (K x n) holds one probability distribution per column: one-hot, or soft
    targets (entries in [0, 1] summing to 1, up to rounding)."""
    _check_target_shape(Y, K, n, name)
    check_floats(Y, name)
    if not (((Y >= 0) & (Y <= 1)).all()
            and np.allclose(Y.sum(axis=0), 1, atol=10 * K * np.finfo(Y.dtype).eps)):
        raise ValueError(f"{name} must be one-hot or soft targets: every column entries in "
                         f"[0, 1] that sum to 1")


def _check_target_shape(Y: Array, K: int, n: int, name: str) -> None:
    if not isinstance(Y, np.ndarray) or Y.shape != (K, n):
        raise ValueError(f"{name} must be one-hot K x n = {(K, n)}; "
                         f"got shape {getattr(Y, 'shape', type(Y).__name__)}")


def check_labels(y: Any, n: int, K: int, name: str = "y") -> Any:
    """The labels y as an array, if they are n integers in 0..K-1; else ValueError/TypeError."""
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"{name} must hold n = {n} labels, got shape {y.shape}")
    if y.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer labels in 0..{K - 1}, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= K:
        raise ValueError(f"{name} must hold labels in 0..{K - 1}, got labels in "
                         f"{y.min()}..{y.max()}")
    return y


def check_lam(lam: object) -> None:
    """Raise unless lam is a finite real number >= 0."""
    if not is_real(lam):
        raise TypeError(f"lam must be a number >= 0, got {lam!r}")
    if not 0 <= lam < np.inf:
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")


def check_floats(A: object, name: str) -> None:
    """Raise TypeError unless A is a numpy array of floats."""
    if not isinstance(A, np.ndarray) or A.dtype.kind != "f":
        got = A.dtype if isinstance(A, np.ndarray) else type(A).__name__
        raise TypeError(f"{name} must be a numpy array of floats (float32 or float64), got {got}"
                        f": convert it with np.asarray({name}, np.float64)")


def check_params(params: Params) -> None:
    """Raise unless params is the parameter dict of a k-layer network: k W (m_l x m_(l-1)) and
    b (m_l x 1), and k - 1 or no gamma and beta (m_l x 1), all float arrays."""
    if not isinstance(params, dict) or set(params) != set(PARAM_NAMES) \
            or not all(isinstance(params[name], list) for name in PARAM_NAMES):
        raise TypeError(f"params must be a dict of the lists {', '.join(PARAM_NAMES)} "
                        f"(init_params makes one)")
    W, b, gamma, beta = (params[name] for name in PARAM_NAMES)
    k = len(W)
    if k < 1 or len(b) != k or len(gamma) != len(beta) or len(gamma) not in (0, k - 1):
        raise ValueError(f"params must hold k >= 1 W and b, and k - 1 or no gamma and beta; got "
                         f"{len(W)}, {len(b)}, {len(gamma)}, {len(beta)}")
    for name in PARAM_NAMES:
        for l, P in enumerate(params[name]):
            check_floats(P, f"params[{name!r}][{l}]")
    for l in range(k):
        m = W[l].shape[0] if W[l].ndim == 2 else None
        fits = m is not None and (l == 0 or W[l].shape[1] == W[l - 1].shape[0])
        if not fits or any(P[l].shape != (m, 1) for P in (b, gamma, beta) if l < len(P)):
            raise ValueError(f"the parameters of layer {l} do not fit: W[{l}] must be "
                             f"m_l x m_(l-1), b[{l}], gamma[{l}], beta[{l}] m_l x 1; got W[{l}] "
                             f"of shape {W[l].shape}")


def check_stats(params: Params, stats: Stats | None) -> None:
    """Raise unless stats (BN moving averages, or None) hold one (mu, v) pair of m_l x 1 arrays
    per BN layer of params."""
    shapes = [g.shape for g in params["gamma"]]
    if stats is None or not shapes:
        return
    if not isinstance(stats, (list, tuple)) or len(stats) != len(shapes) or any(
            len(pair) != 2 or any(getattr(a, "shape", None) != shape for a in pair)
            for pair, shape in zip(stats, shapes)):
        raise ValueError(f"stats must be one (mu, v) pair per BN layer, each m_l x 1: shapes "
                         f"{shapes}")


def check_masks(masks: list[Array] | None, W: list[Array], X: Array) -> None:
    """Raise unless `masks` is None or one m_l x n dropout mask per hidden layer of W."""
    if masks is None:
        return
    shapes = [(Wl.shape[0], X.shape[1]) for Wl in W[:-1]]
    got = [getattr(M, "shape", None) for M in masks]
    if got != shapes:
        raise ValueError(f"dropout masks must be one m_l x n array per hidden layer, shapes "
                         f"{shapes}; got {got}")


def checked_float_dtype(dtype: DTypeLike) -> np.dtype[Any]:
    """`dtype` as a numpy dtype if it is float32 or float64, else ValueError."""
    try:
        if np.dtype(dtype) in (np.float32, np.float64):
            return np.dtype(dtype)
    except TypeError:                                 # not a dtype at all
        pass
    raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")


def check_data(data: Any, dtype: DTypeLike) -> None:
    """Raise ValueError (TypeError for the wrong types) unless `data` has train, val and test
    splits of finite samples of `dtype` (X d x n, n >= 1) with integer labels y in 0..K-1 and
    their one-hot Y (K x n), with the same d and K in all three."""
    splits: dict[str, Any] = {name: getattr(data, name, None) for name in ("train", "val", "test")}
    if any(not all(hasattr(split, a) for a in "XYy") for split in splits.values()):
        raise TypeError("data must have train, val and test splits with X, Y and y, as the "
                        "CIFAR10 of load_cifar10")
    for name, split in splits.items():
        for a in "XYy":
            if not isinstance(getattr(split, a), np.ndarray):
                raise TypeError(f"data.{name}.{a} must be a numpy array, got "
                                f"{type(getattr(split, a)).__name__}, as load_cifar10 gives")
    d, K = data.train.X.shape[0], data.train.Y.shape[0]
    for name, split in splits.items():
        if split.X.dtype != np.dtype(dtype):
            raise ValueError(f"data.{name}.X is {split.X.dtype} but "
                             f"the config's dtype is {dtype}: load the data with "
                             f"load_cifar10(dtype=np.{dtype})")
        check_samples(split.X, d, f"data.{name}.X")
        n = split.X.shape[1]
        y = check_labels(split.y, n, K, f"data.{name}.y")
        check_one_hot(split.Y, K, n, f"data.{name}.Y")
        if not (split.Y.argmax(axis=0) == y).all():
            raise ValueError(f"data.{name}.Y is not the one-hot form of data.{name}.y")
