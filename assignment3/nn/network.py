"""A k-layer fully connected network with optional batch normalization (BN).

Notation of the assignment: a sample is a column, `X` is d x n, `Y` is one-hot K x n, `y` holds
the n labels. Layers are numbered 0..k-1 here (1..k in the assignment). The parameters are one
plain dict shared by the optimiser and the gradient check::

    params = {"W": [W_0, ..., W_(k-1)],        # W_l is m_l x m_(l-1)
              "b": [b_0, ..., b_(k-1)],        # m_l x 1
              "gamma": [g_0, ..., g_(k-2)],    # m_l x 1, hidden layers only; [] without BN
              "beta": [be_0, ..., be_(k-2)]}   # m_l x 1, hidden layers only; [] without BN

Hidden layer l: s = W_l x + b_l; with BN s_hat = (s - mu) / sqrt(v + BN_EPS),
s_tilde = gamma_l * s_hat + beta_l; x = max(0, s_tilde). Last layer: s = W x + b, p = softmax(s).

Beyond the assignment, the wiring of the layers is a `Net` value (the keyword `net` of
`forward`, `compute_cost`, `compute_gradients`, `evaluate`): `Net(bn_order="after")` puts BN
after the ReLU (x = BN(max(0, s))) instead of before it, and `Net(linear=j)` leaves out the ReLU
of the first j hidden layers (x = s_tilde: a linear bottleneck, Lin, Memisevic and Konda 2015).
`masks` applies inverted dropout in training mode: one m_l x n mask per hidden layer, entries 0
(dropped) or 1/(1 - p), multiplies that layer's output x. Masks are passed in, not drawn here, so
that a gradient check can hold them fixed (`dropout_masks` draws them). Test mode uses no masks:
inverted dropout needs no rescaling there.

BN statistics ("stats") are a list with one (mu, v) pair of m_l x 1 arrays per hidden layer. In
training mode (`stats=None`) each forward pass computes them from the mini-batch (variance divided
by n) and returns them; training keeps their moving averages (`update_moving_averages`), and in
test mode the caller passes those, which are only read.
"""
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import DTypeLike

from .checks import (
    BN_ORDERS,
    PARAM_NAMES,
    check_labels,
    check_lam,
    check_masks,
    check_params,
    check_samples,
    check_stats,
    check_targets,
    checked_float_dtype,
    is_bool,
    is_int,
    is_real,
)
from .types import Array, Params, Stats

__all__ = ["BN_ALPHA", "BN_EPS", "BN_ORDERS", "PARAM_NAMES", "LayerCache", "Net", "backward",
           "check_input", "compute_gradients", "dropout_masks", "forward", "forward_unchecked",
           "init_params", "log_softmax", "relu", "row_sum", "softmax", "update_moving_averages"]

#: The small constant added to the BN variance before the square root.
BN_EPS = 1e-10

#: Decay of the BN moving averages: mu_av = a mu_av + (1 - a) mu, the same for v.
BN_ALPHA = 0.9


@dataclass(frozen=True)
class Net:
    """How the layers are wired beyond the assignment: BN "before" or "after" the ReLU, and the
    first `linear` hidden layers without a ReLU (0: every hidden layer has one). Checked when
    built; a network's depth is checked against `linear` where both meet (`check_input`)."""
    bn_order: str = "before"
    linear: int = 0

    def __post_init__(self) -> None:
        if self.bn_order not in BN_ORDERS:
            raise ValueError(f'bn_order must be "before" or "after" (BN before or after the '
                             f"ReLU), not {self.bn_order!r}")
        if not is_int(self.linear) or self.linear < 0:
            raise ValueError(f"linear must be an integer >= 0 (hidden layers without a ReLU), "
                             f"got {self.linear!r}")


def check_input(params: Params, X: Array, Y: Array | None = None, *, y: Any = None,
                lam: float = 0.0, stats: Stats | None = None, net: Net = Net(),
                masks: list[Array] | None = None) -> None:
    """The one check of the inputs of a public function of the network or the cost, at its
    start (the training loop, whose inputs `train` checked once, calls the unchecked passes).
    Raises unless `params` is a parameter dict, X (d x n) samples for its d inputs, Y (if given)
    their K x n targets for its K outputs (one-hot, or soft: label smoothing, MixUp), y (if
    given) their n labels, lam a finite number >= 0, stats None or one (mu, v) pair per BN
    layer, `net` a `Net` whose `linear` is at most the number of hidden layers (so that one of
    them at least has a ReLU, or it has none), and masks None or one dropout mask per hidden
    layer."""
    check_params(params)
    check_samples(X, params["W"][0].shape[1])
    if Y is not None:
        check_targets(Y, params["W"][-1].shape[0], X.shape[1])
    if y is not None:
        check_labels(y, X.shape[1], params["W"][-1].shape[0])
    check_lam(lam)
    check_stats(params, stats)
    if not isinstance(net, Net):
        raise TypeError(f"net must be a Net(bn_order, linear), got {net!r}")
    hidden = len(params["W"]) - 1
    if net.linear > hidden:
        raise ValueError(f"linear must be in [0, {hidden}] for a network of {hidden} hidden "
                         f"layer{'s' if hidden != 1 else ''}, got {net.linear}")
    check_masks(masks, params["W"], X)


