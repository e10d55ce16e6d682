"""The optimiser: the learning-rate schedules, the parameters as one flat vector, and one step of
mini-batch training with an update rule, a small frozen value with the rule's settings and one
`apply` method (cs231n's one function per update rule): `SGD`, plain or with (Nesterov)
momentum, and `AdamW`. `UPDATE_RULES` names them for `Config.optimizer`."""
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..errors import Error
from .checks import PARAM_NAMES
from .network import Net, backward, forward_unchecked, softmax
from .swa import add_to_average
from .types import Array, Params, Stats

#: Entries per block of the momentum update (256 KB of float32, held in the L2 cache).
UPDATE_BLOCK = 1 << 16


class DivergenceError(Error, RuntimeError):
    """Training produced a NaN or infinite cost at `step` (learning rate `eta`)."""
    step: int
    cost: float
    eta: float

    def __init__(self, step: int, cost: float, eta: float) -> None:
        super().__init__("training diverged at step {step}: mini-batch cost is {cost} (learning "
                         "rate {eta:.3g}); lower {0} or {1}, or use a smaller {2}", "eta_max",
                         "lam", "init", step=step, cost=cost, eta=eta)


def cyclic_lr(t: int, eta_min: float = 1e-5, eta_max: float = 1e-1, n_s: int = 2250) -> float:
    """Triangular cyclical learning rate at update step t (0-based): it rises linearly from
    eta_min to eta_max over n_s steps, falls back over the next n_s, and repeats."""
    c = t % (2 * n_s)
    if c <= n_s:
        return eta_min + c / n_s * (eta_max - eta_min)
    return eta_max - (c - n_s) / n_s * (eta_max - eta_min)


def one_cycle_lr(t: int, total: int, eta_min: float = 1e-5, eta_max: float = 1e-1,
                 warmup: float = 0.2, hold: tuple[int, float] | None = None) -> float:
    """One-cycle learning rate at update step t (0-based) of a run of `total` steps: it rises
    linearly from eta_min to eta_max over the first `warmup` fraction of the run, then falls
    linearly to 0 at the end; with `hold` = (step, eta), it falls to eta at that step instead
    and holds it to the end (SWA's constant learning rate, Izmailov et al. 2018)."""
    w = warmup * total
    if t < w:
        return eta_min + t / w * (eta_max - eta_min)
    end, eta_end = hold or (total, 0.0)
    if t >= end:
        return eta_end
    return eta_end + (eta_max - eta_end) * (end - t) / (end - w)


class FlatParams:
    """The parameters as views into one vector theta (the weights W first: `weights` views them
    all), and the gradients as views into a vector grad laid out the same, so that one
    operation updates every array. `state`: the update rule's vectors of that layout by name
    (`Update.state`, e.g. the momentum velocity); with `average`, the vector of the averaged
    weights (`nn.swa`), `averaged` its dict of views."""

    def __init__(self, params: Params, state: tuple[str, ...] = (), average: bool = False) -> None:
        self.theta, self.params = _flat_copy(params)
        self.grad, self.grads = _flat_copy(params)
        n_weights = sum(W.size for W in params["W"])
        self.weights, self.weight_grad = self.theta[:n_weights], self.grad[:n_weights]
        self.state = {name: np.zeros_like(self.theta) for name in state}
        self.average: Array | None = None
        self.averaged: Params | None = None
        if average:
            self.average, self.averaged = _flat_copy(params)

    def vectors(self) -> dict[str, Array]:
        """The optimiser's state vectors, by name, that a checkpoint keeps with the parameters:
        the update rule's and the averaged weights, if any."""
        return {**self.state, **({} if self.average is None else {"average": self.average})}

    def add_to_average(self, k: int) -> None:
        """Make the averaged weights the mean of k snapshots of theta, this one the k-th."""
        assert self.average is not None, "FlatParams(..., average=True) keeps an average"
        add_to_average(self.average, self.theta, k)

    def assign(self, params: Params, vectors: dict[str, Array]) -> None:
        """Copy the arrays of `params` and of the dict `vectors` (as `vectors()`) into place."""
        self.theta[...] = _flat_copy(params)[0]
        for name, v in self.vectors().items():
            v[...] = vectors[name]


def _flat_copy(params: Params) -> tuple[Array, Params]:
    """(vector, views): one contiguous vector holding a copy of every parameter array, one after
    another in the order of PARAM_NAMES (in the first one's dtype), and a dict like `params`
    whose arrays are views into it."""
    arrays = [P for name in PARAM_NAMES for P in params[name]]
    vector = np.concatenate([P.ravel() for P in arrays], dtype=arrays[0].dtype)
    pieces = iter(np.split(vector, np.cumsum([P.size for P in arrays[:-1]])))
    return vector, {name: [next(pieces).reshape(P.shape) for P in params[name]]
                    for name in PARAM_NAMES}


