"""Numerical gradients by centred differences, and their comparison with the analytic ones.

Checks are meant for float64 parameters and a handful of samples (the report uses 3 images with
their first 20 dimensions). The cost is evaluated in BN training mode, on the batch's own
statistics, exactly as `compute_gradients` differentiates it; no moving average is involved, and
the caller's parameters are never modified (the differences are taken on a copy).

Precision: in float64 the cost's rounding error (a few 1e-16) divided by 2h leaves ~1e-10 of noise
in every numerical gradient, as large as the smaller true gradients of a 3-image batch. The
differences are therefore taken in extended precision (np.longdouble, 80-bit on x86-64), which
brings that noise to ~1e-13; the analytic gradients under test stay float64.
"""
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from .checks import PARAM_NAMES
from .cost import compute_cost
from .network import Net, check_input, compute_gradients
from .types import Array, Params

#: Denominator floor of the relative error: entries whose true gradient is ~0 (the BN biases,
#: whose gradient is zero up to rounding) are compared on an absolute scale below this.
ABS_FLOOR = 1e-6


def copy_params(params: Params, dtype: DTypeLike | None = None) -> Params:
    """A deep copy of a parameter (or gradient) dict, optionally cast to `dtype`."""
    return {name: [np.array(P, dtype=dtype) for P in params[name]] for name in PARAM_NAMES}


def numerical_gradients(params: Params, X: Array, Y: Array, lam: float, h: float = 1e-6,
                        dtype: DTypeLike = np.longdouble, *, net: Net = Net(),
                        masks: list[Array] | None = None) -> Params:
    """Centred-difference gradients (J(p + h) - J(p - h)) / 2h of the cost for every entry of
    every W, b, gamma, beta, computed in `dtype`. X is d x n, Y is K x n; `net` and the dropout
    `masks` (held fixed) as in `network`. Returns a dict like `params` (in `dtype`)."""
    check_input(params, X, Y, lam=lam, net=net, masks=masks)
    work = copy_params(params, dtype)
    X, Y = X.astype(dtype), Y.astype(dtype)
    work_masks = None if masks is None else [M.astype(dtype) for M in masks]
    grads: Params = {name: [] for name in PARAM_NAMES}
    for name in PARAM_NAMES:
        for P in work[name]:
            G = np.zeros_like(P)
            for i in np.ndindex(P.shape):
                old = P[i]
                P[i] = old + h
                c_plus = compute_cost(work, X, Y, lam, net=net, masks=work_masks)
                P[i] = old - h
                c_minus = compute_cost(work, X, Y, lam, net=net, masks=work_masks)
                P[i] = old
                G[i] = (c_plus - c_minus) / (2 * h)
            grads[name].append(G)
    return grads


def relative_error(ga: ArrayLike, gn: ArrayLike, floor: float = ABS_FLOOR) -> NDArray[np.float64]:
    """Element-wise |ga - gn| / max(floor, |ga| + |gn|)."""
    ga, gn = np.asarray(ga, np.float64), np.asarray(gn, np.float64)
    return np.abs(ga - gn) / np.maximum(floor, np.abs(ga) + np.abs(gn))


def check_gradients(params: Params, X: Array, Y: Array, lam: float, h: float = 1e-6,
                    floor: float = ABS_FLOOR, *, net: Net = Net(),
                    masks: list[Array] | None = None) -> list[dict[str, Any]]:
    """Compare analytic and numerical gradients (layers wired as `net`, dropout `masks`).
    Returns one row per parameter array: {"param": "W", "layer": 1 (1-based, as in the
    assignment), "max_rel_error", "median_rel_error", "max_abs_error", "max_abs_grad"}."""
    ga = compute_gradients(params, X, Y, lam, net=net, masks=masks)
    gn = numerical_gradients(params, X, Y, lam, h, net=net, masks=masks)
    rows: list[dict[str, Any]] = []
    for name in PARAM_NAMES:
        for l, (a, b) in enumerate(zip(ga[name], gn[name])):
            err = relative_error(a, b, floor)
            rows.append({"param": name, "layer": l + 1, "max_rel_error": float(np.max(err)),
                         "median_rel_error": float(np.median(err)),
                         "max_abs_error": float(np.abs(a - b).max()),
                         "max_abs_grad": float(np.abs(a).max())})
    return rows