def init_params(dims: Sequence[int], *, batch_norm: bool, init: str | float = "he",
                seed: int | np.random.Generator | np.random.SeedSequence | None = None,
                dtype: DTypeLike = np.float64) -> Params:
    """Random parameters for a network with layer sizes `dims` = [d, m_1, ..., m_(k-1), K].

    `init` is "he" (N(0, 2/m_in)), "xavier" (N(0, 1/m_in)) or a float sigma (every weight
    N(0, sigma^2)). Biases start at 0, gamma at 1, beta at 0. The same seed gives the same
    weights in float32 and float64 (drawn in float64, then cast).
    """
    if isinstance(dims, (str, bytes)) or not hasattr(dims, "__len__") \
            or not all(is_int(m) for m in dims) or len(dims) < 2 or min(dims) < 1:
        raise ValueError(f"dims must list at least an input and an output size, integers >= 1; "
                         f"got {dims!r}")
    dims = [int(m) for m in dims]
    if not is_bool(batch_norm):
        raise TypeError(f"batch_norm must be True or False, got {batch_norm!r}")
    if is_bool(seed) or (is_int(seed) and seed < 0):
        raise ValueError(f"seed must be None, an integer >= 0 or a numpy Generator/SeedSequence, "
                         f"got {seed!r}")
    dtype = checked_float_dtype(dtype)
    rng = np.random.default_rng(seed)
    W = [(rng.standard_normal((m_out, m_in)) * _init_sigma(init, m_in)).astype(dtype)
         for m_in, m_out in zip(dims[:-1], dims[1:])]
    bn_sizes = dims[1:-1] if batch_norm else []             # BN in every hidden layer, or none
    return {"W": W, "b": [np.zeros((m, 1), dtype) for m in dims[1:]],
            "gamma": [np.ones((m, 1), dtype) for m in bn_sizes],
            "beta": [np.zeros((m, 1), dtype) for m in bn_sizes]}


#: The named initialisations: sigma^2 = gain / m_in.
INIT_GAINS = {"he": 2.0, "xavier": 1.0}


def _init_sigma(init: str | float, m_in: int) -> float:
    if isinstance(init, str) and init in INIT_GAINS:
        return float(np.sqrt(INIT_GAINS[init] / m_in))
    if not is_real(init):
        raise ValueError(f'init must be "he", "xavier" or a positive float sigma, not {init!r}')
    if not 0 < float(init) < np.inf:
        raise ValueError(f"init sigma must be a finite number > 0, got {init!r}")
    return float(init)


# ---------------------------------------------------------------------------------------------
# Forward pass
# ---------------------------------------------------------------------------------------------

class LayerCache(NamedTuple):
    """What `backward` needs of layer l: its input H (m_(l-1) x n); for a hidden layer also its
    BN values D = (BN input) - mu and inv_std = (v + eps)^-1/2 (None without BN), its ReLU
    output R (None in a layer without a ReLU), its dropout mask (or None) and whether BN comes
    after the ReLU."""
    H: Array
    D: Array | None = None
    inv_std: Array | None = None
    R: Array | None = None
    mask: Array | None = None
    bn_after: bool = False


def forward(params: Params, X: Array, stats: Stats | None = None, *, net: Net = Net(),
            masks: list[Array] | None = None) -> tuple[Array, list[LayerCache], Stats]:
    """Forward pass of X (d x n) to the scores S (K x n, before the softmax).

    Training mode (`stats=None`): BN uses the mini-batch statistics. Test mode: BN uses `stats`,
    a list of (mu, v) moving averages, never modified. `net` and `masks` (dropout): see the
    module docstring. Returns (S, cache, batch_stats): the cache (one `LayerCache` per layer)
    holds what `backward` needs, `batch_stats` the (mu, v) the pass used, one pair per BN layer.
    """
    check_input(params, X, stats=stats, net=net, masks=masks)
    return forward_unchecked(params, X, stats, net=net, masks=masks)


