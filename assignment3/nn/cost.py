"""The cost, loss and accuracy of a network: J = mean cross-entropy + lam sum ||W||^2 on a
mini-batch (`compute_cost`, BN in training mode or with given statistics), and on whole data sets
in BN test mode (`evaluate`), with BN folded into the weights and the columns taken in chunks.
Notation as in `network`: X is d x n, Y K x n (one-hot or soft targets), y n labels."""
from collections.abc import Iterator

import numpy as np

from .network import BN_EPS, Net, check_input, forward_unchecked, log_softmax
from .types import Array, Labels, Params, Stats

#: Columns evaluated at once in test-mode passes over a whole data set: EVAL_CHUNK, or fewer
#: for a network so wide that a chunk's activations (c x the sum of its widths) would pass
#: EVAL_BYTES; so the peak is set by the network and a chunk, not by the data set.
EVAL_CHUNK = 10_000
EVAL_BYTES = 512 << 20

def l2_penalty(params: Params, lam: float) -> np.floating:
    """lam * sum_l ||W_l||^2 (weights only), in the parameters' precision."""
    return lam * sum((W * W).sum() for W in params["W"])


def cross_entropy_sum(S: Array, y: Labels) -> np.floating:
    """Sum over the columns of -log p_y, from the scores S (K x n) and labels y (n,)."""
    return -log_softmax(S)[y, np.arange(len(y))].sum()


def compute_cost(params: Params, X: Array, Y: Array, lam: float, stats: Stats | None = None, *,
                 net: Net = Net(), masks: list[Array] | None = None) -> np.floating:
    """Cost J = mean cross-entropy + lam sum ||W||^2 on X (d x n), Y (K x n), as a scalar of the
    parameters' dtype. Y is one-hot, or soft targets whose columns sum to 1 (label smoothing,
    MixUp): the cross-entropy of a column is then -sum_k y_k log p_k, and `backward`'s
    G = -(Y - P) is its gradient all the same. BN in training mode (`stats=None`, the batch's own
    statistics) or with the given moving averages; layers wired as `net`; dropout `masks` or
    none. For whole data sets use `evaluate`, which works in chunks."""
    check_input(params, X, Y, lam=lam, stats=stats, net=net, masks=masks)
    S, _, _ = forward_unchecked(params, X, stats, net=net, masks=masks)
    return -(Y * log_softmax(S)).sum() / X.shape[1] + l2_penalty(params, lam)


def evaluate(params: Params, X: Array, y: Labels, lam: float, stats: Stats | None, *,
             net: Net = Net()) -> dict[str, float]:
    """Loss, cost and accuracy on a data set X (d x n) with labels y (n,), BN in test mode with
    the moving averages `stats`, layers wired as `net`, in chunks of EVAL_CHUNK columns.
    Returns {"loss": mean cross-entropy, "cost": loss + lam sum ||W||^2, "accuracy": fraction}."""
    check_input(params, X, y=y, lam=lam, stats=stats, net=net)
    return evaluate_unchecked(params, X, np.asarray(y), lam, stats, net=net)


def evaluate_unchecked(params: Params, X: Array, y: Labels, lam: float, stats: Stats | None, *,
                       net: Net = Net()) -> dict[str, float]:
    """`evaluate` without the checks of its inputs that cost a pass over X (for the evaluations
    during training, whose inputs `train` checked once)."""
    loss_sum, correct = 0.0, 0
    for i, S in _test_mode_chunks(params, X, stats, net):
        yc = y[i:i + S.shape[1]]
        loss_sum += float(cross_entropy_sum(S, yc))
        correct += int(np.count_nonzero(S.argmax(axis=0) == yc))
    loss = loss_sum / X.shape[1]
    return {"loss": loss, "cost": loss + float(l2_penalty(params, lam)),
            "accuracy": correct / X.shape[1]}


def test_scores(params: Params, X: Array, stats: Stats | None, *, net: Net = Net()) -> Array:
    """Scores S (K x n) of X (d x n) in BN test mode (moving averages `stats`; layers wired as
    `net`), in chunks of EVAL_CHUNK columns."""
    check_input(params, X, stats=stats, net=net)
    return np.hstack([S for _, S in _test_mode_chunks(params, X, stats, net)])


def _test_mode_chunks(params: Params, X: Array, stats: Stats | None,
                      net: Net) -> Iterator[tuple[int, Array]]:
    """(i, S): the test-mode scores S (K x c) of the chunks X[:, i:i + c] of X (d x n), one
    chunk after another, c as EVAL_CHUNK and EVAL_BYTES say."""
    if params["gamma"] and stats is None:
        raise ValueError("a BN network needs the moving averages (stats) for evaluation")
    folded = _test_mode_params(params, stats or [], net.bn_order)
    width = sum(W.shape[0] for W in params["W"])
    c = max(1, min(EVAL_CHUNK, EVAL_BYTES // (X.itemsize * width)))
    for i in range(0, X.shape[1], c):
        yield i, forward_unchecked(folded, X[:, i:i + c], net=net)[0]


def _test_mode_params(params: Params, stats: Stats, bn_order: str = "before") -> Params:
    """The parameters of the network in BN test mode, with BN folded into W and b (no gamma and
    beta left: `forward` of them is the test-mode pass, with `net`'s ReLUs). With
    fixed statistics BN is an affine map per unit, x -> a x + c with a = gamma / sqrt(v + eps)
    and c = beta - a mu. Before the ReLU it folds into its own layer: W' = a W,
    b' = a (b - mu) + beta. After the ReLU it folds into the next layer's input:
    W'_(l+1) = W_(l+1) diag(a), b'_(l+1) = b_(l+1) + W_(l+1) c. Same scores up to rounding,
    with three passes fewer over each m x n array than `forward` with `stats` and no new ones.
    Without BN: the weights and biases themselves."""
    W, b = list(params["W"]), list(params["b"])
    for l, (gamma, beta) in enumerate(zip(params["gamma"], params["beta"])):
        mu, v = stats[l]
        a = gamma / np.sqrt(v + BN_EPS)
        if bn_order == "before":
            W[l], b[l] = a * W[l], a * (b[l] - mu) + beta
        else:
            W[l + 1], b[l + 1] = W[l + 1] * a.T, b[l + 1] + W[l + 1] @ (beta - a * mu)
    return {"W": W, "b": b, "gamma": [], "beta": []}


def compute_accuracy(params: Params, X: Array, y: Labels, stats: Stats | None, *,
                     net: Net = Net()) -> float:
    """Fraction of the columns of X (d x n) whose arg-max score is the label y (BN: `stats`)."""
    return evaluate(params, X, y, 0.0, stats, net=net)["accuracy"]
