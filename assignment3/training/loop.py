"""The training loop (the assignment's Solver), to be read top to bottom: mini-batch gradient
descent with the cyclical learning rate, reshuffling every epoch, BN moving averages, and the
history of cost, loss and accuracy.

Beyond the assignment, as options of the same `Config` and loop (all off by default): a one-cycle
schedule, momentum / Nesterov momentum, BN after the ReLU, a linear bottleneck, dropout, flips and
shifts of every mini-batch, MixUp and label smoothing, ZCA whitening, weight averaging (SWA), and
more BLAS threads for wide networks; the update rule SGD (with momentum) or AdamW.

The contract: `train(data, config)` takes a `CIFAR10` (X d x n per split) and a `Config`, and
returns a `Result`: the trained parameters (the dict of `nn.network`), the BN moving averages, the
history of the evaluations and the final accuracies. The same data, config and seed give the same
Result bit for bit, however often the run is stopped and resumed from its checkpoint."""
import contextlib
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config, ConfigError, config_dict
from ..data import CIFAR10, D, K, zca_whiten
from ..nn.checks import check_data
from ..nn.cost import evaluate_unchecked
from ..nn.network import update_moving_averages
from ..nn.optim import DivergenceError, cyclic_lr, one_cycle_lr, step
from ..nn.swa import bn_statistics, snapshot_steps, window_start
from ..nn.types import Params, Stats
from .harness import Checkpointer, Harness, History, Run

#: Version of the numbers a configuration and seed give. Bump it with every change that changes
#: them (network, training, augmentation, random streams): saved runs and checkpoints record it,
#: and a checkpoint of another version is not resumed.
MATH_VERSION = 1


@dataclass
class Averaged:
    """A run's averaged weights (`Config.swa`): the parameters, the BN statistics recomputed for
    them on the training set (`nn.swa.bn_statistics`) and their final scores."""
    params: Params
    stats: Stats
    val_accuracy: float
    test_accuracy: float


@dataclass
class Result:
    """What a run returns: the trained parameters, the BN moving averages, the history (one
    entry per evaluation: step, eta, cost/loss/accuracy on train and val) and the final scores.
    `resumed_from_step`: the step a checkpoint resumed the run from (0 for a fresh start).
    `averaged`: the averaged weights and their scores, for a run with `Config.swa`.
    `stopped_by`: a stop signal that came after the last step (during the final evaluations):
    the run was finished all the same, and its caller may stop now."""
    config: Config
    params: Params
    stats: Stats
    history: History = field(default_factory=dict)
    steps: int = 0
    epochs: float = 0.0               # passes over the training set: steps / batches per epoch
    seconds: float = 0.0
    val_accuracy: float = float("nan")
    test_accuracy: float = float("nan")
    resumed_from_step: int = 0
    averaged: Averaged | None = None
    stopped_by: int | None = None

    def summary(self) -> dict[str, Any]:
        """The run's scalar results and its configuration, as plain JSON-ready values (with the
        averaged weights' scores as swa_test_accuracy and swa_val_accuracy, if any)."""
        swa = {} if self.averaged is None else {"swa_test_accuracy": self.averaged.test_accuracy,
                                                "swa_val_accuracy": self.averaged.val_accuracy}
        return {"test_accuracy": self.test_accuracy, "val_accuracy": self.val_accuracy, **swa,
                "steps": self.steps, "epochs": self.epochs, "seconds": round(self.seconds, 2),
                "config": config_dict(self.config)}


