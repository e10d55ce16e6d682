"""Training runs on a Dask cluster (`distributed`, the optional `cluster` extra): the backend of
`scale.parallel` when it is given a scheduler address.

A task carries a `Config` and a `data.Source` (where and how to load CIFAR-10, a few bytes), not
the data: each worker process loads CIFAR-10 itself (its $CIFAR10_DIR, else its cache) on its
first task and keeps it for the next ones. Tasks are submitted with `Client.submit` and their
Results, with the trained parameters, collected with `as_completed` as they finish. A task
whose worker dies (killed, out of memory, its machine gone) is run again on another worker by
the scheduler itself, up to `distributed.scheduler.allowed-failures` times (3 by default);
exceptions raised inside a task (data missing, a diverged run) would only repeat, so they are
not retried but reported. Workers need this package installed, the same numpy and BLAS, and one
thread each (`dask worker ... --nthreads 1`): a run then gives the same numbers bit for bit on a
worker as in this process, since `train` limits BLAS to `Config.blas_threads` threads.
"""
import asyncio
import os
import socket
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from .. import env
from ..config import Config
from ..data import CIFAR10, DataError, Source
from ..training import Result, train

#: Seconds to wait for the scheduler to answer before giving up.
CONNECT_TIMEOUT = 5


class ClusterError(RuntimeError):
    """The Dask scheduler cannot be reached, or the cluster cannot run the tasks."""


def train_on_cluster(address: str, data: CIFAR10 | Source,
                     configs: list[Config]) -> Iterator[tuple[int, Result]]:
    """Train every `Config` in `configs` on the workers of the Dask scheduler at `address`
    (e.g. tcp://host:8786); yield (i, Result of configs[i]) as the runs finish. `data` is a
    `data.Source`, or a `CIFAR10` that `load_cifar10` loaded (its `source`): the workers load
    it themselves. Raises ClusterError if the scheduler does not answer within
    CONNECT_TIMEOUT seconds or a task's workers kept dying, DataError if a worker cannot load
    the data."""
    source = data.source if isinstance(data, CIFAR10) else data
    if source is None:
        raise ValueError("Dask workers load CIFAR-10 themselves, so they need data as "
                         "load_cifar10 returns it (or a data.Source), not a slice or transformed "
                         "copy: pass that, or train locally with n_jobs")
    if not configs:
        return
    from distributed import as_completed
    with _connect(address) as client:
        futures = {client.submit(_train_task, source, config, pure=False): i
                   for i, config in enumerate(configs)}
        for future in as_completed(futures, loop=client.loop):
            i, result = futures.pop(future), _result(future, address)
            future.release()    # else its worker keeps the Result, computed again if it dies
            yield i, result


def _connect(address: str) -> Any:
    """A `distributed.Client` of the scheduler at `address`, or ClusterError within
    CONNECT_TIMEOUT seconds. A first plain connection checks that the scheduler answers: a
    Client that fails to connect still tries to close itself at exit, with a traceback."""
    try:
        from distributed import Client
        from distributed.comm import connect
    except ImportError:
        raise ClusterError("training on a Dask cluster needs the `distributed` package: "
                           "pip install -e '.[cluster]'") from None

    async def probe() -> None:
        comm = await connect(address, timeout=CONNECT_TIMEOUT)
        await comm.close()

    try:
        asyncio.run(probe())
    except (OSError, ValueError) as err:
        raise ClusterError(f"cannot reach a Dask scheduler at {address!r} ({err}): start one "
                           f"(`dask scheduler`) and its workers (`dask worker ADDRESS "
                           f"--nthreads 1`), or give its address as tcp://HOST:PORT with "
                           f"--scheduler or ${env.SCHEDULER}") from None
    return Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)


def _result(future: Any, address: str) -> Result:
    """The Result of a finished task, or the error that stopped it."""
    from distributed import KilledWorker
    try:
        return future.result()
    except KilledWorker as err:
        raise ClusterError(f"the workers running a task kept dying ({err}); see the logs of "
                           f"the workers of {address} (memory limit, killed jobs)") from None


def _train_task(source: Source, config: Config) -> Result:
    """A task: train `config` on the data of `source`, loaded once in this worker process. A
    worker is one thread, started one per core, so the run does not prepare mini-batches in a
    second thread (`train`'s `cores`), as in the local worker processes of `parallel`."""
    return train(worker_data(source), config, cores=1)


@lru_cache(maxsize=1)
def worker_data(source: Source) -> CIFAR10:
    """The CIFAR10 of `source`, loaded on the first call in this worker process (never
    downloaded: N workers would fetch it N times). DataError names the worker and what to set."""
    try:
        return source.load(download=False)
    except DataError as err:
        fix = ("make the folder given with --data exist on every worker, or leave --data out so "
               "that each worker uses its CIFAR10_DIR" if source.path else
               "set CIFAR10_DIR, in the environment `dask worker` starts in, to that machine's "
               "copy of cifar-10-batches-py")
        raise DataError(f"{_worker_name()} cannot load CIFAR-10: {fix}. ({err})") from None


def _worker_name() -> str:
    """"Dask worker <address> on <host name>"; outside a worker (`worker_data` called in the
    client) "process <pid> on <host name>"."""
    from distributed import get_worker
    try:
        who = f"Dask worker {get_worker().address}"
    except ValueError:                      # distributed: "No worker found"
        who = f"process {os.getpid()}"
    return f"{who} on {socket.gethostname()}"
