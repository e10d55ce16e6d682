"""Stochastic weight averaging (SWA, Izmailov et al. 2018) within a run's own schedule: the mean
of the weights at the end of each epoch of the run's last part, and the BN statistics recomputed
for those averaged weights (the moving averages belong to the weights they were gathered with).
It costs no training steps: one pass over the weights per epoch, and one forward pass over the
training set at the end."""
import numpy as np

from .network import Net, forward_unchecked
from .types import Array, Params, Stats


def window_start(total: int, fraction: float) -> int:
    """The step (counted after its update) after which the last `fraction` of a run of `total`
    steps begins: the averaged part of `snapshot_steps`, and SWA's constant learning rate."""
    return total - int(round(fraction * total))


def snapshot_steps(total: int, batches: int, fraction: float) -> dict[int, int]:
    """{step: k} for the steps (counted after their update) whose weights enter the average,
    k = 1, 2, ...: the end of every epoch (a multiple of `batches` steps) and the last step,
    within the last `fraction` of the `total` steps; at least the last step."""
    first = window_start(total, fraction)
    steps = [s for s in range(first + 1, total + 1) if s % batches == 0 or s == total]
    return {s: k for k, s in enumerate(steps or [total], start=1)}


def add_to_average(average: Array, theta: Array, k: int) -> None:
    """Make `average` the mean of k vectors: the mean of the first k - 1 and `theta` (in place;
    k = 1 copies theta)."""
    if k == 1:
        average[...] = theta
    else:
        average += (theta - average) / k


def bn_statistics(params: Params, X: Array, n_batch: int, net: Net = Net()) -> Stats:
    """The BN statistics of `params` (layers wired as `net`) on X (d x n): the
    mean over X's consecutive mini-batches of n_batch columns (a last partial one is dropped) of
    each BN layer's batch (mu, v), as training mode computes them, without dropout; in X's
    dtype. [] for a net without BN."""
    sums: list[tuple[Array, Array]] = []
    batches = X.shape[1] // n_batch
    for i in range(0, batches * n_batch, n_batch):
        _, _, batch = forward_unchecked(params, X[:, i:i + n_batch], net=net)
        if not sums:
            sums = [(np.zeros(mu.shape), np.zeros(v.shape)) for mu, v in batch]
        for (mu_sum, v_sum), (mu, v) in zip(sums, batch):
            mu_sum += mu
            v_sum += v
    return [((mu_sum / batches).astype(X.dtype), (v_sum / batches).astype(X.dtype))
            for mu_sum, v_sum in sums]
