"""Training: the cyclical learning rate, mini-batch gradient descent with reshuffling every
epoch, BN moving averages, and the history of cost, loss and accuracy."""
import sys
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .network import backward, evaluate, forward, init_params, softmax, uses_bn

#: Decay of the BN moving averages: mu_av = a mu_av + (1 - a) mu, the same for v.
BN_ALPHA = 0.9


class DivergenceError(RuntimeError):
    """Training produced a NaN or infinite cost."""

    def __init__(self, step, cost, eta):
        self.step, self.cost, self.eta = step, cost, eta
        super().__init__(f"training diverged at step {step}: mini-batch cost is {cost} "
                         f"(learning rate {eta:.3g}); lower eta_max or lam, or use a smaller "
                         f"initial weight scale")


def cyclic_lr(t, eta_min=1e-5, eta_max=1e-1, n_s=2250):
    """Triangular cyclical learning rate at update step t (0-based): it rises linearly from
    eta_min to eta_max over n_s steps, falls back over the next n_s, and repeats."""
    c = t % (2 * n_s)
    if c <= n_s:
        return eta_min + c / n_s * (eta_max - eta_min)
    return eta_max - (c - n_s) / n_s * (eta_max - eta_min)


@dataclass(frozen=True)
class Config:
    """One training run. The defaults are the assignment's."""
    hidden: tuple = (50, 50)          # m_1, ..., m_(k-1)
    batch_norm: bool = True
    lam: float = 0.005
    n_batch: int = 100
    eta_min: float = 1e-5
    eta_max: float = 1e-1
    n_s: int | None = None            # None: 5 epochs, 5 * (n // n_batch) steps
    cycles: float = 2
    init: object = "he"               # "he", "xavier" or a float sigma
    seed: int = 0
    dtype: str = "float32"
    evals_per_cycle: int = 10

    def __post_init__(self):
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden must list at least one layer size >= 1, got {self.hidden}")
        if self.lam < 0 or self.n_batch < 1 or self.cycles <= 0 or self.evals_per_cycle < 1:
            raise ValueError("need lam >= 0, n_batch >= 1, cycles > 0 and evals_per_cycle >= 1; "
                             f"got lam={self.lam}, n_batch={self.n_batch}, cycles={self.cycles}, "
                             f"evals_per_cycle={self.evals_per_cycle}")
        if not 0 < self.eta_min <= self.eta_max:
            raise ValueError(f"need 0 < eta_min <= eta_max, got {self.eta_min}, {self.eta_max}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f'dtype must be "float32" or "float64", not {self.dtype!r}')

    def with_(self, **changes):
        """A copy with some fields changed."""
        return replace(self, **changes)


@dataclass
class Result:
    """What a run returns: the trained parameters, the BN moving averages, the history (one
    entry per evaluation: step, eta, cost/loss/accuracy on train and val) and the final scores."""
    config: Config
    params: dict
    stats: list
    history: dict = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0
    val_accuracy: float = float("nan")
    test_accuracy: float = float("nan")

    def summary(self):
        """The run's scalar results and its configuration, as plain JSON-ready values."""
        return {"test_accuracy": self.test_accuracy, "val_accuracy": self.val_accuracy,
                "steps": self.steps, "seconds": round(self.seconds, 2),
                "config": {k: (list(v) if isinstance(v, tuple) else v)
                           for k, v in asdict(self.config).items()}}


def update_moving_averages(stats_av, batch_stats, alpha=BN_ALPHA):
    """The BN moving averages after one mini-batch, started from the first batch's statistics."""
    if stats_av is None:
        return [(mu.copy(), v.copy()) for mu, v in batch_stats]
    for (mu_av, v_av), (mu, v) in zip(stats_av, batch_stats):
        mu_av *= alpha
        mu_av += (1 - alpha) * mu
        v_av *= alpha
        v_av += (1 - alpha) * v
    return stats_av


def train(data, config=Config(), progress=False):
    """Train a network on `data` (a `CIFAR10`: train, val, test splits, X d x n) with mini-batch
    gradient descent and the cyclical learning rate. Evaluates on train and val about
    `evals_per_cycle` times per cycle with the BN moving averages, then on test.
    Raises DivergenceError if the cost becomes NaN or infinite."""
    dtype = np.dtype(config.dtype)
    X_tr, y_tr = data.train.X, data.train.y
    if X_tr.dtype != dtype:
        raise ValueError(f"data is {X_tr.dtype} but config.dtype is {dtype}: load the data with "
                         f"load_cifar10(dtype=np.{dtype})")
    d, n = X_tr.shape
    K = int(data.train.Y.shape[0])
    batches = n // config.n_batch          # a last partial mini-batch is dropped every epoch
    if batches < 1:
        raise ValueError(f"n_batch = {config.n_batch} exceeds the {n} training samples")
    n_s = config.n_s or 5 * batches
    total = int(round(2 * n_s * config.cycles))
    eval_every = max(1, (2 * n_s) // config.evals_per_cycle)

    params = init_params([d, *config.hidden, K], batch_norm=config.batch_norm,
                         init=config.init, seed=config.seed, dtype=dtype)
    rng = np.random.default_rng([config.seed, 1])     # shuffling; independent of the init draw
    X_rows = X_tr.T                                      # n x d: a mini-batch is a row gather
    Y_rows = data.train.Y.T
    history = {key: [] for key in ("step", "eta", "cost_train", "loss_train", "acc_train",
                                   "cost_val", "loss_val", "acc_val")}
    stats_av = None
    start = time.perf_counter()
    t = 0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        while t < total:
            order = rng.permutation(n)
            for j in range(batches):
                if t == total:
                    break
                idx = order[j * config.n_batch:(j + 1) * config.n_batch]
                Xb, Yb = X_rows[idx].T, Y_rows[idx].T        # d x n_batch, K x n_batch
                eta = cyclic_lr(t, config.eta_min, config.eta_max, n_s)
                S, cache, batch_stats = forward(params, Xb)
                P = softmax(S)
                _check_finite(P, t, eta)
                grads = backward(params, Yb, P, cache, config.lam)
                for name, plist in params.items():
                    for p, g in zip(plist, grads[name]):
                        p -= eta * g
                if uses_bn(params):
                    stats_av = update_moving_averages(stats_av, batch_stats)
                t += 1
                if t % eval_every == 0 or t == total:
                    _record(history, params, stats_av, data, config.lam, t, eta)
                    if progress:
                        _report(history, total, time.perf_counter() - start)
    seconds = time.perf_counter() - start
    return Result(config=config, params=params, stats=stats_av or [], history=history, steps=t,
                  seconds=seconds, val_accuracy=history["acc_val"][-1],
                  test_accuracy=evaluate(params, data.test.X, data.test.y, 0.0,
                                         stats_av)["accuracy"])


def _check_finite(P, t, eta):
    """Raise DivergenceError if the mini-batch probabilities (so the cost) hold a NaN or inf."""
    if not np.isfinite(P.sum()):
        raise DivergenceError(t, float("nan"), eta)


def _record(history, params, stats, data, lam, t, eta):
    """Append one evaluation on train and val to the history."""
    tr = evaluate(params, data.train.X, data.train.y, lam, stats)
    va = evaluate(params, data.val.X, data.val.y, lam, stats)
    if not np.isfinite(tr["cost"]):
        raise DivergenceError(t, tr["cost"], eta)
    history["step"].append(t)
    history["eta"].append(eta)
    for split, res in (("train", tr), ("val", va)):
        history[f"cost_{split}"].append(res["cost"])
        history[f"loss_{split}"].append(res["loss"])
        history[f"acc_{split}"].append(res["accuracy"])


def _report(history, total, seconds):
    """One progress line on stderr."""
    t = history["step"][-1]
    print(f"step {t:6d}/{total}  eta {history['eta'][-1]:.4f}  "
          f"cost {history['cost_train'][-1]:.3f}  acc train {history['acc_train'][-1]:.4f}  "
          f"val {history['acc_val'][-1]:.4f}  {seconds:6.1f} s", file=sys.stderr, flush=True)