def forward_unchecked(params: Params, X: Array, stats: Stats | None = None, *, net: Net = Net(),
                      masks: list[Array] | None = None) -> tuple[Array, list[LayerCache], Stats]:
    """`forward` without the checks of its inputs that cost a pass over X (for the training
    loop, whose inputs `train` checked once)."""
    W, b, gamma, beta = (params[name] for name in PARAM_NAMES)
    bn_after, linear = net.bn_order == "after", net.linear
    cache: list[LayerCache] = []
    batch_stats: Stats = []
    H = X
    for l in range(len(W) - 1):
        S: Array = W[l] @ H
        S += b[l]
        D = inv_std = None
        if gamma and not bn_after:                           # BN, before the ReLU
            S, D, inv_std = _bn_forward(S, gamma[l], beta[l], stats, l, batch_stats)
        R = relu(S) if l >= linear else S                    # in place
        A = R
        if gamma and bn_after:
            A, D, inv_std = _bn_forward(R, gamma[l], beta[l], stats, l, batch_stats)
        mask = None if masks is None else masks[l]
        if mask is not None:
            A = A * mask
        cache.append(LayerCache(H, D, inv_std, R if l >= linear else None, mask, bn_after))
        H = A
    S = W[-1] @ H
    S += b[-1]
    cache.append(LayerCache(H))
    return S, cache, batch_stats


def _bn_forward(S: Array, gamma: Array, beta: Array, stats: Stats | None, l: int,
                batch_stats: Stats) -> tuple[Array, Array, Array]:
    """BN of S (m x n) with the batch's statistics (stats None; appended to batch_stats) or with
    stats[l]. Returns (s_tilde, D, inv_std), new arrays; S is not modified."""
    if stats is None:
        mu = row_sum(S) / S.shape[1]
        D = S - mu                                            # D = S - mu
        v = row_sum(D * D) / S.shape[1]                      # biased variance (/n)
    else:
        mu, v = stats[l]
        D = S - mu
    inv_std = 1.0 / np.sqrt(v + BN_EPS)                       # (v + eps)^-1/2
    # s_tilde = gamma * s_hat + beta with s_hat = D * inv_std, in one pass over D.
    S_tilde = D * (gamma * inv_std)
    S_tilde += beta
    batch_stats.append((mu, v))
    return S_tilde, D, inv_std


def update_moving_averages(stats_av: Stats | None, batch_stats: Stats,
                           alpha: float = BN_ALPHA) -> Stats:
    """The BN moving averages after one mini-batch, started from the first batch's statistics
    (`stats_av` None); updated in place."""
    if stats_av is None:
        return [(mu.copy(), v.copy()) for mu, v in batch_stats]
    for (mu_av, v_av), (mu, v) in zip(stats_av, batch_stats):
        mu_av *= alpha
        mu_av += (1 - alpha) * mu
        v_av *= alpha
        v_av += (1 - alpha) * v
    return stats_av


def dropout_masks(params: Params, n: int, p: float, rng: np.random.Generator,
                  dtype: DTypeLike | None = None) -> list[Array]:
    """Inverted-dropout masks for a mini-batch of n samples: one m_l x n array per hidden layer,
    each entry 1/(1 - p) with probability 1 - p, else 0 (p: the drop probability, 0 <= p < 1)."""
    if not 0 <= p < 1:
        raise ValueError(f"the dropout probability must be in [0, 1), got {p}")
    mask_dtype: np.dtype[Any] = np.dtype(dtype or params["W"][0].dtype)
    return [np.multiply(rng.random((W.shape[0], n), mask_dtype) >= p, 1 / (1 - p),
                        dtype=mask_dtype)
            for W in params["W"][:-1]]


def relu(S: Array) -> Array:
    """max(0, S), in place. Against a row of zeros rather than the scalar 0: numpy's maximum
    has no vectorised loop for a scalar operand (timed in benchmarks/RESULTS.md, micro)."""
    return np.maximum(S, _constant((S.shape[1],), 0, S.dtype), out=S)


def row_sum(A: Array, out: Array | None = None) -> Array:
    """A 1: the m x 1 row sums of the m x n array A, as a product with a column of ones. For the
    50 x 100 arrays of a mini-batch this BLAS call is faster than A.sum(axis=1)
    (benchmarks/RESULTS.md, micro)."""
    return np.matmul(A, _constant((A.shape[1], 1), 1, A.dtype), out=out)


@functools.lru_cache(maxsize=32)
def _constant(shape: tuple[int, ...], value: int, dtype: np.dtype[Any]) -> Array:
    """A read-only array of `shape` filled with `value`: `row_sum`'s column of ones and `relu`'s
    row of zeros (cached: creating one costs about as much as the sum)."""
    constant = np.full(shape, value, dtype)
    constant.flags.writeable = False
    return constant


