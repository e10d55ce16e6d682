"""Training runs on a Dask cluster (`distributed`, the optional `cluster` extra): the backend of
`scale.parallel` when it is given a scheduler address.

A task carries a `Config` and a `data.Source` (where and how to load CIFAR-10, a few bytes), not
the data: each worker process loads CIFAR-10 itself (its $CIFAR10_DIR, else its cache) on its
first task and keeps it for the next ones. Tasks are submitted with `Client.submit` and their
Results, with the trained parameters, collected as they finish. A task
whose worker dies (killed, out of memory, its machine gone) is run again on another worker by
the scheduler itself, up to `distributed.scheduler.allowed-failures` times (3 by default);
exceptions raised inside a task (data missing, a diverged run) would only repeat, so they are
not retried but reported. Workers need this package installed, the same numpy and BLAS, and one
thread each (`dask worker ... --nthreads 1`): a run then gives the same numbers bit for bit on a
worker as in this process, since `train` limits BLAS to `Config.blas_threads` threads.

Nothing here waits without a deadline. The address must answer Dask's handshake and say it is a
scheduler within CONNECT_TIMEOUT + HANDSHAKE_TIMEOUT seconds (an HTTP server, the dashboard's
port or a silent listener is an error, not a hang); and while runs are pending, a scheduler
without workers is waited for (a line on stderr after NOTICE_AFTER seconds, "waiting for
workers at ADDRESS") up to WAIT_WORKERS seconds, or what $ASSIGNMENT3_WAIT_WORKERS or
`worker_wait` (the search command's --wait-workers) set, and then is an error.
"""
import asyncio
import logging
import os
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import CancelledError, Future
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from functools import lru_cache
from typing import Any, TypeVar

from tqdm.auto import tqdm

from .. import env
from ..config import Config, Limit
from ..data import CIFAR10, DataError, Source
from ..errors import Error
from ..training import Diverged, Result, train

#: Seconds to wait for the scheduler to accept a connection.
CONNECT_TIMEOUT = 5
#: Seconds more for its handshake and its answer to "who are you" (an address that accepts
#: connections but is not a Dask scheduler fails after CONNECT_TIMEOUT + HANDSHAKE_TIMEOUT).
HANDSHAKE_TIMEOUT = 1.0
#: Seconds that runs wait for a scheduler without workers before failing, unless
#: $ASSIGNMENT3_WAIT_WORKERS, `worker_wait` or the search command's --wait-workers say otherwise.
WAIT_WORKERS = 300.0
#: Seconds without workers before a line on stderr says that the runs wait for them.
NOTICE_AFTER = 10.0
#: Seconds between two looks at the scheduler's workers while no run finishes.
POLL = 1.0

#: What the scheduler says when it is gone (with how, if known, at %s).
_LOST = ("lost the connection to the Dask scheduler at {address}%s: check that it still runs, "
         "then run again")
#: What a server that accepts connections but is not a Dask scheduler is told (why not at %s).
_NOT_DASK = ("{address} accepts connections but is not a Dask scheduler (%s): is it the "
             "dashboard's port (8787 by default) or another server? Give the scheduler's "
             "address, tcp://HOST:8786 by default, with --scheduler or ${env.SCHEDULER}")

_wait_workers: ContextVar[float | None] = ContextVar("wait_workers", default=None)

T = TypeVar("T")


class ClusterError(Error, RuntimeError):
    """The Dask scheduler cannot be reached, or the cluster cannot run the tasks."""


@contextmanager
def worker_wait(seconds: float | None) -> Iterator[None]:
    """Within this context (in this thread or task), runs on a cluster wait up to `seconds`
    for a scheduler without workers (None: $ASSIGNMENT3_WAIT_WORKERS, else WAIT_WORKERS): those
    of `train_many` and `coarse_to_fine` with a scheduler."""
    Limit(float, 0, lo_open=True, optional=True).check("seconds", seconds)
    token = _wait_workers.set(None if seconds is None else float(seconds))
    try:
        yield
    finally:
        _wait_workers.reset(token)


def train_on_cluster(address: str, data: CIFAR10 | Source, configs: list[Config],
                     task: Callable[..., Result | Diverged] = train,
                     ) -> Iterator[tuple[int, Result | Diverged]]:
    """Train every `Config` in `configs` on the workers of the Dask scheduler at `address`
    (e.g. tcp://host:8786); yield (i, Result of configs[i]) as the runs finish. `data` is a
    `data.Source`, or a `CIFAR10` that `load_cifar10` loaded (its `source`): the workers load
    it themselves. Raises ClusterError if `address` is not a Dask scheduler that answers
    within CONNECT_TIMEOUT + HANDSHAKE_TIMEOUT seconds, if the scheduler has had no workers
    for WAIT_WORKERS seconds (or what `worker_wait` or $ASSIGNMENT3_WAIT_WORKERS set) while runs
    wait, or if a task's workers kept dying; DataError if a worker cannot load the data.
    `task`: `train`, or `training.train_or_diverged` (a run whose training diverges gives a
    `training.Diverged`)."""
    source = data.source if isinstance(data, CIFAR10) else data
    if source is None:
        raise ValueError("Dask workers load CIFAR-10 themselves, so they need data as "
                         "load_cifar10 returns it (or a data.Source), not a slice or transformed "
                         "copy: pass that, or train locally with n_jobs")
    wait = _wait_workers.get() or env.wait_workers(WAIT_WORKERS)   # now, not when iterated
    return _train_all(address, source, configs, task, wait) if configs else iter(())


