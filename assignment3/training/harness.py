"""A training run in progress (`Run`): its parameters (flat, with the update rule's vectors), the
BN moving averages, the history of its evaluations, the steps done and where its input stream
stands; what a checkpoint keeps of it (`State`, kept by a `Checkpointer`); and what `train` runs
beside the steps of its loop, entered as one context (`Harness`): numpy's overflow warnings off,
the BLAS thread limit, the evaluations on train and val in a background thread (each then writing
the checkpoint), the thread that prepares the next mini-batch, the stop signals and the progress
bar."""
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ..config import Config
from ..data import CIFAR10
from ..nn.cost import evaluate_unchecked
from ..nn.network import init_params
from ..nn.optim import DivergenceError, FlatParams
from ..nn.types import Array, Params, Stats
from ..signals import StopSignals, TrainingInterrupted
from .inputs import Inputs, Position, step_inputs

#: The quantities of a run's history, one entry per evaluation.
HISTORY_KEYS = ("step", "eta", "cost_train", "loss_train", "acc_train", "cost_val", "loss_val",
                "acc_val")

History = dict[str, list[Any]]


@dataclass
class State:
    """What a checkpoint keeps of a run after `step` steps: `params` and `stats` as in
    `training.Result`, the optimiser's state `vectors` by name (the momentum velocity, if any),
    the `history` of the evaluations done, the `position` of the input stream
    (`minibatches.inputs`) and the `seconds` trained."""
    step: int
    params: Params
    stats: Stats
    vectors: dict[str, Array]
    history: History
    position: Position | None
    seconds: float


class Checkpointer(Protocol):
    """Where a run keeps its `State` (`store.checkpoints.Checkpoint` is one): `load` gives the
    stored state of this run, or None to start afresh; `save` replaces it."""
    path: Path

    def load(self, config: Config, data: CIFAR10, like: Params,
             vectors_like: dict[str, Array]) -> State | None: ...

    def save(self, state: State) -> None: ...


@dataclass
class Run:
    """A run in progress: its parameters (as one flat vector, `flat.params` the dict of views),
    the BN moving averages (None before the first step), the history, the steps done, the
    position of its input stream, and the seconds of earlier sessions of a resumed run."""
    flat: FlatParams
    stats: Stats | None = None
    history: History = field(default_factory=lambda: {key: [] for key in HISTORY_KEYS})
    step: int = 0
    position: Position | None = None
    earlier: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def start(cls, data: CIFAR10, config: Config, checkpoint: Checkpointer | None) -> "Run":
        """The run of `config` on `data`: fresh parameters from the seed, or the state stored by
        `checkpoint` if it has one."""
        started = time.perf_counter()
        params = init_params([data.train.X.shape[0], *config.hidden, data.train.Y.shape[0]],
                             batch_norm=config.batch_norm, init=config.init, seed=config.seed,
                             dtype=config.dtype)
        flat = FlatParams(params, config.update.state, average=config.swa > 0)
        state = checkpoint.load(config, data, flat.params, flat.vectors()) if checkpoint else None
        if state is None:
            return cls(flat, started=started)
        flat.assign(state.params, state.vectors)
        return cls(flat, state.stats or None, state.history, state.step, state.position,
                   state.seconds, started)

    def seconds(self) -> float:
        """Seconds trained, over all sessions."""
        return self.earlier + time.perf_counter() - self.started

    def state(self, copy: bool = False) -> State:
        """The run's `State` now; with `copy`, of copies of its arrays (for another thread)."""
        arrays = self.flat.params, self.stats or [], self.flat.vectors()
        params, stats, vectors = deepcopy(arrays) if copy else arrays
        return State(self.step, params, stats, vectors, self.history, self.position,
                     self.seconds())


