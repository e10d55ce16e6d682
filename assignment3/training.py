"""Training: the cyclical learning rate, mini-batch gradient descent with reshuffling every
epoch, BN moving averages, and the history of cost, loss and accuracy.

Beyond the assignment, as options of the same `Config` and loop (all off by default): a one-cycle
schedule, momentum / Nesterov momentum, BN after the ReLU, dropout, flips and shifts of every
mini-batch, ZCA whitening, and more BLAS threads for wide networks."""
import functools
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from dataclasses import fields as dataclasses_fields

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from . import checkpoints, stops
from .augment import zca_whiten
from .checks import check_labels, check_one_hot, check_samples
from .config import SCHEDULES, Config  # noqa: F401  (also importable from here)
from .limits import ConfigError
from .minibatches import step_inputs
from .network import (PARAM_NAMES, backward, evaluate_unchecked, forward_unchecked, init_params,
                      softmax)

#: Decay of the BN moving averages: mu_av = a mu_av + (1 - a) mu, the same for v.
BN_ALPHA = 0.9

#: Version of the numbers a configuration and seed give. Bump it with every change that changes
#: them (network, training, augmentation, random streams): saved runs and checkpoints record it,
#: and a checkpoint of another version is not resumed.
MATH_VERSION = 1

class TrainingInterrupted(KeyboardInterrupt):
    """`train` stopped on SIGINT, SIGTERM or SIGHUP at the end of step `step` of `total`, after
    writing its `checkpoint` (a path, or None if the run had none). A KeyboardInterrupt, so that
    code that does not know it (a notebook, a script, an `except Exception`) treats it like
    Ctrl-C: it stops the program instead of being handled as an error of the run. (Not a
    `stops.Stopped`, which the code around re-sends as a signal: the stop is done here.)"""

    def __init__(self, signum, step, total, checkpoint):
        self.signum, self.step, self.total, self.checkpoint = signum, step, total, checkpoint
        name = signal.Signals(signum).name
        super().__init__(f"{name} at step {step} of {total}: " + (
            f"checkpoint written to {checkpoint}" if checkpoint else "no checkpoint was set"))


class DivergenceError(RuntimeError):
    """Training produced a NaN or infinite cost."""

    def __init__(self, step, cost, eta):
        self.step, self.cost, self.eta = step, cost, eta
        super().__init__(self.message())

    def message(self, eta_max="eta_max", lam="lam", init="initial weight scale"):
        """What happened and what to do, naming the settings as the caller does (the command
        line: by their options)."""
        return (f"training diverged at step {self.step}: mini-batch cost is {self.cost} "
                f"(learning rate {self.eta:.3g}); lower {eta_max} or {lam}, or use a smaller "
                f"{init}")

    def __reduce__(self):       # pickled from a worker process to the caller with its fields
        return type(self), (self.step, self.cost, self.eta)


def cyclic_lr(t, eta_min=1e-5, eta_max=1e-1, n_s=2250):
    """Triangular cyclical learning rate at update step t (0-based): it rises linearly from
    eta_min to eta_max over n_s steps, falls back over the next n_s, and repeats."""
    c = t % (2 * n_s)
    if c <= n_s:
        return eta_min + c / n_s * (eta_max - eta_min)
    return eta_max - (c - n_s) / n_s * (eta_max - eta_min)


def one_cycle_lr(t, total, eta_min=1e-5, eta_max=1e-1, warmup=0.2):
    """One-cycle learning rate at update step t (0-based) of a run of `total` steps: it rises
    linearly from eta_min to eta_max over the first `warmup` fraction of the run, then falls
    linearly to 0 at the end."""
    w = warmup * total
    if t < w:
        return eta_min + t / w * (eta_max - eta_min)
    return eta_max * (total - t) / (total - w)