def _train_all(address: str, source: Source, configs: list[Config],
               task: Callable[..., Result | Diverged],
               wait: float) -> Iterator[tuple[int, Result | Diverged]]:
    """`train_on_cluster`'s runs, once its arguments are checked. A task whose workers kept
    dying is a ClusterError; one cancelled, a connection lost."""
    with _connected(address) as client:
        from distributed import KilledWorker  # installed: the client connected
        finished: queue.SimpleQueue[Any] = queue.SimpleQueue()
        futures = {client.submit(_train_task, task, source, config, pure=False): i
                   for i, config in enumerate(configs)}
        for future in futures:
            future.add_done_callback(finished.put)
        while futures:
            future = _next_finished(finished, client, address, wait, len(futures))
            with _explained(address, [
                    (KilledWorker, "the workers running a task kept dying ({err}); see the logs "
                                   "of the workers of {address} (memory limit, killed jobs)"),
                    (CancelledError, _LOST % "")]):     # the client lost its scheduler
                result = future.result()
            future.release()    # else its worker keeps the Result, computed again if it dies
            yield futures.pop(future), result


def _next_finished(finished: "queue.SimpleQueue[Any]", client: Any, address: str, wait: float,
                   pending: int) -> Any:
    """The next future of `finished`. While none finishes, the scheduler at `address` is asked
    for its workers every POLL seconds: when it has had none for NOTICE_AFTER seconds, a line
    on stderr says so; for `wait` seconds, ClusterError (`pending`: the runs waiting)."""
    since, waited = None, 0.0  # since when the scheduler has been seen without workers; how long
    while True:
        with suppress(queue.Empty):
            return finished.get(timeout=POLL)
        with _explained(address, [((OSError, asyncio.TimeoutError), _LOST % " ({how})")]):
            n = client.sync(client.scheduler.identity, n_workers=0,
                            callback_timeout=CONNECT_TIMEOUT + HANDSHAKE_TIMEOUT)["n_workers"]
        since = None if n else since or time.monotonic()
        before, waited = waited, (time.monotonic() - since if since else 0.0)
        if waited >= wait:
            raise ClusterError(f"the Dask scheduler at {address} has had no workers for "
                               f"{wait:g} s, with {pending} run{'s' * (pending != 1)} waiting: "
                               f"start workers (`dask worker {address} --nthreads 1`), or wait "
                               f"longer with --wait-workers SECONDS or ${env.WAIT_WORKERS}")
        if before < NOTICE_AFTER <= waited:    # once in each stretch without workers
            tqdm.write(f"waiting for workers at {address}: the scheduler has none; giving up "
                       f"after {wait:g} s (--wait-workers or ${env.WAIT_WORKERS})",
                       file=sys.stderr)


