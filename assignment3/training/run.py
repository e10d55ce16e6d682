"""The state of a training run: its parameters (flat, with the update rule's vectors), the BN
moving averages, the history of its evaluations, the steps done and where its input stream
stands (`Run`), and what a checkpoint keeps of it (`State`, kept by a `Checkpointer`)."""
import time
from copy import deepcopy
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