def check_run(config, n_train):
    """Raise ConfigError unless `config` can train on `n_train` samples on this machine: a
    mini-batch no larger than the training set, at least one step, and no more BLAS threads
    than cores."""
    if config.n_batch > n_train:
        raise ConfigError("{0} exceeds the {n} training samples", ("n_batch", config.n_batch),
                          n=n_train)
    total, _, _ = _schedule(config, n_train // config.n_batch)
    if total < 1:
        per_cycle = 2 * (config.n_s or 5 * (n_train // config.n_batch))
        raise ConfigError("{0} makes 0 training steps (a cycle has {per_cycle} steps): use at "
                          "least {least:.2g}", ("cycles", config.cycles), per_cycle=per_cycle,
                          least=1 / per_cycle)
    cores = os.cpu_count() or 1
    if config.blas_threads > cores:
        raise ConfigError("{0} exceeds the {cores} cores of this machine",
                          ("blas_threads", config.blas_threads), cores=cores)


@dataclass
class Result:
    """What a run returns: the trained parameters, the BN moving averages, the history (one
    entry per evaluation: step, eta, cost/loss/accuracy on train and val) and the final scores.
    `resumed_from_step`: the step a checkpoint resumed the run from (0 for a fresh start)."""
    config: Config
    params: dict
    stats: list
    history: dict = field(default_factory=dict)
    steps: int = 0
    epochs: float = 0.0               # passes over the training set: steps / batches per epoch
    seconds: float = 0.0
    val_accuracy: float = float("nan")
    test_accuracy: float = float("nan")
    resumed_from_step: int = 0

    def summary(self):
        """The run's scalar results and its configuration, as plain JSON-ready values."""
        return {"test_accuracy": self.test_accuracy, "val_accuracy": self.val_accuracy,
                "steps": self.steps, "epochs": self.epochs, "seconds": round(self.seconds, 2),
                "config": config_dict(self.config)}


def config_dict(config):
    """A `Config` as a JSON-ready dict (hidden as a list)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()}


def config_from_dict(fields_):
    """The `Config` of a `config_dict`. Raises ValueError naming unknown fields."""
    unknown = set(fields_) - {f.name for f in dataclasses_fields(Config)}
    if unknown:
        raise ValueError(f"unknown configuration fields {sorted(unknown)} (written by a newer "
                         "version of the code?)")
    return Config(**{k: tuple(v) if k == "hidden" else v for k, v in fields_.items()})


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


def train(data, config=Config(), progress=False, cores=None, checkpoint=None):
    """Train a network on `data` (a `CIFAR10`: train, val, test splits, X d x n) with mini-batch
    gradient descent and the cyclical learning rate (or the options of `config`). Evaluates on
    train and val about `evals_per_cycle` times per cycle with the BN moving averages, then on
    test. `progress` shows a bar over the steps on stderr (tqdm; a widget in a notebook) with
    the learning rate and the last validation accuracy. Raises DivergenceError if the cost
    becomes NaN or infinite; before any step, ValueError or TypeError for data it cannot use
    (`check_data`: NaN, labels out of range, ...) and ConfigError for a run that does not fit
    the data or the machine (`check_run`). These checks take a pass over the data (0.2 s for
    CIFAR-10), once per call; the loop itself calls the unchecked network functions.
    `Result.seconds` counts everything after loading: the ZCA fit (if any), the steps and the
    evaluations (over all sessions of a resumed run).

    `checkpoint` (a path): the whole training state is written there at every evaluation. If
    the file exists, the run resumes from it and finishes bit for bit as the run that was never
    interrupted (same parameters, history and accuracies); `checkpoints.Checkpoint.load` says
    which files it refuses (RunFileError). On SIGINT, SIGTERM or SIGHUP (caught in the main
    thread of the main process only; the previous handlers are restored at the end) the run
    stops at the end of the current step, writes the checkpoint if it has one and raises
    TrainingInterrupted.

    Speed and repeatability: the steps run with `blas_threads` BLAS threads (default 1), and the
    evaluations in a background thread that overlaps them (on a second core if there is one).
    If the BLAS threads leave one of the run's `cores` (default: all of this machine's) free,
    the next mini-batch is prepared in another thread during each step. On 2 cores that beats
    two BLAS threads for the assignment's small nets (benchmarks/RESULTS.md),
    and a fixed thread count makes a seed give the same run bit for bit in this process and in a
    worker process (`assignment3.parallel`): BLAS rounds large products differently with 1 and
    2 threads."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a training.Config, got {type(config).__name__}")
    check_data(data, config.dtype)
    check_run(config, data.train.n)
    start = time.perf_counter()
    d, n = data.train.X.shape
    K = int(data.train.Y.shape[0])
    batches = n // config.n_batch          # a last partial mini-batch is dropped every epoch
    total, eval_every, schedule = _schedule(config, batches)

    flat = _FlatParams(init_params([d, *config.hidden, K], batch_norm=config.batch_norm,
                                   init=config.init, seed=config.seed, dtype=config.dtype),
                       momentum=config.momentum > 0)
    params = flat.params
    history = {key: [] for key in ("step", "eta", "cost_train", "loss_train", "acc_train",
                                   "cost_val", "loss_val", "acc_val")}
    stats_av, done, position, earlier = None, 0, None, 0.0
    if checkpoint is not None:
        checkpoint = checkpoints.Checkpoint(checkpoint, config_dict(config),
                                            checkpoints.data_fingerprint(data), MATH_VERSION)
        state = checkpoint.load(params, flat.vectors())
        if state:
            flat.assign(state.params, state.vectors)
            stats_av = [(mu, v) for mu, v in state.stats] or None
            history, done, position, earlier = (state.history, state.step, state.position,
                                                state.seconds)
    if config.zca:
        data = zca_whiten(data)

    def elapsed():
        return earlier + time.perf_counter() - start

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"), \
            threadpool_limits(config.blas_threads, user_api="blas"), \
            _BackgroundEvaluations(data, config.lam, config.bn_order, history,
                                   checkpoint) as evals, \
            ThreadPoolExecutor(max_workers=1) as prefetch, _StopSignals() as signals, \
            tqdm(total=total, initial=done, disable=not progress, unit="step", file=sys.stderr,
                 dynamic_ncols=True) as bar:
        inputs = step_inputs(data.train, params, config, total - done, prefetch, cores,
                             position)
        for t, (Xb, Yb, masks, position) in enumerate(inputs, start=done + 1):
            eta = schedule(t - 1)                      # t: steps done after this one
            batch_stats = _step(flat, Xb, Yb, eta, config, masks, t - 1)
            if batch_stats:
                stats_av = update_moving_averages(stats_av, batch_stats)
            if t % eval_every == 0 or t == total:
                evals.submit(t, eta, params, stats_av, flat.vectors(), position, elapsed())
            evals.check()
            bar.update()
            bar.set_postfix_str(_postfix(eta, history), refresh=False)
            if signals.received:
                bar.leave = False                      # cleared: the caller says where it stopped
                evals.check(wait=True)
                if checkpoint:
                    checkpoint.save(checkpoints.State(t, params, stats_av or [], flat.vectors(),
                                                      history, position, elapsed()))
                raise TrainingInterrupted(signals.received, t, total,
                                          checkpoint and checkpoint.path)
        # the test set while the last evaluation on train and val finishes in the background
        test_accuracy = evaluate_unchecked(params, data.test.X, data.test.y, 0.0, stats_av,
                                           bn_order=config.bn_order)["accuracy"]
        evals.check(wait=True)
        bar.set_postfix_str(_postfix(schedule(total - 1), history))
    seconds = earlier + time.perf_counter() - start
    return Result(config=config, params=params, stats=stats_av or [], history=history, steps=total,
                  epochs=total / batches, seconds=seconds,
                  val_accuracy=history["acc_val"][-1], test_accuracy=test_accuracy,
                  resumed_from_step=done)


