"""What `train` runs beside the steps of its loop, entered as one context (`Harness`): numpy's
overflow warnings off, the BLAS thread limit, the background evaluations, the thread that
prepares the next mini-batch, the stop signals and the progress bar."""
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from types import TracebackType

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ..config import Config
from ..data import CIFAR10
from ..nn.types import Array
from ..signals import StopSignals, TrainingInterrupted
from .evaluations import Evaluations
from .inputs import Position, step_inputs
from .run import Checkpointer, History, Run


class Harness:
    """Everything `train` runs beside the steps of `run`, entered as one context: numpy's
    overflow warnings off (a diverging run is reported once, as DivergenceError), BLAS limited
    to `config.blas_threads`, the background `Evaluations` (and checkpoint writes), a thread
    that prepares the next mini-batch, the stop signals and a progress bar over the `total`
    steps (on stderr, with `progress`)."""

    def __init__(self, data: CIFAR10, config: Config, run: Run, total: int,
                 checkpoint: Checkpointer | None = None, progress: bool = False) -> None:
        self.data, self.config, self.run, self.total = data, config, run, total
        self.checkpoint, self.progress = checkpoint, progress
        self._stack = ExitStack()

    def __enter__(self) -> "Harness":
        enter = self._stack.enter_context
        enter(np.errstate(over="ignore", invalid="ignore", divide="ignore"))
        enter(threadpool_limits(self.config.blas_threads, user_api="blas"))
        self.evals = enter(Evaluations(self.data, self.config, self.run.history,
                                       self.checkpoint))
        self.pool = enter(ThreadPoolExecutor(max_workers=1))
        self.signals = enter(StopSignals())
        self.bar = enter(tqdm(total=self.total, initial=self.run.step, disable=not self.progress,
                              unit="step", file=sys.stderr, dynamic_ncols=True))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stack.__exit__(exc_type, exc, traceback)

    def inputs(self, cores: int | None = None
               ) -> Iterator[tuple[Array, Array, list[Array] | None, Position]]:
        """The (Xb, Yb, dropout masks, position) of the steps left (`minibatches.step_inputs`,
        prepared in this harness's thread if the run leaves one of its `cores` free)."""
        return step_inputs(self.data.train, self.run.flat.params, self.config,
                           self.total - self.run.step, self.pool, cores, self.run.position)

    def evaluate(self, eta: float) -> None:
        """Evaluate the run now, in the background (then write its checkpoint)."""
        self.evals.submit(eta, self.run.state(copy=True))

    def step_done(self, eta: float) -> None:
        """After a step: raise an evaluation's error, move the progress bar; if a stop signal
        came, wait for the evaluations, write the checkpoint and raise TrainingInterrupted."""
        self.evals.check()
        self.bar.update()
        self.bar.set_postfix_str(_postfix(eta, self.run.history), refresh=False)
        if self.signals.received:
            self.bar.leave = False                     # cleared: the caller says where it stopped
            self.evals.check(wait=True)
            if self.checkpoint:
                self.checkpoint.save(self.run.state())
            raise TrainingInterrupted(self.signals.received, self.run.step, self.total,
                                      self.checkpoint.path if self.checkpoint else None)

    def finish(self, eta: float) -> None:
        """Wait for the last evaluations (raising their errors) and show the final numbers."""
        self.evals.check(wait=True)
        self.bar.set_postfix_str(_postfix(eta, self.run.history))


def _postfix(eta: float, history: History) -> str:
    """The progress bar's note: the learning rate and the last validation accuracy."""
    return f"lr {eta:.4f}, val acc " + (f"{history['acc_val'][-1]:.4f}" if history["acc_val"]
                                        else "-")