class Harness(ExitStack):
    """Everything `train` runs beside the steps of `run`, entered as one context: numpy's
    overflow warnings off (a diverging run is reported once, as DivergenceError), BLAS limited
    to `config.blas_threads`, the evaluations (and checkpoint writes) in a background thread, a
    thread that prepares the next mini-batch, the stop signals and a progress bar over the
    `total` steps (on stderr, with `progress`).

    Each evaluation on train and val runs on a copy of the parameters and moving averages while
    training goes on; on two cores they then add almost nothing to the wall time (they are ~1/3
    of the work of a default run). They append their results to the history in order; a
    non-finite training cost raises DivergenceError (from `check`). With a checkpoint, each
    evaluation then writes the run's state at its step, with the history up to it, in the same
    thread: the writes (and their flush to disk) overlap training too. Training waits for the
    oldest evaluation rather than queue more than MAX_PENDING: where the evaluations take longer
    than the steps between them, it stays near them (an interrupt stops the run soon after the
    signal, and copies of the parameters do not pile up)."""

    MAX_PENDING = 2

    def __init__(self, data: CIFAR10, config: Config, run: Run, total: int,
                 checkpoint: Checkpointer | None = None, progress: bool = False) -> None:
        super().__init__()
        self.data, self.config, self.run, self.total = data, config, run, total
        self.checkpoint, self.progress = checkpoint, progress
        self.pending: deque[Future[None]] = deque()

    def __enter__(self) -> "Harness":
        enter = self.enter_context
        enter(np.errstate(over="ignore", invalid="ignore", divide="ignore"))
        enter(threadpool_limits(self.config.blas_threads, user_api="blas"))
        self.evaluations = ThreadPoolExecutor(max_workers=1)
        self.callback(self.evaluations.shutdown, wait=True, cancel_futures=True)
        self.pool = enter(ThreadPoolExecutor(max_workers=1))
        self.signals = enter(StopSignals())
        self.bar = enter(tqdm(total=self.total, initial=self.run.step, disable=not self.progress,
                              unit="step", dynamic_ncols=True))     # on stderr, tqdm's default
        return self

    def inputs(self, cores: int | None = None) -> Iterator[Inputs]:
        """The (Xb, Yb, dropout masks, position) of the steps left (`inputs.step_inputs`,
        prepared in this harness's thread if the run leaves one of its `cores` free)."""
        return step_inputs(self.data.train, self.run.flat.params, self.config,
                           self.total - self.run.step, self.pool, cores, self.run.position)

    def evaluate(self, eta: float) -> None:
        """Evaluate the run now (after a step with learning rate eta) in the background, on
        copies of its arrays; with a checkpoint, write its state after."""
        state = self.run.state(copy=True)
        self.check(keep=self.MAX_PENDING - 1)
        self.pending.append(self.evaluations.submit(self._evaluate, eta, state))

    def check(self, keep: float = float("inf")) -> None:
        """Raise the error of an evaluation done so far, waiting for the oldest ones until at most
        `keep` are pending (with keep=0, for all of them)."""
        while self.pending and (len(self.pending) > keep or self.pending[0].done()):
            self.pending.popleft().result()

    def step_done(self, eta: float) -> None:
        """After a step: raise an evaluation's error, move the progress bar; if a stop signal
        came before the last step, wait for the evaluations, write the checkpoint and raise
        TrainingInterrupted (after the last, the run is finished: `Result.stopped_by`)."""
        self.check()
        self.bar.update()
        self.bar.set_postfix_str(_postfix(eta, self.run.history), refresh=False)
        if self.signals.received and self.run.step < self.total:   # at the last: finished
            self.bar.leave = False                     # cleared: the caller says where it stopped
            self.check(keep=0)
            if self.checkpoint:
                self.checkpoint.save(self.run.state())
            raise TrainingInterrupted(self.signals.received, self.run.step, self.total,
                                      self.checkpoint.path if self.checkpoint else None)

    def finish(self, eta: float) -> None:
        """Wait for the last evaluations (raising their errors) and show the final numbers."""
        self.check(keep=0)
        self.bar.set_postfix_str(_postfix(eta, self.run.history))

    def _evaluate(self, eta: float, state: State) -> None:
        """In the evaluations' thread: append the scores of `state` on train and val to its
        history (the run's), then write it to the checkpoint."""
        stats, config = state.stats or None, self.config
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            tr, va = (evaluate_unchecked(state.params, split.X, split.y, config.lam, stats,
                                         net=config.net)
                      for split in (self.data.train, self.data.val))
        if not np.isfinite(tr["cost"]):
            raise DivergenceError(state.step, tr["cost"], eta)
        values = (state.step, eta, tr["cost"], tr["loss"], tr["accuracy"], va["cost"], va["loss"],
                  va["accuracy"])                     # in the order of HISTORY_KEYS
        for key, value in zip(HISTORY_KEYS, values, strict=True):
            state.history[key].append(value)
        if self.checkpoint:
            self.checkpoint.save(state)


def _postfix(eta: float, history: History) -> str:
    """The progress bar's note: the learning rate and the last validation accuracy."""
    return f"lr {eta:.4f}, val acc " + (f"{history['acc_val'][-1]:.4f}" if history["acc_val"]
                                        else "-")
