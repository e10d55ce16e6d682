"""Independent training runs (seeds, lambda values, the sigma grid) in parallel processes: joblib
worker processes on this machine, or the workers of a Dask cluster (`scale.cluster`).

A run gives the same result, bit for bit, in a worker as in this process, since `train` sets
the number of BLAS threads (`Config.blas_threads`, default 1). What the workers gain on 2 cores
is measured in benchmarks/RESULTS.md.

The local workers live only as long as one `run_each` or `run_many` call: however it ends
(results, an error, Ctrl-C, SIGTERM or SIGHUP), they are ended and their shared-memory files
removed, so that no worker outlives its parent and a process that ends without closing them (a
notebook kernel) leaves nothing in /dev/shm.
"""
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, TypeVar

from joblib import Parallel, delayed
from joblib.executor import MemmappingExecutor
from joblib.externals.loky import get_reusable_executor
from tqdm.auto import tqdm

from .. import env
from ..config import Config
from ..data import CIFAR10, Source
from ..nn.checks import is_int
from ..signals import signals_raise
from ..training import Result, train

T = TypeVar("T")


def default_jobs() -> int:
    """Worker processes: $ASSIGNMENT3_JOBS if set (1 to the number of cores), else one per
    core."""
    return env.jobs(os.cpu_count() or 1)


def scheduler_address(n_jobs: int | None = None, scheduler: str | None = None) -> str | None:
    """The Dask scheduler the runs go to, or None for this machine: `scheduler` if given, else
    $ASSIGNMENT3_SCHEDULER unless `n_jobs` asks for local processes."""
    if scheduler:
        return scheduler
    return None if n_jobs is not None else env.scheduler()


def run_each(fn: Callable[..., T], arg_list: Iterable[tuple[Any, ...]],
             n_jobs: int | None = None) -> Iterator[tuple[int, T]]:
    """Yield (i, fn(*arg_list[i])) for every i, as the calls finish, in up to `n_jobs` worker
    processes (default `default_jobs()`; 1 runs them here, one after another). The workers are
    joblib's loky processes, each limited to one BLAS thread; numpy arrays over 1 MB in the
    arguments reach them memory-mapped (written once to shared memory), not copied into every
    worker."""
    arg_list = list(arg_list)
    n_jobs = _jobs(n_jobs, len(arg_list))
    if n_jobs <= 1:
        for i, args in enumerate(arg_list):
            yield i, fn(*args)
        return
    with signals_raise():
        try:
            yield from Parallel(n_jobs=n_jobs, backend="loky", inner_max_num_threads=1,
                                return_as="generator_unordered")(
                delayed(_numbered)(i, fn, args) for i, args in enumerate(arg_list))
        except BaseException:
            _end_workers(kill=True)                  # they may be busy: do not wait for them
            raise
        _end_workers(kill=False)


def run_many(fn: Callable[..., T], arg_list: Iterable[tuple[Any, ...]],
             n_jobs: int | None = None) -> list[T]:
    """[fn(*args) for args in arg_list], computed as `run_each` does."""
    return _in_order(run_each(fn, arg_list, n_jobs))


def _numbered(i: int, fn: Callable[..., T], args: tuple[Any, ...]) -> tuple[int, T]:
    return i, fn(*args)


def _in_order(numbered: Iterable[tuple[int, T]]) -> list[T]:
    """The results of (i, result) pairs, ordered by i."""
    return [result for _, result in sorted(numbered, key=lambda pair: pair[0])]


def _end_workers(kill: bool) -> None:
    """End joblib's worker processes now (not after their 5 idle minutes) and remove their
    shared-memory files: the memory-mapped arguments and the executor's semaphores. Idle workers
    are shut down cleanly (`kill` False), so that each unlinks its own semaphores; killed
    workers leave theirs to the resource tracker, which unlinks them when this process ends, but
    not if it is killed with it (as nbval and jupyter kill a notebook's kernel)."""
    executor = get_reusable_executor(reuse=True)    # the one Parallel used, if still running
    if isinstance(executor, MemmappingExecutor):
        executor.terminate(kill_workers=kill)        # also removes the memory-mapped folder
    else:
        executor.shutdown(wait=True, kill_workers=kill)


def _jobs(n_jobs: int | None, n_tasks: int) -> int:
    """The worker processes `run_each` uses for n_tasks tasks."""
    if n_jobs is not None and (not is_int(n_jobs) or n_jobs < 1):
        raise ValueError(f"n_jobs must be None (default) or an integer >= 1, got {n_jobs!r}")
    return max(1, min(n_jobs or default_jobs(), n_tasks))


def train_each(data: CIFAR10 | Source, configs: Iterable[Config], n_jobs: int | None = None,
               scheduler: str | None = None) -> Iterator[tuple[int, Result]]:
    """Train every `Config` in `configs`; yield (i, Result of configs[i]) as the runs finish.

    On the Dask cluster `scheduler_address(n_jobs, scheduler)` names, if any: `data` is a
    `data.Source` or a `CIFAR10` loaded by `load_cifar10`, and each worker loads that data
    itself (`cluster.train_on_cluster`). Else in local processes (see `run_each` for `n_jobs`)
    on `data`, a `CIFAR10`; each run is told its share of the machine's cores, so that runs in
    workers do not prepare mini-batches in a thread of their own (`train`'s `cores`)."""
    configs = list(configs)
    address = scheduler_address(n_jobs, scheduler)
    if address:
        from .cluster import train_on_cluster  # needs the optional `distributed`
        return train_on_cluster(address, data, configs)
    cores = max(1, (os.cpu_count() or 1) // _jobs(n_jobs, len(configs)))
    return run_each(partial(train, cores=cores), [(data, config) for config in configs], n_jobs)


def train_many(data: CIFAR10 | Source, configs: Iterable[Config], n_jobs: int | None = None,
               scheduler: str | None = None, progress: bool = True) -> list[Result]:
    """The `Result`s of `train_each`, in the order of `configs`. `progress` shows a bar over
    the runs (tqdm.auto: on stderr, a widget in a notebook): done, total and time left."""
    configs = list(configs)
    finished = tqdm(train_each(data, configs, n_jobs, scheduler), total=len(configs),
                    disable=not progress, unit="run", file=sys.stderr, dynamic_ncols=True)
    with finished:
        return _in_order(finished)
