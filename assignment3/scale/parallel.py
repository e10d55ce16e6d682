"""Independent training runs (seeds, lambda values, the sigma grid) in parallel processes: joblib
worker processes on this machine, or the workers of a Dask cluster (`scale.cluster`).

A run gives the same result, bit for bit, in a worker as in this process, since `train` sets
the number of BLAS threads (`Config.blas_threads`, default 1). What the workers gain on 2 cores
is measured in benchmarks/RESULTS.md.

The local workers live only as long as one `run_each` call: however it ends
(results, an error, Ctrl-C, SIGTERM or SIGHUP), they are ended and their shared-memory files
removed, so that no worker outlives its parent and a process that ends without closing them (a
notebook kernel) leaves nothing in /dev/shm. A parent killed outright (SIGKILL, the OOM killer)
cannot end them: they notice it themselves and exit within a second, and loky's resource
trackers then remove the parent's files (`_worker_start`). What a kill of the whole process
group leaves behind, the next `run_each` removes (`remove_stale_shared_memory`).
"""
import os
import shutil
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from joblib import Parallel, delayed
from joblib.externals.loky import get_reusable_executor
from tqdm.auto import tqdm
from tqdm.std import tqdm as std_tqdm

from .. import env
from ..config import Config, Limit
from ..data import CIFAR10, Source
from ..signals import signals_raise
from ..training import Diverged, Result, train, train_or_diverged

T = TypeVar("T")


def scheduler_address(n_jobs: int | None = None, scheduler: str | None = None) -> str | None:
    """The Dask scheduler the runs go to, or None for this machine: `scheduler` if given, else
    $ASSIGNMENT3_SCHEDULER unless `n_jobs` asks for local processes."""
    return scheduler or (None if n_jobs is not None else env.read(env.SCHEDULER))


def run_each(fn: Callable[..., T], arg_list: Iterable[tuple[Any, ...]],
             n_jobs: int | None = None) -> Iterator[tuple[int, T]]:
    """Yield (i, fn(*arg_list[i])) for every i, as the calls finish, in up to `n_jobs` worker
    processes (default: $ASSIGNMENT3_JOBS if set, 1 to the number of cores, else one per core;
    1 runs them here, one after another). The workers are joblib's loky processes, each limited
    to one BLAS thread; numpy arrays over 1 MB in the arguments reach them memory-mapped
    (written once to shared memory), not copied into every worker."""
    arg_list = list(arg_list)
    n_jobs = _jobs(n_jobs, len(arg_list))
    remove_stale_shared_memory()
    if n_jobs <= 1:
        yield from enumerate(fn(*args) for args in arg_list)
    else:
        with signals_raise():
            busy = True                 # until every result is in: after an error, a stop
            try:
                yield from Parallel(n_jobs=n_jobs, backend="loky", inner_max_num_threads=1,
                                    return_as="generator_unordered", initializer=_worker_start,
                                    initargs=(os.getpid(),))(
                    delayed(_numbered)(i, fn, args) for i, args in enumerate(arg_list))
                busy = False
            finally:
                # End the workers now (not after their 5 idle minutes) and remove their
                # shared-memory files: the memory-mapped arguments and the executor's
                # semaphores. Idle workers are shut down cleanly; busy ones are killed, not
                # waited for, and the semaphores that the executor still holds then are
                # unlinked at the latest when this process ends, even when it ends by a re-sent
                # stop signal (`signals.signals_raise`); but not if it is killed with loky's
                # resource tracker (as nbval and jupyter kill a notebook's kernel). Joblib's
                # executor, the one Parallel used if still running, terminates (shuts down,
                # and removes the memory-mapped folder); after an error it is gone, and the
                # new one only shuts down.
                executor = get_reusable_executor(reuse=True)
                getattr(executor, "terminate", executor.shutdown)(kill_workers=busy)


def _numbered(i: int, fn: Callable[..., T], args: tuple[Any, ...]) -> tuple[int, T]:
    return i, fn(*args)


#: How often a worker process checks that the process that started it is still there, seconds.
PARENT_CHECK = 0.2


