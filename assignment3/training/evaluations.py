"""The evaluations of a run on train and val while it trains, in a background thread, each
appending to the history and then writing the run's checkpoint."""
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ..config import Config
from ..data import CIFAR10
from ..nn.cost import evaluate_unchecked
from ..nn.optim import DivergenceError
from .run import Checkpointer, History, State


class Evaluations:
    """The evaluations on train and val during training. Each runs in a background thread, on a
    copy of the parameters and moving averages, while training goes on; on two cores they then
    add almost nothing to the wall time (they are ~1/3 of the work of a default run). They
    append their results to the history in order; a non-finite training cost raises
    DivergenceError (from `check`). With a checkpoint, each evaluation then writes the run's
    state at its step, with the history up to it, in the same thread: the writes (and their
    flush to disk) overlap training too. Training waits for the oldest evaluation rather than
    queue more than MAX_PENDING: where the evaluations take longer than the steps between them,
    it stays near them (an interrupt stops the run soon after the signal, and copies of the
    parameters do not pile up)."""

    MAX_PENDING = 2

    def __init__(self, data: CIFAR10, config: Config, history: History,
                 checkpoint: Checkpointer | None = None) -> None:
        self.data, self.config = data, config
        self.history, self.checkpoint = history, checkpoint
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending: deque[Future[None]] = deque()

    def __enter__(self) -> "Evaluations":
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, eta: float, state: State) -> None:
        """Evaluate the parameters and moving averages of `state` (copies, at its step, after a
        step with learning rate eta); with a checkpoint, write `state` after."""
        while len(self.pending) >= self.MAX_PENDING:
            self.pending.popleft().result()
        self.pending.append(self.pool.submit(self._evaluate, eta, state))

    def check(self, wait: bool = False) -> None:
        """Raise the error of an evaluation done so far, or (with `wait`) of any of them."""
        while self.pending and (wait or self.pending[0].done()):
            self.pending.popleft().result()

    def _evaluate(self, eta: float, state: State) -> None:
        stats, config = state.stats or None, self.config
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            tr, va = (evaluate_unchecked(state.params, split.X, split.y, config.lam, stats,
                                         net=config.net)
                      for split in (self.data.train, self.data.val))
        if not np.isfinite(tr["cost"]):
            raise DivergenceError(state.step, tr["cost"], eta)
        _append(self.history, state.step, eta, tr, va)
        if self.checkpoint:
            self.checkpoint.save(state)


def _append(history: History, t: int, eta: float, tr: dict[str, float],
            va: dict[str, float]) -> None:
    """Append one evaluation on train (tr) and val (va) after step t to the history."""
    history["step"].append(t)
    history["eta"].append(eta)
    for split, res in (("train", tr), ("val", va)):
        history[f"cost_{split}"].append(res["cost"])
        history[f"loss_{split}"].append(res["loss"])
        history[f"acc_{split}"].append(res["accuracy"])
