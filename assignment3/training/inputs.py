"""The input stream of a training run: shuffled, possibly augmented mini-batches and dropout
masks, drawn from the random streams of the run's seed, with the position after each step (what
a checkpoint keeps to continue the stream exactly), optionally prepared one step ahead in a
thread."""
import functools
import os
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import Any, TypeVar

import numpy as np

from ..config import Config
from ..data import Split
from ..nn.augment import augment_rows, mixup, smooth_labels
from ..nn.network import dropout_masks
from ..nn.types import Array, Params

#: Where a run's input stream stands after a step (JSON-ready): the random states of its
#: `STREAMS`, the state before the current epoch's shuffle and the mini-batches of it done.
Position = dict[str, Any]
#: One step's inputs: Xb (d x n_batch), Yb (K x n_batch), dropout masks or None, position.
Inputs = tuple[Array, Array, list[Array] | None, Position]
T = TypeVar("T")

#: The random streams of a run, each np.random.default_rng([seed, n]) (the initialisation uses
#: `seed` itself). A checkpoint keeps the state of each: a new stream is one more entry here.
STREAMS = {"shuffle": 1, "augment": 2, "dropout": 3, "mixup": 4}


def inputs(split: Split, params: Params, config: Config, total: int,
           position: Position | None = None) -> Iterator[Inputs]:
    """The `total` inputs (Xb, Yb, dropout masks or None, position) of the steps of a run:
    shuffled, possibly augmented mini-batches of `split`, with smoothed or mixed targets if
    `config` says so. Shuffling, augmentation, dropout and MixUp draw from the random `STREAMS`
    of the seed, independent of the initialisation's. `position`
    is where the stream stands after the step (JSON-ready: the random states, the state before
    the current epoch's shuffle and the mini-batches of that epoch done); given one, the inputs
    continue from it, exactly as they went on in the run it was taken from."""
    rngs = {name: np.random.default_rng([config.seed, n]) for name, n in STREAMS.items()}
    if position:
        for name, rng in rngs.items():
            rng.bit_generator.state = position["streams"][name]
    augment = (functools.partial(augment_rows, rng=rngs["augment"], flip=config.flip,
                                 max_shift=config.max_shift)
               if config.flip or config.max_shift else None)
    start = (position["epoch"], position["batch"]) if position else None
    for Xb, Yb, (epoch, j) in islice(minibatches(split, config.n_batch, rngs["shuffle"],
                                                  augment, start), total):
        if config.label_smoothing:
            Yb = smooth_labels(Yb, config.label_smoothing)
        if config.mixup:
            Xb, Yb = mixup(Xb, Yb, rngs["mixup"], config.mixup)
        masks = (dropout_masks(params, config.n_batch, config.dropout, rngs["dropout"])
                 if config.dropout else None)
        yield Xb, Yb, masks, {"epoch": epoch, "batch": j, "streams": {
            name: rng.bit_generator.state for name, rng in rngs.items()}}


def step_inputs(split: Split, params: Params, config: Config, total: int,
                pool: ThreadPoolExecutor, cores: int | None = None,
                position: Position | None = None) -> Iterator[Inputs]:
    """The inputs of `inputs`, each made in the thread of `pool` during the step before if the
    run's BLAS threads leave one of its `cores` (default: all of this machine's) free."""
    items = inputs(split, params, config, total, position)
    spare_core = config.blas_threads < (cores or os.cpu_count() or 1)
    return prefetched(items, pool) if spare_core else items


def prefetched(items: Iterator[T], pool: ThreadPoolExecutor) -> Iterator[T]:
    """The items of the iterator `items`, each made in the thread of `pool` while the caller
    works on the one before: the next mini-batch's gather (a memory-bound copy, 1.2 MB for the
    assignment's batches) overlaps the current step. Same items, same order."""
    end = _End()
    pending: Future[T | _End] = pool.submit(next, items, end)
    while not isinstance(item := pending.result(), _End):
        pending = pool.submit(next, items, end)
        yield item


class _End:
    """The end of the items of `prefetched`."""


def minibatches(split: Split, n_batch: int, rng: np.random.Generator,
                augment: Callable[[Array], Array] | None = None,
                start: tuple[Mapping[str, Any], int] | None = None
                ) -> Iterator[tuple[Array, Array, tuple[Mapping[str, Any], int]]]:
    """Endless mini-batches (Xb d x n_batch, Yb K x n_batch, (epoch, j)) of a split, reshuffled
    every epoch; a last partial mini-batch is dropped. `epoch` is the state of `rng` before the
    shuffle of the mini-batch's epoch, `j` the mini-batches of that epoch done with this one;
    `start`, such a pair, continues after that mini-batch. The split is never copied: a
    mini-batch is a gather of rows of X.T, which load_cifar10 stores C-contiguous (other layouts
    are copied once here). `augment` (e.g. `augment.augment_rows`) transforms each mini-batch's
    rows (n_batch x d)."""
    X_rows = np.ascontiguousarray(split.X.T)                 # n x d
    Y_rows = np.ascontiguousarray(split.Y.T)                 # n x K
    first = 0
    if start:
        rng.bit_generator.state, first = start
    while True:
        epoch = rng.bit_generator.state
        order = rng.permutation(split.n)
        for j in range(first, split.n // n_batch):
            idx = order[j * n_batch:(j + 1) * n_batch]
            rows = X_rows[idx] if augment is None else augment(X_rows[idx])
            yield rows.T, Y_rows[idx].T, (epoch, j + 1)
        first = 0