class _StopSignals:
    """In its `with` block, SIGINT and the `stops.STOP_SIGNALS` (SIGTERM, SIGHUP) set `received`
    (the signal's number) instead of stopping the program, if this is the main thread of the
    main process: threads cannot set handlers, and joblib's workers keep theirs (the process
    that started them stops them). Ignored signals (as under nohup) stay ignored. The previous
    handlers come back at the end."""

    def __enter__(self):
        self.received, self.previous = None, {}
        if (threading.current_thread() is threading.main_thread()
                and multiprocessing.parent_process() is None):
            self.previous = stops.install((signal.SIGINT, *stops.STOP_SIGNALS), self._receive)
        return self

    def _receive(self, signum, frame):
        self.received = self.received or signum

    def __exit__(self, *exc):
        stops.restore(self.previous)


def check_data(data, dtype):
    """Raise ValueError (TypeError for the wrong types) unless `data` has train, val and test
    splits of finite samples of `dtype` (X d x n, n >= 1) with integer labels y in 0..K-1 and
    their one-hot Y (K x n), with the same d and K in all three."""
    splits = {name: getattr(data, name, None) for name in ("train", "val", "test")}
    if any(not all(hasattr(split, a) for a in "XYy") for split in splits.values()):
        raise TypeError("data must have train, val and test splits with X, Y and y, as the "
                        "CIFAR10 of load_cifar10")
    d, K = getattr(data.train.X, "shape", (0,))[0], getattr(data.train.Y, "shape", (0,))[0]
    for name, split in splits.items():
        if getattr(split.X, "dtype", None) != np.dtype(dtype):
            raise ValueError(f"data.{name}.X is {getattr(split.X, 'dtype', type(split.X))} but "
                             f"the config's dtype is {dtype}: load the data with "
                             f"load_cifar10(dtype=np.{dtype})")
        check_samples(split.X, d, f"data.{name}.X")
        n = split.X.shape[1]
        y = check_labels(split.y, n, K, f"data.{name}.y")
        check_one_hot(split.Y, K, n, f"data.{name}.Y")
        if not (split.Y.argmax(axis=0) == y).all():
            raise ValueError(f"data.{name}.Y is not the one-hot form of data.{name}.y")