def train(data: CIFAR10, config: Config = Config(), progress: bool = False,
          cores: int | None = None, checkpoint: Checkpointer | None = None) -> Result:
    """Train a network on `data` (a `CIFAR10`: train, val, test splits, X d x n) with mini-batch
    gradient descent and the learning rate of `config`. Evaluates on train and val about
    `evals_per_cycle` times per cycle with the BN moving averages, then on test. With
    `config.swa`, also averages the weights (`nn.swa`) and scores them on val and test.

    `progress` shows a bar over the steps on stderr (a widget in a notebook). `checkpoint` (a
    `store.Checkpoint`): the run's state is written there at every evaluation, and a run it
    holds is resumed, finishing bit for bit as the run that was never interrupted. On SIGINT,
    SIGTERM or SIGHUP the run stops at the end of the current step, writes the checkpoint and
    raises TrainingInterrupted. `cores`: the run's share of the machine (default all of it);
    if its BLAS threads leave one free, the next mini-batch is prepared in a thread.

    Raises DivergenceError if the cost becomes NaN or infinite; before any step, ValueError or
    TypeError for data it cannot use (`nn.checks.check_data`) and ConfigError for a run that
    does not fit the data or the machine (`check_run`). `Result.seconds` counts everything
    after loading: the ZCA fit (if any), the steps and the evaluations, over all sessions."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, got {type(config).__name__}")
    check_data(data, config.dtype)
    check_run(config, data.train.n)
    batches = data.train.n // config.n_batch     # a last partial mini-batch is dropped
    total, eval_every, learning_rate = schedule(config, batches)
    snapshots = snapshot_steps(total, batches, config.swa) if config.swa else {}
    run = Run.start(data, config, checkpoint)    # fresh, or where the checkpoint stopped
    resumed_from = run.step
    if config.zca:
        data = zca_whiten(data)

    with Harness(data, config, run, total, checkpoint, progress) as harness:
        for Xb, Yb, masks, position in harness.inputs(cores):
            eta = learning_rate(run.step)
            batch_stats = step(run.flat, Xb, Yb, eta, run.step, config.update, net=config.net,
                               masks=masks)
            run.step, run.position = run.step + 1, position
            if batch_stats:
                run.stats = update_moving_averages(run.stats, batch_stats)
            if run.step in snapshots:
                run.flat.add_to_average(snapshots[run.step])
            if run.step % eval_every == 0 or run.step == total:
                harness.evaluate(eta)            # on train and val, in the background
            harness.step_done(eta)               # progress; a stop signal ends the run here
        # the test set while the last evaluation on train and val finishes in the background
        test = evaluate_unchecked(run.flat.params, data.test.X, data.test.y, 0.0, run.stats,
                                  net=config.net)
        averaged = scored_average(run.flat.averaged, data, config) if config.swa else None
        harness.finish(learning_rate(total - 1))

    return Result(config=config, params=run.flat.params, stats=run.stats or [],
                  history=run.history, steps=total, epochs=total / batches,
                  seconds=run.seconds(), val_accuracy=run.history["acc_val"][-1],
                  test_accuracy=test["accuracy"], resumed_from_step=resumed_from,
                  averaged=averaged, stopped_by=harness.signals.received)


def scored_average(params: Params | None, data: CIFAR10, config: Config) -> Averaged:
    """The averaged weights `params` of a run of `config` on `data` with their BN statistics
    recomputed on the training set and their accuracies on val and test."""
    assert params is not None                   # a run with config.swa keeps an average
    stats = bn_statistics(params, data.train.X, config.n_batch, config.net)
    val, test = (evaluate_unchecked(params, split.X, split.y, 0.0, stats or None,
                                    net=config.net)["accuracy"]
                 for split in (data.val, data.test))
    return Averaged(params, stats, val, test)


@dataclass(frozen=True)
class Diverged:
    """What `train_or_diverged` gives for a run whose training diverged, instead of a `Result`:
    the step and learning rate of its `DivergenceError`, and the seconds it trained."""
    step: int
    eta: float
    seconds: float


def train_or_diverged(data: CIFAR10, config: Config,
                      cores: int | None = None) -> Result | Diverged:
    """`train(data, config, cores=cores)`, or `Diverged` if the training diverges: the task of
    a run among many (a search's trials), so that one diverged run does not stop the others."""
    start = time.perf_counter()
    try:
        return train(data, config, cores=cores)
    except DivergenceError as err:
        return Diverged(err.step, err.eta, time.perf_counter() - start)


def schedule(config: Config, batches: int) -> tuple[int, int, Callable[[int], float]]:
    """(total steps, steps between evaluations, learning rate as a function of the 0-based
    step) of a run with `batches` mini-batches per epoch."""
    if config.schedule == "cyclic":
        n_s = config.n_s or 5 * batches
        return (int(round(2 * n_s * config.cycles)), max(1, (2 * n_s) // config.evals_per_cycle),
                partial(cyclic_lr, eta_min=config.eta_min, eta_max=config.eta_max, n_s=n_s))
    assert config.epochs is not None                # Config checks it for a one-cycle run
    total = max(1, int(round(config.epochs * batches)))
    hold = (window_start(total, config.swa), config.swa_lr) if config.swa_lr else None
    return (total, max(1, total // config.evals_per_cycle),
            partial(one_cycle_lr, total=total, eta_min=config.eta_min, eta_max=config.eta_max,
                    warmup=config.warmup, hold=hold))


def check_run(config: Config, n_train: int) -> None:
    """Raise ConfigError unless `config` can train on `n_train` samples on this machine: a
    mini-batch no larger than the training set, at least one step, and `check_machine`."""
    if config.n_batch > n_train:
        raise ConfigError("{0} exceeds the {n} training samples", ("n_batch", config.n_batch),
                          n=n_train)
    total, _, _ = schedule(config, n_train // config.n_batch)
    if total < 1:
        per_cycle = 2 * (config.n_s or 5 * (n_train // config.n_batch))
        raise ConfigError("{0} makes 0 training steps (a cycle has {per_cycle} steps): use at "
                          "least {least:.2g}", ("cycles", config.cycles), per_cycle=per_cycle,
                          least=1 / per_cycle)
    check_machine(config)


def check_machine(config: Config) -> None:
    """Raise ConfigError unless this machine can run `config` (before its data loads): no more
    BLAS threads than cores, and memory for CIFAR-10 and the copies of the parameters training
    keeps (`memory_needed`)."""
    cores = os.cpu_count() or 1
    if config.blas_threads > cores:
        raise ConfigError("{0} exceeds the {cores} cores of this machine",
                          ("blas_threads", config.blas_threads), cores=cores)
    need, have = memory_needed(config), memory_available()
    if need > have:
        raise ConfigError("{0} needs about {need:.1f} GB of memory in {dtype} (CIFAR-10 and the "
                          "copies of the parameters training keeps), more than the {have:.1f} GB "
                          "this process has available", ("hidden", config.hidden),
                          need=need / 1e9, have=have / 1e9, dtype=config.dtype)


def memory_needed(config: Config) -> int:
    """Bytes a run of `config` needs, roughly: the 60,000 images of CIFAR-10, and the
    parameters with their gradient, the update rule's vectors, the weight average and the
    evaluations' two copies."""
    dims = [D, *config.hidden, K]
    n = sum((m_in + 1) * m_out for m_in, m_out in zip(dims[:-1], dims[1:]))
    copies = 4 + len(config.update.state) + bool(config.swa)
    return np.dtype(config.dtype).itemsize * (60_000 * D + copies * n)


def memory_available() -> float:
    """Bytes this process may still use: the system's available memory (MemAvailable, Linux)
    and what its address-space limit (ulimit -v) leaves, whichever is less; inf if unknown."""
    have = float("inf")
    with contextlib.suppress(OSError, ValueError, IndexError):
        meminfo = Path("/proc/meminfo").read_text()
        have = 1024 * int(meminfo.split("MemAvailable:")[1].split()[0])
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit != resource.RLIM_INFINITY:
        with contextlib.suppress(OSError, ValueError, IndexError):
            used = 1024 * int(Path("/proc/self/status").read_text().split("VmSize:")[1].split()[0])
            have = min(have, limit - used)
    return have