def _worker_start(parent: int) -> None:
    """Run in each worker process as it starts (loky's initializer); `parent` is the pid of the
    process that started it.

    Loky's workers on Linux do not notice that their parent died (SIGKILL, the OOM killer): a
    busy one trains on, then blocks for ever sending its result, and keeps loky's resource
    trackers, and so the parent's files in /dev/shm, alive with it. So a daemon thread ends the
    worker within `PARENT_CHECK` seconds of its parent's death, with `os._exit` (no cleanup
    that could wait for the dead parent); the resource trackers, their last clients gone, then
    remove the parent's files. And tqdm's bars get a thread lock here instead of their default
    multiprocessing lock: a named semaphore, which a worker killed on a stop could not unlink,
    and which Python's resource tracker would then report as a "leaked semaphore"."""
    std_tqdm.set_lock(threading.RLock())
    threading.Thread(target=_exit_with_parent, args=(parent,), name="assignment3 parent check",
                     daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """End this process once its parent is no longer `parent` (it died: this process was
    handed to init or a subreaper)."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK)
    os._exit(1)


def remove_stale_shared_memory() -> list[Path]:
    """Remove the shared memory of local workers that no worker could clean up: when their
    parent was killed together with its workers and loky's resource trackers (a SIGKILL to the
    whole process group, a batch system or the OOM killer ending the job). That is joblib's
    memory-mapped folders `joblib_memmapping_folder_<pid>_*` (in /dev/shm, or in
    $JOBLIB_TEMP_FOLDER or the temporary folder where joblib puts them if /dev/shm is small)
    and loky's semaphores `/dev/shm/sem.loky-<pid>-*`, of pids that no longer exist, owned by
    this user. (Assumes that the processes sharing /dev/shm see the same pids, as they do
    unless /dev/shm is shared between containers.) Returns the paths removed."""
    # where, the name's prefix before the pid and its end after it, the kind of file, and how
    # to remove it: joblib's folders in each place it may put them, loky's semaphores
    kinds: list[tuple[Any, ...]] = [
        *((place, "joblib_memmapping_folder_", "_", stat.S_ISDIR, shutil.rmtree) for place in
          {Path("/dev/shm"), Path(tempfile.gettempdir()),
           Path(os.environ.get("JOBLIB_TEMP_FOLDER") or "/dev/shm")}),
        (Path("/dev/shm"), "sem.loky-", "-", stat.S_ISREG, os.unlink)]
    removed = []
    for place, prefix, end, of_kind, remove in kinds:
        with suppress(OSError):                    # no such place, or not readable
            for path in list(place.glob(prefix + "*")):
                pid = path.name[len(prefix):].split(end, 1)[0]
                # kept if gone meanwhile, not ours to remove, or its pid's process (or zombie)
                # exists (EPERM: another user's) or cannot (OverflowError: no pid at all)
                with suppress(OSError, OverflowError):
                    st = path.lstat()
                    if (pid.isdigit() and int(pid) > 0 and st.st_uid == os.getuid()
                            and of_kind(st.st_mode)):
                        try:
                            os.kill(int(pid), 0)
                        except ProcessLookupError:     # no process with this pid
                            remove(path)
                            removed.append(path)
    return removed


def _jobs(n_jobs: int | None, n_tasks: int) -> int:
    """The worker processes `run_each` uses for n_tasks tasks."""
    Limit(int, 1, optional=True).check("n_jobs", n_jobs)
    return max(1, min(n_jobs or env.jobs(os.cpu_count() or 1), n_tasks))


def train_each(data: CIFAR10 | Source, configs: Iterable[Config], n_jobs: int | None = None,
               scheduler: str | None = None, *,
               diverged: bool = False) -> Iterator[tuple[int, Result | Diverged]]:
    """Train every `Config` in `configs`; yield (i, Result of configs[i]) as the runs finish.
    A run whose training diverges raises its DivergenceError, or with `diverged` gives a
    `training.Diverged` in place of its Result (`train_or_diverged`), and the others go on.

    On the Dask cluster `scheduler_address(n_jobs, scheduler)` names, if any: `data` is a
    `data.Source` or a `CIFAR10` loaded by `load_cifar10`, and each worker loads that data
    itself (`cluster.train_on_cluster`). Else in local processes (see `run_each` for `n_jobs`)
    on `data`, a `CIFAR10`; each run is told its share of the machine's cores, so that runs in
    workers do not prepare mini-batches in a thread of their own (`train`'s `cores`)."""
    configs = list(configs)
    task = train_or_diverged if diverged else train
    address = scheduler_address(n_jobs, scheduler)
    if address:
        from .cluster import train_on_cluster  # needs the optional `distributed`
        return train_on_cluster(address, data, configs, task)
    cores = max(1, (os.cpu_count() or 1) // _jobs(n_jobs, len(configs)))
    return run_each(partial(task, cores=cores), [(data, config) for config in configs], n_jobs)


def train_many(data: CIFAR10 | Source, configs: Iterable[Config], n_jobs: int | None = None,
               scheduler: str | None = None, progress: bool = True) -> list[Result]:
    """The `Result`s of `train_each`, in the order of `configs`. `progress` shows a bar over
    the runs (tqdm.auto: on stderr, a widget in a notebook): done, total and time left."""
    configs = list(configs)
    with tqdm(train_each(data, configs, n_jobs, scheduler), total=len(configs),
              disable=not progress, unit="run", file=sys.stderr, dynamic_ncols=True) as finished:
        return [result for _, result in sorted(finished, key=lambda pair: pair[0])]
