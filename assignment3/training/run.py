"""The state of a training run: its parameters (flat, with the update rule's vectors), the BN
moving averages, the history of its evaluations, the steps done and where its input stream
stands (`Run`), and what a checkpoint keeps of it (`State`, kept by a `Checkpointer`)."""
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..config import Config
from ..data import CIFAR10
from ..nn.network import init_params
from ..nn.optim import FlatParams
from ..nn.types import Array, Params, Stats
from .inputs import Position

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
        d, K = data.train.X.shape[0], data.train.Y.shape[0]
        params = init_params([d, *config.hidden, K], batch_norm=config.batch_norm,
                             init=config.init, seed=config.seed, dtype=config.dtype)
        flat = FlatParams(params, config.update.state, average=config.swa > 0)
        run = cls(flat, started=started)
        state = checkpoint.load(config, data, run.flat.params, run.flat.vectors()) \
            if checkpoint is not None else None
        if state:
            run.flat.assign(state.params, state.vectors)
            run.stats = [(mu, v) for mu, v in state.stats] or None
            run.history, run.step, run.position, run.earlier = (state.history, state.step,
                                                                state.position, state.seconds)
        return run

    def seconds(self) -> float:
        """Seconds trained, over all sessions."""
        return self.earlier + time.perf_counter() - self.started

    def state(self, copy: bool = False) -> State:
        """The run's `State` now; with `copy`, of copies of its arrays (for another thread)."""
        params, stats, vectors = self.flat.params, self.stats or [], self.flat.vectors()
        if copy:
            params = {name: [P.copy() for P in arrays] for name, arrays in params.items()}
            stats = [(mu.copy(), v.copy()) for mu, v in stats]
            vectors = {name: v.copy() for name, v in vectors.items()}
        return State(self.step, params, stats, vectors, self.history, self.position,
                     self.seconds())
