"""Independent training runs (seeds, lambda values, the sigma grid) in parallel processes.

On 2 cores, 2 worker processes with one BLAS thread each finish a batch of default runs about
1.2x sooner than the same runs one after another in this process, where each run already keeps a
second core partly busy with its background evaluations and mini-batch gathers
(benchmarks/RESULTS.md). A run gives the same result, bit for bit, in a worker as in this
process, since `train` sets the number of BLAS threads (`Config.blas_threads`, default 1).

The workers live only as long as one `run_many` call: however it ends (results, an error,
Ctrl-C, SIGTERM or SIGHUP), they are ended and their shared-memory files removed, so that no
worker outlives its parent and a process that ends without closing them (a notebook kernel)
leaves nothing in /dev/shm.
"""
import os
from functools import partial
from numbers import Integral

from joblib import Parallel, delayed
from joblib.executor import MemmappingExecutor
from joblib.externals.loky import get_reusable_executor

from . import env
from .stops import signals_raise
from .training import train

#: The variable that sets the number of worker processes.
JOBS_ENV = "ASSIGNMENT3_JOBS"


def default_jobs():
    """Worker processes: $ASSIGNMENT3_JOBS if set (1 to the number of cores), else one per
    core."""
    cores = os.cpu_count() or 1
    return env.integer(JOBS_ENV, cores, hi=cores, what="the number of worker processes")


def run_many(fn, arg_list, n_jobs=None):
    """[fn(*args) for args in arg_list], in up to `n_jobs` worker processes (default
    `default_jobs()`; 1 runs them here, one after another). The workers are joblib's loky
    processes, each limited to one BLAS thread; numpy arrays over 1 MB in the arguments reach
    them memory-mapped (written once to shared memory), not copied into every worker."""
    arg_list = list(arg_list)
    n_jobs = _jobs(n_jobs, len(arg_list))
    if n_jobs <= 1:
        return [fn(*args) for args in arg_list]
    with signals_raise():
        try:
            return Parallel(n_jobs=n_jobs, backend="loky", inner_max_num_threads=1)(
                delayed(fn)(*args) for args in arg_list)
        finally:
            _end_workers()


def _end_workers():
    """End joblib's worker processes now (not after their 5 idle minutes) and remove their
    shared-memory files: the memory-mapped arguments and the executor's semaphores."""
    executor = get_reusable_executor(reuse=True)    # the one Parallel used, if still running
    if isinstance(executor, MemmappingExecutor):
        executor.terminate(kill_workers=True)        # also removes the memory-mapped folder
    else:
        executor.shutdown(wait=True, kill_workers=True)


def _jobs(n_jobs, n_tasks):
    """The worker processes `run_many` uses for n_tasks tasks."""
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, Integral)
                               or n_jobs < 1):
        raise ValueError(f"n_jobs must be None (default) or an integer >= 1, got {n_jobs!r}")
    return max(1, min(n_jobs or default_jobs(), n_tasks))


def train_many(data, configs, n_jobs=None):
    """Train every `Config` in `configs` on `data`; returns the `Result`s in the same order
    (see `run_many` for `n_jobs`). Each run is told its share of the machine's cores, so that
    runs in workers do not prepare mini-batches in a thread of their own (`train`'s `cores`)."""
    configs = list(configs)
    cores = max(1, (os.cpu_count() or 1) // _jobs(n_jobs, len(configs)))
    return run_many(partial(train, cores=cores), [(data, config) for config in configs], n_jobs)