def softmax(S: Array) -> Array:
    """Column-wise softmax of S (K x n)."""
    P = S - S.max(axis=0, keepdims=True)
    np.exp(P, out=P)
    P /= P.sum(axis=0, keepdims=True)
    return P


def log_softmax(S: Array) -> Array:
    """Column-wise log-softmax of S (K x n), stable for large scores."""
    Z = S - S.max(axis=0, keepdims=True)
    Z -= np.log(np.exp(Z).sum(axis=0, keepdims=True))
    return Z


# ---------------------------------------------------------------------------------------------
# Backward pass
# ---------------------------------------------------------------------------------------------

def backward(params: Params, Y: Array, P: Array, cache: list[LayerCache], lam: float,
             out: Params | None = None) -> Params:
    """Gradients of the cost from the probabilities P (K x n) of a training-mode forward pass.

    Returns a dict with the structure of `params`; with `out` (such a dict of arrays, e.g. views
    into one flat vector) the gradients are written into its arrays and `out` is returned.
    Follows the assignment's equations; the BN backward pass is written with per-row factors so
    that each m x n array is touched once.
    """
    W, gamma = params["W"], params["gamma"]
    n = Y.shape[1]
    # Without `out`: None placeholders, each replaced below, before anything reads it, by the
    # array that its numpy call (given out=None) allocates
    grads: Params = out if out is not None else {
        name: [None] * len(params[name]) for name in PARAM_NAMES}  # type: ignore[list-item]
    G: Array = P - Y                                          # G = -(Y - P)
    G /= n                                                    # the 1/n of every mean below
    for l in range(len(W) - 1, -1, -1):
        if l < len(W) - 1:                                    # back through hidden layer l
            G = W[l + 1].T @ G                                # dJ/dx of hidden layer l
            c = cache[l]
            if c.mask is not None:
                G *= c.mask                                   # dropout
            if c.D is not None and c.bn_after:
                G = _bn_backward(G, c, gamma[l], grads, l, n)
            if c.R is not None:                               # no ReLU in a linear layer
                G *= c.R > 0                                  # ReLU mask: x > 0
            if c.D is not None and not c.bn_after:
                G = _bn_backward(G, c, gamma[l], grads, l, n)
        dW = grads["W"][l] = np.matmul(G, cache[l].H.T, out=grads["W"][l])
        if lam:
            dW += (2 * lam) * W[l]
        grads["b"][l] = row_sum(G, out=grads["b"][l])        # G 1
    return grads


def _bn_backward(G: Array, layer_cache: LayerCache, gamma: Array, grads: Params, l: int,
                 n: int) -> Array:
    """BN backward for hidden layer l. G (m x n) is dJ/ds_tilde already divided by n.

    The assignment's steps: dgamma = (G * S_hat) 1, dbeta = G 1; G = G * gamma; with
    s1 = (v+eps)^-1/2, s2 = (v+eps)^-3/2, D = S - mu: G1 = G * s1, G2 = G * s2, c = (G2 * D) 1,
    G = G1 - (G1 1)/n - D * c/n. Since S_hat = D * s1, all of it needs only the two row sums
    G 1 and (G * D) 1, and G = G * (gamma s1) - D * (gamma s2 c'/n) - gamma s1 (G 1)/n.
    """
    D, s1 = layer_cache.D, layer_cache.inv_std
    assert D is not None and s1 is not None                  # a BN layer's cache
    g_sum = grads["beta"][l] = row_sum(G, out=grads["beta"][l])           # G 1
    gd_sum = row_sum(G * D)                                                 # (G * D) 1
    grads["gamma"][l] = np.multiply(gd_sum, s1, out=grads["gamma"][l])      # (G * S_hat) 1
    a = gamma * s1                                            # multiplies G
    c = a * (s1 * s1) * (gd_sum / n)                          # multiplies D (s2 = s1^3)
    G *= a                                                    # G is the caller's temporary
    G -= D * c
    G -= a * (g_sum / n)
    return G


def compute_gradients(params: Params, X: Array, Y: Array, lam: float, *, net: Net = Net(),
                      masks: list[Array] | None = None) -> Params:
    """Analytic gradients of the cost on the mini-batch X (d x n), Y (K x n), BN in training
    mode (mini-batch statistics), wired as `net`, with the given dropout masks (or none).
    Returns a dict with the structure of `params`."""
    check_input(params, X, Y, lam=lam, net=net, masks=masks)
    S, cache, _ = forward_unchecked(params, X, net=net, masks=masks)
    return backward(params, Y, softmax(S), cache, lam)