def _schedule(config, batches):
    """(total steps, steps between evaluations, learning rate as a function of the 0-based
    step) of a run with `batches` mini-batches per epoch."""
    if config.schedule == "cyclic":
        n_s = config.n_s or 5 * batches
        return (int(round(2 * n_s * config.cycles)), max(1, (2 * n_s) // config.evals_per_cycle),
                functools.partial(cyclic_lr, eta_min=config.eta_min, eta_max=config.eta_max,
                                  n_s=n_s))
    total = max(1, int(round(config.epochs * batches)))
    return (total, max(1, total // config.evals_per_cycle),
            functools.partial(one_cycle_lr, total=total, eta_min=config.eta_min,
                              eta_max=config.eta_max, warmup=config.warmup))


class _FlatParams:
    """The parameters as views into one vector theta (the weights W first: `weights` views them
    all), and the gradients as views into a vector grad laid out the same, so that one
    operation updates every array. With `momentum`, also the velocity vector of that layout."""

    def __init__(self, params, momentum=False):
        self.theta, self.params = _flat_copy(params)
        self.grad, self.grads = _flat_copy(params)
        n_weights = sum(W.size for W in params["W"])
        self.weights, self.weight_grad = self.theta[:n_weights], self.grad[:n_weights]
        self.velocity = np.zeros_like(self.theta) if momentum else None

    def vectors(self):
        """The optimiser's state vectors, by name, that a checkpoint keeps with the parameters:
        the momentum velocity, if any."""
        return {name: v for name, v in (("velocity", self.velocity),) if v is not None}

    def assign(self, params, vectors):
        """Copy the arrays of `params` and of the dict `vectors` (as `vectors()`) into place."""
        for name, views in self.params.items():
            for view, P in zip(views, params[name]):
                view[...] = P
        for name, v in self.vectors().items():
            v[...] = vectors[name]


def _flat_copy(params):
    """(vector, views): one contiguous vector holding a copy of every parameter array, and a
    dict like `params` whose arrays are views into it."""
    arrays = [P for name in PARAM_NAMES for P in params[name]]
    vector = np.empty(sum(P.size for P in arrays), arrays[0].dtype)
    views, i = {}, 0
    for name in PARAM_NAMES:
        views[name] = []
        for P in params[name]:
            view = vector[i:i + P.size].reshape(P.shape)
            view[...] = P
            views[name].append(view)
            i += P.size
    return vector, views


def _step(flat, Xb, Yb, eta, config, masks, t):
    """One update on the mini-batch Xb, Yb for the `_FlatParams` flat, with the gradient g of
    the cost (dropout `masks` or None; t: the step's 0-based number, for the divergence
    message). Returns the mini-batch's BN statistics.

    Plain gradient descent: theta -= eta g. The cost's gradient is the loss's (`backward` with
    lam = 0) plus 2 lam W for the weights; that second term is applied as W *= 1 - 2 eta lam:
    the same update, without a temporary the size of W_1 (5% faster for the 3-layer net).
    With momentum mu: v = mu v + g, then theta -= eta v, or with Nesterov theta -= eta (g + mu v)
    (the form PyTorch's SGD uses)."""
    lam = config.lam
    S, cache, batch_stats = forward_unchecked(flat.params, Xb, bn_order=config.bn_order, masks=masks)
    P = softmax(S)
    _check_finite(P, t, eta)
    backward(flat.params, Yb, P, cache, 0.0, out=flat.grads)  # gradient of the loss
    if flat.velocity is not None:
        _momentum_update(flat, eta, lam, config.momentum, config.nesterov)
        return batch_stats
    if lam:
        flat.weights *= 1 - 2 * eta * lam
    flat.grad *= eta                                          # theta -= eta * g, without
    flat.theta -= flat.grad                                   # a temporary
    return batch_stats


#: Entries per block of the momentum update (256 KB of float32, held in the L2 cache).
UPDATE_BLOCK = 1 << 16


def _momentum_update(flat, eta, lam, mu, nesterov):
    """g += 2 lam W; v = mu v + g; theta -= eta v (Nesterov: theta -= eta (g + mu v)), on the
    `_FlatParams` flat. These are seven passes over vectors of every parameter (15 MB each for a
    3072-1024-512-256-10 net), so they run block by block: each block stays in the cache through
    all seven, which halves the time of the update of such a net."""
    n_weights = flat.weights.size
    for i in range(0, flat.theta.size, UPDATE_BLOCK):
        g, v, theta = (a[i:i + UPDATE_BLOCK] for a in (flat.grad, flat.velocity, flat.theta))
        if lam and i < n_weights:
            w = slice(0, n_weights - i)
            g[w] += (2 * lam) * theta[w]
        v *= mu
        v += g
        if nesterov:
            g += mu * v
        else:
            g[...] = v
        g *= eta
        theta -= g


class _BackgroundEvaluations:
    """The evaluations on train and val during training. Each runs in a background thread, on a
    copy of the parameters and moving averages, while training goes on; on two cores they then
    add almost nothing to the wall time (they are ~1/3 of the work of a default run). They
    append their results to `history` in order; a non-finite training cost raises
    DivergenceError (from `check`). With a `checkpoints.Checkpoint`, each evaluation then
    writes the run's state at its step, with the history up to it, in the same thread: the
    writes (and their flush to disk) overlap training too. Training waits for the oldest
    evaluation rather than queue more than MAX_PENDING: where the evaluations take longer than
    the steps between them, it stays near them (an interrupt stops the run soon after the
    signal, and copies of the parameters do not pile up)."""

    MAX_PENDING = 2

    def __init__(self, data, lam, bn_order, history, checkpoint=None):
        self.data, self.lam, self.bn_order = data, lam, bn_order
        self.history, self.checkpoint = history, checkpoint
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending = deque()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, t, eta, params, stats, vectors, position, seconds):
        """Evaluate `params` and `stats` after step t (learning rate eta); with a checkpoint,
        write them with the optimiser's state `vectors` (`_FlatParams.vectors`), the input
        `position` and the `seconds` trained at t."""
        params = {name: [P.copy() for P in arrays] for name, arrays in params.items()}
        stats = [(mu.copy(), v.copy()) for mu, v in stats] if stats else None
        state = None
        if self.checkpoint:
            state = checkpoints.State(t, params, stats or [],
                                      {name: v.copy() for name, v in vectors.items()},
                                      self.history, position, seconds)
        while len(self.pending) >= self.MAX_PENDING:
            self.pending.popleft().result()
        self.pending.append(self.pool.submit(self._evaluate, t, eta, params, stats, state))

    def check(self, wait=False):
        """Raise the error of an evaluation done so far, or (with `wait`) of any of them."""
        while self.pending and (wait or self.pending[0].done()):
            self.pending.popleft().result()

    def _evaluate(self, t, eta, params, stats, state):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            tr = evaluate_unchecked(params, self.data.train.X, self.data.train.y, self.lam,
                                    stats, bn_order=self.bn_order)
            va = evaluate_unchecked(params, self.data.val.X, self.data.val.y, self.lam, stats,
                                    bn_order=self.bn_order)
        if not np.isfinite(tr["cost"]):
            raise DivergenceError(t, tr["cost"], eta)
        _append(self.history, t, eta, tr, va)
        if state:
            self.checkpoint.save(state)


def _append(history, t, eta, tr, va):
    """Append one evaluation on train (tr) and val (va) to the history."""
    history["step"].append(t)
    history["eta"].append(eta)
    for split, res in (("train", tr), ("val", va)):
        history[f"cost_{split}"].append(res["cost"])
        history[f"loss_{split}"].append(res["loss"])
        history[f"acc_{split}"].append(res["accuracy"])


def _postfix(eta, history):
    """The progress bar's note: the learning rate and the last validation accuracy."""
    return f"lr {eta:.4f}, val acc " + (f"{history['acc_val'][-1]:.4f}" if history["acc_val"]
                                        else "-")


def _check_finite(P, t, eta):
    """Raise DivergenceError if the mini-batch probabilities (so the cost) hold a NaN or inf."""
    if not np.isfinite(P.sum()):
        raise DivergenceError(t, float("nan"), eta)