class Update(Protocol):
    """An update rule: its settings, the names of the vectors it keeps (laid out as theta, in
    `FlatParams.state`), and `apply`, which updates theta from the gradient of the loss in
    `flat.grad` (the rule adds the weights' lam term) at step t (0-based) with learning rate
    eta."""
    @property
    def state(self) -> tuple[str, ...]: ...

    def apply(self, flat: FlatParams, eta: float, t: int) -> None: ...


@dataclass(frozen=True)
class SGD:
    """Mini-batch gradient descent on the cost J with lam sum ||W||^2: theta -= eta g. The
    weights' 2 lam W is applied as W *= 1 - 2 eta lam: the same update, without a temporary the
    size of W_1 (benchmarks/RESULTS.md, micro). With momentum mu: v = mu v + g, then
    theta -= eta v, or with Nesterov theta -= eta (g + mu v) (the form PyTorch's SGD uses).
    Built by `Config.update`, which checks its settings."""
    lam: float = 0.0
    momentum: float = 0.0
    nesterov: bool = False

    @property
    def state(self) -> tuple[str, ...]:
        return ("velocity",) if self.momentum else ()

    def apply(self, flat: FlatParams, eta: float, t: int) -> None:
        if self.momentum:
            self._momentum_update(flat, eta)
            return
        if self.lam:
            flat.weights *= 1 - 2 * eta * self.lam
        flat.grad *= eta                                      # theta -= eta * g, without
        flat.theta -= flat.grad                               # a temporary

    def _momentum_update(self, flat: FlatParams, eta: float) -> None:
        """g += 2 lam W; v = mu v + g; theta -= eta v (Nesterov: theta -= eta (g + mu v)).
        These are seven passes over vectors of every parameter (15 MB each for a
        3072-1024-512-256-10 net), so they run block by block: each block stays in the cache
        through all seven, which makes the update of such a net faster (benchmarks/RESULTS.md,
        micro)."""
        lam, mu, n_weights = self.lam, self.momentum, flat.weights.size
        for i in range(0, flat.theta.size, UPDATE_BLOCK):
            g, v, theta = (a[i:i + UPDATE_BLOCK]
                           for a in (flat.grad, flat.state["velocity"], flat.theta))
            if lam and i < n_weights:
                w = slice(0, n_weights - i)
                g[w] += (2 * lam) * theta[w]
            v *= mu
            v += g
            if self.nesterov:
                g += mu * v
            else:
                g[...] = v
            g *= eta
            theta -= g


@dataclass(frozen=True)
class AdamW:
    """Adam with decoupled weight decay (Loshchilov and Hutter 2019), in PyTorch's form: with g
    the gradient of the cost (the loss's, plus 2 lam W if lam), W *= 1 - eta weight_decay (the
    weights only, as lam), m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2, then
    theta -= (eta / c1) m / (sqrt(v) / sqrt(c2) + eps), c1 = 1 - beta1^(t+1) and
    c2 = 1 - beta2^(t+1) correcting the moments' start from 0. Built by `Config.update`."""
    lam: float = 0.0
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    state = ("m", "v")

    def apply(self, flat: FlatParams, eta: float, t: int) -> None:
        g, m, v = flat.grad, flat.state["m"], flat.state["v"]
        if self.lam:
            flat.weight_grad += (2 * self.lam) * flat.weights
        if self.weight_decay:
            flat.weights *= 1 - eta * self.weight_decay
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * (g * g)
        c1, c2 = 1 - self.beta1 ** (t + 1), 1 - self.beta2 ** (t + 1)
        denominator = np.sqrt(v)
        denominator /= np.sqrt(c2)
        denominator += self.eps
        np.divide(m, denominator, out=g)
        g *= eta / c1
        flat.theta -= g


#: The update rules by the name `Config.optimizer` gives them.
UPDATE_RULES = {"sgd": SGD, "adamw": AdamW}


def step(flat: FlatParams, Xb: Array, Yb: Array, eta: float, t: int, update: Update, *,
         net: Net = Net(), masks: list[Array] | None = None) -> Stats:
    """One step of training at step t (0-based) with learning rate eta: the gradient of the loss
    on the mini-batch Xb (d x n), Yb (K x n) (layers wired as `net`, dropout `masks` or None)
    into `flat.grad`, then `update.apply`. Returns the mini-batch's BN statistics; raises
    DivergenceError if the cost is not finite."""
    S, cache, batch_stats = forward_unchecked(flat.params, Xb, net=net, masks=masks)
    P = softmax(S)
    if not np.isfinite(P.sum()):                              # a NaN or inf: so is the cost
        raise DivergenceError(t, float("nan"), eta)
    backward(flat.params, Yb, P, cache, 0.0, out=flat.grads)  # gradient of the loss
    update.apply(flat, eta, t)
    return batch_stats
