"""The optimiser: the learning-rate schedules, the parameters as one flat vector, one update step
of mini-batch gradient descent (plain, momentum or Nesterov), and the BN moving averages."""
import numpy as np

from .checks import PARAM_NAMES
from .network import backward, forward_unchecked, softmax
from .swa import add_to_average
from .types import Array, Params, Stats

#: Decay of the BN moving averages: mu_av = a mu_av + (1 - a) mu, the same for v.
BN_ALPHA = 0.9

#: Entries per block of the momentum update (256 KB of float32, held in the L2 cache).
UPDATE_BLOCK = 1 << 16


class DivergenceError(RuntimeError):
    """Training produced a NaN or infinite cost."""

    def __init__(self, step: int, cost: float, eta: float) -> None:
        self.step, self.cost, self.eta = step, cost, eta
        super().__init__(self.message())

    def message(self, eta_max: str = "eta_max", lam: str = "lam",
                init: str = "initial weight scale") -> str:
        """What happened and what to do, naming the settings as the caller does (the command
        line: by their options)."""
        return (f"training diverged at step {self.step}: mini-batch cost is {self.cost} "
                f"(learning rate {self.eta:.3g}); lower {eta_max} or {lam}, or use a smaller "
                f"{init}")

    def __reduce__(self) -> tuple[type, tuple[int, float, float]]:
        return type(self), (self.step, self.cost, self.eta)   # pickled with its fields


def cyclic_lr(t: int, eta_min: float = 1e-5, eta_max: float = 1e-1, n_s: int = 2250) -> float:
    """Triangular cyclical learning rate at update step t (0-based): it rises linearly from
    eta_min to eta_max over n_s steps, falls back over the next n_s, and repeats."""
    c = t % (2 * n_s)
    if c <= n_s:
        return eta_min + c / n_s * (eta_max - eta_min)
    return eta_max - (c - n_s) / n_s * (eta_max - eta_min)


def one_cycle_lr(t: int, total: int, eta_min: float = 1e-5, eta_max: float = 1e-1,
                 warmup: float = 0.2) -> float:
    """One-cycle learning rate at update step t (0-based) of a run of `total` steps: it rises
    linearly from eta_min to eta_max over the first `warmup` fraction of the run, then falls
    linearly to 0 at the end."""
    w = warmup * total
    if t < w:
        return eta_min + t / w * (eta_max - eta_min)
    return eta_max * (total - t) / (total - w)


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


class FlatParams:
    """The parameters as views into one vector theta (the weights W first: `weights` views them
    all), and the gradients as views into a vector grad laid out the same, so that one
    operation updates every array. With `momentum`, also the velocity vector of that layout;
    with `average`, the vector of the averaged weights (`nn.swa`), `averaged` its dict of
    views."""

    def __init__(self, params: Params, momentum: bool = False, average: bool = False) -> None:
        self.theta, self.params = _flat_copy(params)
        self.grad, self.grads = _flat_copy(params)
        n_weights = sum(W.size for W in params["W"])
        self.weights, self.weight_grad = self.theta[:n_weights], self.grad[:n_weights]
        self.velocity = np.zeros_like(self.theta) if momentum else None
        self.average: Array | None = None
        self.averaged: Params | None = None
        if average:
            self.average, self.averaged = _flat_copy(params)

    def vectors(self) -> dict[str, Array]:
        """The optimiser's state vectors, by name, that a checkpoint keeps with the parameters:
        the momentum velocity and the averaged weights, if any."""
        return {name: v for name, v in (("velocity", self.velocity), ("average", self.average))
                if v is not None}

    def add_to_average(self, k: int) -> None:
        """Make the averaged weights the mean of k snapshots of theta, this one the k-th."""
        assert self.average is not None, "FlatParams(..., average=True) keeps an average"
        add_to_average(self.average, self.theta, k)

    def assign(self, params: Params, vectors: dict[str, Array]) -> None:
        """Copy the arrays of `params` and of the dict `vectors` (as `vectors()`) into place."""
        for name, views in self.params.items():
            for view, P in zip(views, params[name]):
                view[...] = P
        for name, v in self.vectors().items():
            v[...] = vectors[name]


def _flat_copy(params: Params) -> tuple[Array, Params]:
    """(vector, views): one contiguous vector holding a copy of every parameter array, and a
    dict like `params` whose arrays are views into it."""
    arrays = [P for name in PARAM_NAMES for P in params[name]]
    vector = np.empty(sum(P.size for P in arrays), arrays[0].dtype)
    views: Params = {}
    i = 0
    for name in PARAM_NAMES:
        views[name] = []
        for P in params[name]:
            view = vector[i:i + P.size].reshape(P.shape)
            view[...] = P
            views[name].append(view)
            i += P.size
    return vector, views


def step(flat: FlatParams, Xb: Array, Yb: Array, eta: float, *, lam: float,
         momentum: float = 0.0, nesterov: bool = False, bn_order: str = "before",
         masks: list[Array] | None = None, t: int = 0, linear: int = 0) -> Stats:
    """One update of `flat` on the mini-batch Xb (d x n), Yb (K x n) with the gradient g of the
    cost (dropout `masks` or None; t: the step's 0-based number, for the divergence message).
    `linear`: hidden layers without a ReLU. Returns the mini-batch's BN statistics.

    Plain gradient descent: theta -= eta g. The cost's gradient is the loss's (`backward` with
    lam = 0) plus 2 lam W for the weights; that second term is applied as W *= 1 - 2 eta lam:
    the same update, without a temporary the size of W_1 (benchmarks/RESULTS.md, micro).
    With momentum mu: v = mu v + g, then theta -= eta v, or with Nesterov theta -= eta (g + mu v)
    (the form PyTorch's SGD uses)."""
    S, cache, batch_stats = forward_unchecked(flat.params, Xb, bn_order=bn_order, masks=masks,
                                              linear=linear)
    P = softmax(S)
    check_finite(P, t, eta)
    backward(flat.params, Yb, P, cache, 0.0, out=flat.grads)  # gradient of the loss
    if flat.velocity is not None:
        _momentum_update(flat, eta, lam, momentum, nesterov)
        return batch_stats
    if lam:
        flat.weights *= 1 - 2 * eta * lam
    flat.grad *= eta                                          # theta -= eta * g, without
    flat.theta -= flat.grad                                   # a temporary
    return batch_stats


def _momentum_update(flat: FlatParams, eta: float, lam: float, mu: float,
                     nesterov: bool) -> None:
    """g += 2 lam W; v = mu v + g; theta -= eta v (Nesterov: theta -= eta (g + mu v)), on
    `flat`. These are seven passes over vectors of every parameter (15 MB each for a
    3072-1024-512-256-10 net), so they run block by block: each block stays in the cache through
    all seven, which makes the update of such a net faster (benchmarks/RESULTS.md, micro)."""
    assert flat.velocity is not None
    n_weights = flat.weights.size
    for i in range(0, flat.theta.size, UPDATE_BLOCK):
        g, v, theta = (a[i:i + UPDATE_BLOCK] for a in (flat.grad, flat.velocity, flat.theta))
        if lam and i < n_weights:
            w = slice(0, n_weights - i)
            g[w] += (2 * lam) * theta[w]
        v *= mu
        v += g
        if nesterov:
            g += mu * v
        else:
            g[...] = v
        g *= eta
        theta -= g


def check_finite(P: Array, t: int, eta: float) -> None:
    """Raise DivergenceError if the mini-batch probabilities P (K x n), so the cost, hold a NaN
    or inf."""
    if not np.isfinite(P.sum()):
        raise DivergenceError(t, float("nan"), eta)