@contextmanager
def _connected(address: str) -> Iterator[Any]:
    """A `distributed.Client` of the scheduler at `address`, or ClusterError: at once if
    `address` does not have the form of a scheduler's, else within CONNECT_TIMEOUT +
    HANDSHAKE_TIMEOUT seconds. A first plain connection checks that a Dask scheduler answers,
    under one deadline for the connection, Dask's handshake and its "identity" reply
    (`distributed.comm.connect` has none for the handshake, and reads the first bytes of a
    server that is not Dask, e.g. "HTTP/1.1", as the length of a frame of exabytes).
    A Client that fails to connect still tries to close itself at exit, with a traceback. The
    client is closed at the end without the log of its attempts to reconnect to a scheduler
    that went away (a traceback; the ClusterError has said it in one line)."""
    with _explained(address, [
            (ImportError, "training on a Dask cluster needs the `distributed` package: "
                          "pip install -e '.[cluster]'"),
            (ValueError, "{address!r} is not the address of a Dask scheduler ({err}): give it "
                         "as tcp://HOST:PORT with --scheduler or ${env.SCHEDULER}")]):
        from distributed import Client
        from distributed.comm import CommClosedError, connect, parse_address, parse_host_port
        # the form of a scheduler's address that a client without TLS settings can reach:
        # [tcp://]HOST:PORT (or ws://HOST:PORT)
        scheme, location = parse_address(address)
        if scheme not in ("tcp", "ws"):
            raise ValueError(f"{scheme}:// addresses are not supported")
        _, port = parse_host_port(location)
        if not 0 < port < 65536:
            raise ValueError(f"port {port} is not in 1..65535")

    async def identity() -> Any:
        comm = await connect(address, timeout=CONNECT_TIMEOUT)
        try:
            await comm.write({"op": "identity", "reply": True})    # any Dask server's
            return await comm.read()
        finally:
            comm.abort()

    deadline = CONNECT_TIMEOUT + HANDSHAKE_TIMEOUT
    with _explained(address, [
            # connected (connect gives up sooner), then no Dask reply
            (asyncio.TimeoutError, _NOT_DASK % "no Dask reply within {deadline:g} s"),
            (CommClosedError, _NOT_DASK % "it closed the connection"),
            (OSError, "cannot reach a Dask scheduler at {address!r} ({err}): start one (`dask "
                      "scheduler`) and its workers (`dask worker ADDRESS --nthreads 1`), or give "
                      "its address as tcp://HOST:PORT with --scheduler or ${env.SCHEDULER}"),
            # MemoryError, decoding errors: bytes that are not Dask's
            (Exception, _NOT_DASK % "a reply in another protocol")], deadline=deadline):
        reply = _run_in_a_thread(asyncio.wait_for(identity(), deadline))
    kind = reply.get("type") if isinstance(reply, dict) else None
    if kind != "Scheduler":
        what = f"a Dask {kind.lower()}" if isinstance(kind, str) else "a Dask server"
        raise ClusterError(f"{address} is {what}, not a Dask scheduler: give the scheduler's "
                           f"address (tcp://HOST:8786 by default; a worker's log names it) "
                           f"with --scheduler or ${env.SCHEDULER}")
    with _explained(address, [((OSError, asyncio.TimeoutError), _LOST % " ({how})")]):
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    try:
        yield client
    finally:
        logger = logging.getLogger("distributed.client")
        level = logger.level
        logger.setLevel(logging.CRITICAL)
        try:
            client.close()
        finally:
            logger.setLevel(level)


def _run_in_a_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(coroutine) in a thread of its own: with its own event loop (also in a
    notebook's kernel, whose thread runs one already), and a daemon, so that Ctrl-C or SIGTERM
    here does not wait for it."""
    outcome: Future[T] = Future()

    def run() -> None:
        try:
            outcome.set_result(asyncio.run(coroutine))
        except BaseException as err:                # handed to the caller
            outcome.set_exception(err)

    threading.Thread(target=run, name="assignment3-dask-probe", daemon=True).start()
    return outcome.result()


@contextmanager
def _explained(address: str, meanings: list[tuple[Any, str]], **values: Any) -> Iterator[None]:
    """The block, with its errors of the kinds of `meanings`, (kinds, message) pairs, raised as
    the ClusterError of the first pair whose kinds the error is: its message formatted with the
    scheduler's `address`, the error {err}, it in one line of at most 120 characters {how} (its
    message, else its type's name), `values`, and `env` for the names of environment variables.
    Errors of other kinds go through as they are."""
    try:
        yield
    except Exception as err:
        message = next((message for kinds, message in meanings if isinstance(err, kinds)), None)
        if message is None:
            raise
        how = " ".join(str(err).split()) or type(err).__name__
        raise ClusterError(message.format(
            address=address, err=err, how=how if len(how) <= 120 else how[:117] + "...", env=env,
            **values)) from None


def _train_task(task: Callable[..., Result | Diverged], source: Source,
                config: Config) -> Result | Diverged:
    """A task: `task` (`train` or `train_or_diverged`) of `config` on the data of `source`,
    loaded once in this worker process. A worker is one thread, started one per core, so the
    run does not prepare mini-batches in a second thread (`train`'s `cores`), as in the local
    worker processes of `parallel`."""
    return task(worker_data(source), config, cores=1)


@lru_cache(maxsize=1)
def worker_data(source: Source) -> CIFAR10:
    """The CIFAR10 of `source`, loaded on the first call in this worker process (never
    downloaded: N workers would fetch it N times). DataError names the worker ("Dask worker
    <address> on <host name>", or outside a worker "process <pid> on <host name>") and what to
    set."""
    try:
        return source.load(download=False)
    except DataError as err:
        fix = ("make the folder given with --data exist on every worker, or leave --data out so "
               "that each worker uses its CIFAR10_DIR" if source.path else
               "set CIFAR10_DIR, in the environment `dask worker` starts in, to that machine's "
               "copy of cifar-10-batches-py")
        from distributed import get_worker
        who = f"process {os.getpid()}"
        with suppress(ValueError):          # "No worker found": called in the client
            who = f"Dask worker {get_worker().address}"
        raise DataError(f"{who} on {socket.gethostname()} cannot load CIFAR-10: {fix}. "
                        f"({err})") from None
