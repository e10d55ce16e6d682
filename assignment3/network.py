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

Two options beyond the assignment (keyword arguments of `forward`, `compute_cost`,
`compute_gradients`, `evaluate`): `bn_order="after"` puts BN after the ReLU (x = BN(max(0, s)))
instead of before it, and `masks` applies inverted dropout in training mode: one m_l x n mask per
hidden layer, entries 0 (dropped) or 1/(1 - p), multiplies that layer's output x. Masks are
passed in, not drawn here, so that a gradient check can hold them fixed (`dropout_masks` draws
them). Test mode uses no masks: inverted dropout needs no rescaling there.

BN statistics ("stats") are a list with one (mu, v) pair of m_l x 1 arrays per hidden layer. In
training mode (`stats=None`) each forward pass computes them from the mini-batch (variance divided
by n) and returns them; in test mode the caller passes the moving averages, which are only read.
"""
import functools
from typing import NamedTuple

import numpy as np

from .checks import (PARAM_NAMES, check_input, check_labels, check_lam, check_stats, is_int,
                     is_real)

#: The small constant added to the BN variance before the square root.
BN_EPS = 1e-10

#: Columns evaluated at once in test-mode passes over a whole data set (bounds memory).
EVAL_CHUNK = 10_000

BN_ORDERS = ("before", "after")


def init_params(dims, *, batch_norm, init="he", seed=None, dtype=np.float64):
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
    if not isinstance(batch_norm, (bool, np.bool_)):
        raise TypeError(f"batch_norm must be True or False, got {batch_norm!r}")
    if isinstance(seed, (bool, np.bool_)) or (is_int(seed) and seed < 0):
        raise ValueError(f"seed must be None, an integer >= 0 or a numpy Generator/SeedSequence, "
                         f"got {seed!r}")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        dtype = None
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, not {dtype}")
    rng = np.random.default_rng(seed)
    params = {"W": [], "b": [], "gamma": [], "beta": []}
    for l, (m_in, m_out) in enumerate(zip(dims[:-1], dims[1:])):
        W = rng.standard_normal((m_out, m_in)) * _init_sigma(init, m_in)
        params["W"].append(W.astype(dtype))
        params["b"].append(np.zeros((m_out, 1), dtype))
        if batch_norm and l < len(dims) - 2:
            params["gamma"].append(np.ones((m_out, 1), dtype))
            params["beta"].append(np.zeros((m_out, 1), dtype))
    return params


def _init_sigma(init, m_in):
    if init == "he":
        return np.sqrt(2.0 / m_in)
    if init == "xavier":
        return np.sqrt(1.0 / m_in)
    if not is_real(init):
        raise ValueError(f'init must be "he", "xavier" or a positive float sigma, not {init!r}')
    sigma = float(init)
    if not 0 < sigma < np.inf:
        raise ValueError(f"init sigma must be a finite number > 0, got {init!r}")
    return sigma


def uses_bn(params):
    """True if the network has BN layers."""
    return len(params["gamma"]) > 0


# ---------------------------------------------------------------------------------------------
# Forward pass
# ---------------------------------------------------------------------------------------------

class LayerCache(NamedTuple):
    """What `backward` needs of layer l: its input H (m_(l-1) x n); for a hidden layer also its
    BN values D = (BN input) - mu and inv_std = (v + eps)^-1/2 (None without BN), its ReLU
    output R, its dropout mask (or None) and whether BN comes after the ReLU."""
    H: np.ndarray
    D: np.ndarray | None = None
    inv_std: np.ndarray | None = None
    R: np.ndarray | None = None
    mask: np.ndarray | None = None
    bn_after: bool = False


def forward(params, X, stats=None, *, bn_order="before", masks=None):
    """Forward pass of X (d x n) to the scores S (K x n, before the softmax).

    Training mode (`stats=None`): BN uses the mini-batch statistics. Test mode: BN uses `stats`,
    a list of (mu, v) moving averages, never modified. `bn_order` and `masks` (dropout): see the
    module docstring. Returns (S, cache, batch_stats): the cache (one `LayerCache` per layer)
    holds what `backward` needs, `batch_stats` the (mu, v) the pass used, one pair per BN layer.
    """
    check_input(params, X)
    check_stats(params, stats)
    return forward_unchecked(params, X, stats, bn_order=bn_order, masks=masks)


def forward_unchecked(params, X, stats=None, *, bn_order="before", masks=None):
    """`forward` without the checks of its inputs that cost a pass over X (for the training
    loop, whose inputs `train` checked once)."""
    W, b, gamma, beta = (params[name] for name in PARAM_NAMES)
    bn = len(gamma) > 0
    bn_after = _checked_bn_order(bn_order) == "after"
    _check_masks(masks, W, X)
    cache, batch_stats = [], []
    H = X
    for l in range(len(W) - 1):
        S = W[l] @ H
        S += b[l]
        D = inv_std = None
        if bn and not bn_after:
            S, D, inv_std = _bn_forward(S, gamma[l], beta[l], stats, l, batch_stats)
        R = _relu(S)                                          # in place
        A = R
        if bn and bn_after:
            A, D, inv_std = _bn_forward(R, gamma[l], beta[l], stats, l, batch_stats)
        mask = None if masks is None else masks[l]
        if mask is not None:
            A = A * mask
        cache.append(LayerCache(H, D, inv_std, R, mask, bn_after))
        H = A
    S = W[-1] @ H
    S += b[-1]
    cache.append(LayerCache(H))
    return S, cache, batch_stats


def _bn_forward(S, gamma, beta, stats, l, batch_stats):
    """BN of S (m x n) with the batch's statistics (stats None; appended to batch_stats) or with
    stats[l]. Returns (s_tilde, D, inv_std), new arrays; S is not modified."""
    if stats is None:
        mu = _row_sum(S) / S.shape[1]
        D = S - mu                                            # D = S - mu
        v = _row_sum(D * D) / S.shape[1]                      # biased variance (/n)
    else:
        mu, v = stats[l]
        D = S - mu
    inv_std = 1.0 / np.sqrt(v + BN_EPS)                       # (v + eps)^-1/2
    # s_tilde = gamma * s_hat + beta with s_hat = D * inv_std, in one pass over D.
    S_tilde = D * (gamma * inv_std)
    S_tilde += beta
    batch_stats.append((mu, v))
    return S_tilde, D, inv_std


def _checked_bn_order(bn_order):
    if bn_order not in BN_ORDERS:
        raise ValueError(f'bn_order must be "before" or "after" (BN before or after the ReLU), '
                         f"not {bn_order!r}")
    return bn_order


def _check_masks(masks, W, X):
    if masks is None:
        return
    shapes = [(Wl.shape[0], X.shape[1]) for Wl in W[:-1]]
    got = [getattr(M, "shape", None) for M in masks]
    if got != shapes:
        raise ValueError(f"dropout masks must be one m_l x n array per hidden layer, shapes "
                         f"{shapes}; got {got}")


def dropout_masks(params, n, p, rng, dtype=None):
    """Inverted-dropout masks for a mini-batch of n samples: one m_l x n array per hidden layer,
    each entry 1/(1 - p) with probability 1 - p, else 0 (p: the drop probability, 0 <= p < 1)."""
    if not 0 <= p < 1:
        raise ValueError(f"the dropout probability must be in [0, 1), got {p}")
    dtype = np.dtype(dtype or params["W"][0].dtype)
    return [np.multiply(rng.random((W.shape[0], n), dtype) >= p, 1 / (1 - p), dtype=dtype)
            for W in params["W"][:-1]]


def _relu(S):
    """max(0, S), in place. Against a row of zeros rather than the scalar 0: numpy's maximum
    has no vectorised loop for a scalar operand (3x slower on a 50 x 10,000 array)."""
    return np.maximum(S, _zeros(S.shape[1], S.dtype), out=S)


def _row_sum(A, out=None):
    """A 1: the m x 1 row sums of the m x n array A, as a product with a column of ones. For the
    50 x 100 arrays of a mini-batch this BLAS call takes half the time of A.sum(axis=1)."""
    return np.matmul(A, _ones(A.shape[1], A.dtype), out=out)


@functools.lru_cache(maxsize=16)
def _ones(n, dtype):
    """A read-only n x 1 column of ones (cached: creating it costs as much as the sum)."""
    ones = np.ones((n, 1), dtype)
    ones.flags.writeable = False
    return ones


@functools.lru_cache(maxsize=16)
def _zeros(n, dtype):
    """A read-only row of n zeros (cached)."""
    zeros = np.zeros(n, dtype)
    zeros.flags.writeable = False
    return zeros


def softmax(S):
    """Column-wise softmax of S (K x n)."""
    P = S - S.max(axis=0, keepdims=True)
    np.exp(P, out=P)
    P /= P.sum(axis=0, keepdims=True)
    return P


def log_softmax(S):
    """Column-wise log-softmax of S (K x n), stable for large scores."""
    Z = S - S.max(axis=0, keepdims=True)
    Z -= np.log(np.exp(Z).sum(axis=0, keepdims=True))
    return Z


# ---------------------------------------------------------------------------------------------
# Backward pass
# ---------------------------------------------------------------------------------------------

def backward(params, Y, P, cache, lam, out=None):
    """Gradients of the cost from the probabilities P (K x n) of a training-mode forward pass.

    Returns a dict with the structure of `params`; with `out` (such a dict of arrays, e.g. views
    into one flat vector) the gradients are written into its arrays and `out` is returned.
    Follows the assignment's equations; the BN backward pass is written with per-row factors so
    that each m x n array is touched once.
    """
    W, gamma = params["W"], params["gamma"]
    n = Y.shape[1]
    grads = out if out is not None else {name: [None] * len(params[name]) for name in PARAM_NAMES}
    G = P - Y                                                 # G = -(Y - P)
    G /= n                                                    # the 1/n of every mean below
    for l in range(len(W) - 1, -1, -1):
        H = cache[l].H
        dW = grads["W"][l] = np.matmul(G, H.T, out=grads["W"][l])
        if lam:
            dW += (2 * lam) * W[l]
        grads["b"][l] = _row_sum(G, out=grads["b"][l])        # G 1
        if l == 0:
            break                                             # no gradient w.r.t. the input
        G = W[l].T @ G                                        # dJ/dx of hidden layer l - 1
        c = cache[l - 1]
        if c.mask is not None:
            G *= c.mask                                       # dropout
        if c.D is not None and c.bn_after:
            G = _bn_backward(G, c, gamma[l - 1], grads, l - 1, n)
        G *= c.R > 0                                          # ReLU mask: x > 0
        if c.D is not None and not c.bn_after:
            G = _bn_backward(G, c, gamma[l - 1], grads, l - 1, n)
    return grads


def _bn_backward(G, layer_cache, gamma, grads, l, n):
    """BN backward for hidden layer l. G (m x n) is dJ/ds_tilde already divided by n.

    The assignment's steps: dgamma = (G * S_hat) 1, dbeta = G 1; G = G * gamma; with
    s1 = (v+eps)^-1/2, s2 = (v+eps)^-3/2, D = S - mu: G1 = G * s1, G2 = G * s2, c = (G2 * D) 1,
    G = G1 - (G1 1)/n - D * c/n. Since S_hat = D * s1, all of it needs only the two row sums
    G 1 and (G * D) 1, and G = G * (gamma s1) - D * (gamma s2 c'/n) - gamma s1 (G 1)/n.
    """
    D, s1 = layer_cache.D, layer_cache.inv_std
    g_sum = grads["beta"][l] = _row_sum(G, out=grads["beta"][l])          # G 1
    gd_sum = _row_sum(G * D)                                                # (G * D) 1
    grads["gamma"][l] = np.multiply(gd_sum, s1, out=grads["gamma"][l])      # (G * S_hat) 1
    a = gamma * s1                                            # multiplies G
    c = a * (s1 * s1) * (gd_sum / n)                          # multiplies D (s2 = s1^3)
    G *= a                                                    # G is the caller's temporary
    G -= D * c
    G -= a * (g_sum / n)
    return G


def compute_gradients(params, X, Y, lam, *, bn_order="before", masks=None):
    """Analytic gradients of the cost on the mini-batch X (d x n), Y (K x n), BN in training
    mode (mini-batch statistics), with the given dropout masks (or none). Returns a dict with
    the structure of `params`."""
    check_input(params, X, Y)
    check_lam(lam)
    S, cache, _ = forward_unchecked(params, X, bn_order=bn_order, masks=masks)
    return backward(params, Y, softmax(S), cache, lam)


# ---------------------------------------------------------------------------------------------
# Cost, loss and accuracy
# ---------------------------------------------------------------------------------------------

def l2_penalty(params, lam):
    """lam * sum_l ||W_l||^2 (weights only), in the parameters' precision."""
    return lam * sum((W * W).sum() for W in params["W"])


def cross_entropy_sum(S, y):
    """Sum over the columns of -log p_y, from the scores S (K x n) and labels y (n,)."""
    return -log_softmax(S)[y, np.arange(len(y))].sum()


def compute_cost(params, X, Y, lam, stats=None, *, bn_order="before", masks=None):
    """Cost J = mean cross-entropy + lam sum ||W||^2 on X (d x n), Y (K x n), as a scalar of the
    parameters' dtype. Y is one-hot, or soft targets whose columns sum to 1 (label smoothing,
    MixUp): the cross-entropy of a column is then -sum_k y_k log p_k, and `backward`'s
    G = -(Y - P) is its gradient all the same. BN in training mode (`stats=None`, the batch's own
    statistics) or with the given moving averages; dropout `masks` or none. For whole data sets
    use `evaluate`, which works in chunks."""
    check_input(params, X, Y)
    check_lam(lam)
    check_stats(params, stats)
    S, _, _ = forward_unchecked(params, X, stats, bn_order=bn_order, masks=masks)
    return -(Y * log_softmax(S)).sum() / X.shape[1] + l2_penalty(params, lam)


def evaluate(params, X, y, lam, stats, *, bn_order="before"):
    """Loss, cost and accuracy on a data set X (d x n) with labels y (n,), BN in test mode with
    the moving averages `stats` (placed as `bn_order` says), in chunks of EVAL_CHUNK columns.
    Returns {"loss": mean cross-entropy, "cost": loss + lam sum ||W||^2, "accuracy": fraction}."""
    check_input(params, X)
    y = check_labels(y, X.shape[1], params["W"][-1].shape[0])
    check_lam(lam)
    check_stats(params, stats)
    return evaluate_unchecked(params, X, y, lam, stats, bn_order=bn_order)


def evaluate_unchecked(params, X, y, lam, stats, *, bn_order="before"):
    """`evaluate` without the checks of its inputs that cost a pass over X (for the evaluations
    during training, whose inputs `train` checked once)."""
    loss_sum, correct = 0.0, 0
    for i, S in _test_mode_chunks(params, X, stats, bn_order):
        yc = y[i:i + S.shape[1]]
        loss_sum += float(cross_entropy_sum(S, yc))
        correct += int(np.count_nonzero(S.argmax(axis=0) == yc))
    loss = loss_sum / X.shape[1]
    return {"loss": loss, "cost": loss + float(l2_penalty(params, lam)),
            "accuracy": correct / X.shape[1]}


def test_scores(params, X, stats, *, bn_order="before"):
    """Scores S (K x n) of X (d x n) in BN test mode (moving averages `stats`), in chunks of
    EVAL_CHUNK columns."""
    check_input(params, X)
    check_stats(params, stats)
    return np.hstack([S for _, S in _test_mode_chunks(params, X, stats, bn_order)])


def _test_mode_chunks(params, X, stats, bn_order):
    """(i, S): the test-mode scores S (K x c) of the chunks X[:, i:i + c], c <= EVAL_CHUNK, of
    X (d x n), one chunk after another (bounds memory on whole data sets)."""
    if uses_bn(params) and stats is None:
        raise ValueError("a BN network needs the moving averages (stats) for evaluation")
    W, b = _test_mode_layers(params, stats, _checked_bn_order(bn_order))
    for i in range(0, X.shape[1], EVAL_CHUNK):
        yield i, _test_mode_scores(W, b, X[:, i:i + EVAL_CHUNK])


def _test_mode_layers(params, stats, bn_order="before"):
    """The weights and biases of the network in BN test mode, with BN folded into them. With
    fixed statistics BN is an affine map per unit, x -> a x + c with a = gamma / sqrt(v + eps)
    and c = beta - a mu. Before the ReLU it folds into its own layer: W' = a W, b' = a (b - mu) + beta.
    After the ReLU it folds into the next layer's input: W'_(l+1) = W_(l+1) diag(a),
    b'_(l+1) = b_(l+1) + W_(l+1) c. Same scores up to rounding, with three passes fewer over each
    m x n array than `forward` and no new ones. Without BN: the parameters themselves."""
    W, b = list(params["W"]), list(params["b"])
    for l, (gamma, beta) in enumerate(zip(params["gamma"], params["beta"])):
        mu, v = stats[l]
        a = gamma / np.sqrt(v + BN_EPS)
        if bn_order == "before":
            W[l], b[l] = a * W[l], a * (b[l] - mu) + beta
        else:
            W[l + 1], b[l + 1] = W[l + 1] * a.T, b[l + 1] + W[l + 1] @ (beta - a * mu)
    return W, b


def _test_mode_scores(W, b, X):
    """Scores S (K x n) of X (d x n) from the layers of `_test_mode_layers`."""
    H = X
    for l in range(len(W) - 1):
        S = W[l] @ H
        S += b[l]
        H = _relu(S)
    S = W[-1] @ H
    S += b[-1]
    return S


def compute_accuracy(params, X, y, stats, *, bn_order="before"):
    """Fraction of the columns of X (d x n) whose arg-max score is the label y (BN: `stats`)."""
    return evaluate(params, X, y, 0.0, stats, bn_order=bn_order)["accuracy"]
