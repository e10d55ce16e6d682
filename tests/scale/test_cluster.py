"""The Dask backend. Without a cluster: an unreachable scheduler, data the workers cannot load
themselves and a worker without data are clear errors. Deadlines, with real servers on 127.0.0.1
in this process: a listener that never accepts, a server that speaks another protocol first,
one that closes the connection, a Dask scheduler's dashboard port and a Dask worker are each
refused within the connection deadline, and a real Dask scheduler without workers gives the
"waiting for workers" line and then an error at the worker deadline (both cut short here), also
by the real command line; with the real deadlines (slow), an HTTP server, a silent listener and
the dashboard's port stop the command. On a real cluster (slow): a scheduler and workers started
as subprocesses on 127.0.0.1 (`dask scheduler`, `dask worker --nthreads 1`), searches run by the
real command line, a worker killed with SIGKILL mid-search, a search that waits for its first
worker; every process is killed again after its test."""
import asyncio
import http.server
import json
import math
import os
import re
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import pytest

pytest.importorskip("distributed", reason="the Dask backend needs the cluster extra")
from distributed import Client, LocalCluster  # noqa: E402

from assignment3 import env  # noqa: E402
from assignment3.cli import main  # noqa: E402
from assignment3.config import Config  # noqa: E402
from assignment3.data import DataError, Source, load_cifar10  # noqa: E402
from assignment3.env import EnvironmentValueError  # noqa: E402
from assignment3.scale import cluster  # noqa: E402
from assignment3.scale.cluster import ClusterError, train_on_cluster, worker_data  # noqa: E402
from assignment3.scale.parallel import train_many  # noqa: E402

#: A search of 6 short trials (1/20 cycle of a small BN net each).
SEARCH = ["search", "--hidden", "30,20", "--cycles", "0.05", "--coarse", "4", "--fine", "2"]


def closed_port_address():
    """tcp://127.0.0.1:PORT of a port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


def test_unreachable_scheduler_is_a_cluster_error(monkeypatch):
    """Within the connection timeout (cut here to 0.2 s), naming the address, given as an
    argument or by $ASSIGNMENT3_SCHEDULER."""
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 0.2)
    address = closed_port_address()
    for how in ("argument", "environment"):
        if how == "environment":
            monkeypatch.setenv(env.SCHEDULER, address)
        start = time.monotonic()
        with pytest.raises(ClusterError, match=f"cannot reach a Dask scheduler at '{address}' "
                                               ".*: start one \\(`dask scheduler`\\)"):
            train_many(Source(), [Config()], scheduler=address if how == "argument" else None)
        assert time.monotonic() - start < 10, how


def test_train_on_cluster_checks_its_arguments_before_connecting(synthetic):
    """A CIFAR10 not loaded by load_cifar10 (here built in memory) has no Source to send; no
    runs need no cluster (nothing listens at the address)."""
    with pytest.raises(ValueError, match="Dask workers load CIFAR-10 themselves, so they need "
                                         "data as load_cifar10 returns it"):
        list(train_on_cluster(closed_port_address(), synthetic, [Config()]))
    assert list(train_on_cluster(closed_port_address(), Source(), [])) == []


def test_worker_without_the_data_folder_says_what_to_set(tmp_path, monkeypatch):
    """worker_data never downloads; its DataError names the process and what to set."""
    missing = tmp_path / "nothing"
    with pytest.raises(DataError, match=f"process {os.getpid()} on .* cannot load CIFAR-10: "
                                        "make the folder given with --data exist on every "
                                        f"worker.*{missing}"):
        worker_data(Source(str(missing)))
    monkeypatch.delenv(env.DATA_DIR, raising=False)
    monkeypatch.setenv(env.CACHE_HOME, str(tmp_path / "cache"))
    with pytest.raises(DataError, match="cannot load CIFAR-10: set CIFAR10_DIR, in the "
                                        "environment `dask worker` starts in.*download=False"):
        worker_data(Source())
    assert not (tmp_path / "cache").exists()                        # nothing downloaded


# ---------------------------------------------------------------------------------------------
# Deadlines: addresses that are not a Dask scheduler, a scheduler without workers

#: What servers make of Dask's handshake, in the refusal: one of each way to fail it, and a
#: Dask scheduler's dashboard port, which the refusal names. (An HTTP server, waiting for a
#: request line, and a silent listener give no reply either: the command line's test with the
#: real deadlines, below, has them.)
NOT_DASK = {"never accepts": "no Dask reply within 0.4 s",  # the kernel's backlog accepts
            "dashboard": "no Dask reply within 0.4 s",      # a Dask scheduler's HTTP port
            "speaks first": "a reply in another protocol",  # "HTTP/1.1 400": 3.07 EiB frames
            "closes": "it closed the connection"}


class _SpeaksFirst(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


class _Silent(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.recv(1 << 16)                  # the handshake; never answered
        self.server.stopped.wait()


class _Closes(socketserver.BaseRequestHandler):
    def handle(self):
        pass


@contextmanager
def server(kind):
    """tcp://127.0.0.1:PORT of a real server of `kind` (a key of NOT_DASK, "http" or "silent"),
    served by threads of this process until the end of the block."""
    if kind == "dashboard":
        with LocalCluster(n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1",
                          scheduler_port=0, dashboard_address="127.0.0.1:0") as dask:
            yield f"tcp://127.0.0.1:{dask.scheduler.services['dashboard'].port}"
        return
    if kind == "never accepts":
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(8)
            yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
        return
    handler = {"http": http.server.SimpleHTTPRequestHandler, "silent": _Silent,
               "speaks first": _SpeaksFirst, "closes": _Closes}[kind]
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as srv:
        srv.daemon_threads = True
        srv.stopped = threading.Event()
        thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield f"tcp://127.0.0.1:{srv.server_address[1]}"
        finally:
            srv.stopped.set()
            srv.shutdown()
            thread.join()


@pytest.fixture
def short_deadlines(monkeypatch):
    """0.2 s to connect, 0.2 s more for the handshake; the line about waiting for workers after
    0.3 s, looking every 0.05 s."""
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 0.2)
    monkeypatch.setattr(cluster, "HANDSHAKE_TIMEOUT", 0.2)
    monkeypatch.setattr(cluster, "NOTICE_AFTER", 0.3)
    monkeypatch.setattr(cluster, "POLL", 0.05)


@pytest.fixture(scope="module")
def idle_scheduler():
    """The address of a real Dask scheduler on 127.0.0.1, in this process, without workers."""
    with LocalCluster(n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1",
                      scheduler_port=0, dashboard_address="127.0.0.1:0") as dask:
        yield dask.scheduler_address


def test_a_server_that_is_not_a_dask_scheduler_is_refused_in_time(short_deadlines):
    """Each within CONNECT_TIMEOUT + HANDSHAKE_TIMEOUT (0.4 s here), where it hung or died with
    a MemoryError of exabytes."""
    for kind, why in NOT_DASK.items():
        with server(kind) as address:
            start = time.monotonic()
            with pytest.raises(ClusterError, match=f"^{address} accepts connections but is not "
                                                   f"a Dask scheduler \\({why}\\): is it the "
                                                   "dashboard's port \\(8787 by default\\)"):
                train_many(Source(), [Config()], scheduler=address, progress=False)
            assert time.monotonic() - start < 0.4 + 1.5, kind


def test_the_check_works_where_an_event_loop_runs(short_deadlines):
    """As in a notebook's kernel, whose thread runs an asyncio loop (where it failed with
    "asyncio.run() cannot be called from a running event loop")."""
    async def in_a_loop():
        with server("speaks first") as address:
            with pytest.raises(ClusterError, match="not a Dask scheduler \\(a reply in another "):
                list(train_on_cluster(address, Source(), [Config()]))
    asyncio.run(in_a_loop())


def test_a_dask_worker_is_not_a_scheduler(short_deadlines):
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                      host="127.0.0.1", scheduler_port=0, dashboard_address="127.0.0.1:0") as dask:
        worker = next(iter(dask.scheduler_info["workers"]))
        with pytest.raises(ClusterError, match=f"^{worker} is a Dask worker, not a Dask "
                                               "scheduler: give the scheduler's address"):
            list(train_on_cluster(worker, Source(), [Config()]))


def test_addresses_that_cannot_be_a_schedulers_are_refused_at_once():
    for address, why in [("http://127.0.0.1:8786", "http:// addresses are not supported"),
                         ("tcp://127.0.0.1", "missing port number"),
                         ("tcp://127.0.0.1:99999", "port 99999 is not in 1..65535"),
                         ("tcp://127.0.0.1:8786/", "invalid literal")]:
        start = time.monotonic()
        with pytest.raises(ClusterError, match=f"^'{address}' is not the address of a Dask "
                                               f"scheduler \\({why}.*\\): give it as "
                                               "tcp://HOST:PORT"):
            list(train_on_cluster(address, Source(), [Config()]))
        assert time.monotonic() - start < 1, address


def test_a_scheduler_without_workers_says_so_then_fails(idle_scheduler, short_deadlines,
                                                        capsys):
    """The line after NOTICE_AFTER (0.3 s here), the error at the deadline (0.8 s)."""
    address = idle_scheduler
    start = time.monotonic()
    with cluster.worker_wait(0.8), pytest.raises(
            ClusterError, match=f"^the Dask scheduler at {address} has had no workers for 0.8 s, "
                                f"with 2 runs waiting: start workers \\(`dask worker {address} "
                                "--nthreads 1`\\), or wait longer with --wait-workers SECONDS or "
                                "\\$ASSIGNMENT3_WAIT_WORKERS$"):
        list(train_on_cluster(address, Source(), [Config(), Config(seed=1)]))
    assert 0.8 <= time.monotonic() - start < 0.8 + 2
    assert capsys.readouterr().err.splitlines() == [
        f"waiting for workers at {address}: the scheduler has none; giving up after 0.8 s "
        "(--wait-workers or $ASSIGNMENT3_WAIT_WORKERS)"]


def test_the_worker_deadline_from_the_environment(idle_scheduler, short_deadlines, monkeypatch,
                                                  capsys):
    """$ASSIGNMENT3_WAIT_WORKERS sets it for train_many (the notebooks' path); worker_wait (the
    search command's --wait-workers) overrides it; a deadline shorter than NOTICE_AFTER fails
    without the line."""
    monkeypatch.setattr(cluster, "NOTICE_AFTER", 10)
    monkeypatch.setenv(env.WAIT_WORKERS, "0.2")
    with pytest.raises(ClusterError, match="no workers for 0.2 s, with 1 run waiting"):
        train_many(Source(), [Config()], scheduler=idle_scheduler, progress=False)
    monkeypatch.setenv(env.WAIT_WORKERS, "1e9")
    with cluster.worker_wait(0.3), pytest.raises(ClusterError, match="no workers for 0.3 s"):
        train_many(Source(), [Config()], scheduler=idle_scheduler, progress=False)
    assert capsys.readouterr().err == ""
    for bad in ("abc", "0", "inf"):               # not a number, too small, not finite
        monkeypatch.setenv(env.WAIT_WORKERS, bad)
        with pytest.raises(EnvironmentValueError, match=f"ASSIGNMENT3_WAIT_WORKERS='{bad}': "
                                                        "expected the seconds to wait for Dask "
                                                        "workers, a number > 0"):
            train_many(Source(), [Config()], scheduler=idle_scheduler, progress=False)


def test_worker_wait_takes_seconds():
    """config.Limit's refusal (its table of kinds is tested with the configuration's settings)."""
    for seconds in (0, math.nan, math.inf, True, "5"):
        with pytest.raises(ValueError, match=f"^seconds must be a number > 0 or None, got "
                                             f"{re.escape(repr(seconds))}$"):
            with cluster.worker_wait(seconds):
                pass


def test_the_search_command_refuses_a_wait_that_is_not_seconds(capsys):
    """The command line's check of a number (config.Limit, tested with the configuration's
    settings): too small, not finite, not a number."""
    for value in ("0", "1e400", "soon"):
        with pytest.raises(SystemExit) as stop:
            main(["search", "--wait-workers", value])
        assert stop.value.code == 2
        assert capsys.readouterr().err == (
            f"python -m assignment3 search: error: argument --wait-workers: expected a number "
            f"> 0, got '{value}' (see python -m assignment3 search --help)\n")


def test_the_search_command_stops_with_one_line(idle_scheduler):
    """Real processes, at once: a server that speaks another protocol first (a MemoryError
    traceback of 3.07 EiB before), and a scheduler without workers with --wait-workers 0.5.
    Each: one line, exit status 2, nothing on stdout."""
    with server("speaks first") as other:
        procs = {address: subprocess.Popen(
            [sys.executable, "-m", "assignment3", *SEARCH, "--scheduler", address, "--json",
             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for address, args in [(other, []), (idle_scheduler, ["--wait-workers", "0.5"])]}
        outputs = {address: proc.communicate(timeout=60) for address, proc in procs.items()}
    assert {address: proc.returncode for address, proc in procs.items()} == dict.fromkeys(procs, 2)
    assert outputs[other] == ("", (
        f"error: {other} accepts connections but is not a Dask scheduler (a reply in another "
        "protocol): is it the dashboard's port (8787 by default) or another server? Give the "
        "scheduler's address, tcp://HOST:8786 by default, with --scheduler or "
        "$ASSIGNMENT3_SCHEDULER\n"))
    assert outputs[idle_scheduler] == ("", (
        f"error: the Dask scheduler at {idle_scheduler} has had no workers for 0.5 s, with 4 "
        f"runs waiting: start workers (`dask worker {idle_scheduler} --nthreads 1`), or wait "
        "longer with --wait-workers SECONDS or $ASSIGNMENT3_WAIT_WORKERS\n"))


# ---------------------------------------------------------------------------------------------
# A real cluster


def spawn(args, log, env=None):
    """A subprocess in a session of its own (so that killpg ends it with its children), its
    output in the file `log`."""
    with open(log, "w") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def kill(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@contextmanager
def dask_cluster(folder, n_workers, worker_env):
    """A scheduler and n_workers workers (one thread each, no nanny: a worker is one process,
    named by its index) on 127.0.0.1; yields (address, worker processes). Kills them all at
    the end."""
    procs = []
    try:
        scheduler_file = folder / "scheduler.json"
        procs.append(spawn([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1",
                            "--port", "0", "--no-dashboard", "--scheduler-file",
                            str(scheduler_file)], folder / "scheduler.log"))
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        workers = [spawn([sys.executable, "-m", "dask", "worker", address, "--nthreads", "1",
                          "--no-nanny", "--no-dashboard", "--host", "127.0.0.1", "--name", str(i)],
                         folder / f"worker{i}.log", env=worker_env) for i in range(n_workers)]
        procs += workers
        if n_workers:
            with Client(address, set_as_default=False) as client:
                client.wait_for_workers(n_workers, timeout=60)
        yield address, workers
    finally:
        for proc in procs:
            kill(proc)


@pytest.fixture(scope="module")
def worker_env(cifar10_dir):
    return {**os.environ, "CIFAR10_DIR": str(cifar10_dir)}


@pytest.fixture(scope="module")
def cluster_address(tmp_path_factory, worker_env):
    """A scheduler and two workers with the data, shared by the tests that kill none."""
    with dask_cluster(tmp_path_factory.mktemp("cluster"), 2, worker_env) as (address, _):
        yield address


@pytest.fixture(scope="module")
def local_search(cifar10_dir):
    """The trials of SEARCH with --jobs 1 (one process, no cluster)."""
    out = subprocess.run([sys.executable, "-m", "assignment3", *SEARCH, "--jobs", "1",
                          "--data", str(cifar10_dir), "--json"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def run_search(args, env=None, timeout=300):
    """The command line in a subprocess."""
    return subprocess.run([sys.executable, "-m", "assignment3", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


@pytest.mark.slow
def test_cluster_search_gives_the_local_trials(cluster_address, local_search, worker_env):
    proc = run_search([*SEARCH, "--scheduler", cluster_address, "--json"], env=worker_env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == local_search
    assert len(local_search["trials"]) == 6


@pytest.mark.slow
def test_a_diverged_trial_on_the_cluster_is_recorded_and_the_search_goes_on(cluster_address,
                                                                           worker_env):
    """lam 1e3 diverges: on the cluster as locally, its trial is marked diverged, the others
    train, and the two searches give the same trials."""
    args = ["search", "--lam-range", "1e-3", "1e3", "--coarse", "3", "--fine", "0", "--cycles",
            "0.02", "--json"]
    local = run_search([*args, "--jobs", "1"], env=worker_env)
    remote = run_search([*args, "--scheduler", cluster_address], env=worker_env)
    assert local.returncode == remote.returncode == 0, (local.stderr, remote.stderr)
    local, remote = json.loads(local.stdout), json.loads(remote.stdout)
    assert remote["best"] == local["best"]
    assert [t["diverged"] is not None for t in remote["trials"]] == [False, False, True]
    assert remote["trials"][:2] == local["trials"][:2]      # where a run diverges, the step
    assert local["trials"][2]["diverged"] is not None        # it is noticed at, may differ


@pytest.mark.slow
def test_environment_variable_sends_train_many_to_the_cluster(cluster_address, cifar10_dir,
                                                                monkeypatch):
    """The notebooks' path: train_many on data from load_cifar10, the scheduler from
    $ASSIGNMENT3_SCHEDULER; the Results come back with their parameters."""
    data = load_cifar10(cifar10_dir, progress=False)
    configs = [Config(hidden=(20,), cycles=0.02, seed=s) for s in (0, 1)]
    local = train_many(data, configs, n_jobs=1)
    monkeypatch.setenv(env.SCHEDULER, cluster_address)
    remote = train_many(data, configs)
    for a, b in zip(local, remote):
        assert a.config == b.config
        assert a.test_accuracy == b.test_accuracy and a.history == b.history
        assert all((P == Q).all() for P, Q in zip(a.params["W"], b.params["W"]))


@pytest.mark.slow
def test_search_survives_a_killed_worker(tmp_path, worker_env, local_search):
    """SIGKILL to a worker while it runs a trial: the scheduler runs that trial again on the
    other worker and the search ends with the same trials."""
    with dask_cluster(tmp_path, 2, worker_env) as (address, workers):
        out = tmp_path / "trials.jsonl"
        search = spawn([sys.executable, "-m", "assignment3", *SEARCH, "--scheduler", address,
                        "--out", str(out), "--json"], tmp_path / "search.log", env=worker_env)
        try:
            with Client(address, set_as_default=False) as client:
                victim = None
                deadline = time.monotonic() + 120
                while victim is None and time.monotonic() < deadline:
                    busy = [w for w, keys in client.processing().items() if keys]
                    if busy and out.exists() and _lines(out) >= 2:    # a trial is done
                        victim = busy[0]
                    time.sleep(0.05)
                assert victim, "no worker was running a trial"
                name = client.scheduler_info()["workers"][victim]["name"]
                os.killpg(workers[int(name)].pid, signal.SIGKILL)
                assert workers[int(name)].wait() == -signal.SIGKILL
            assert search.wait(timeout=300) == 0
        finally:
            kill(search)
        result = json.loads((tmp_path / "search.log").read_text().splitlines()[-1])
    assert result == local_search


@pytest.mark.slow
def test_unreachable_scheduler_stops_the_search_command():
    """The command line waits CONNECT_TIMEOUT (5 s) for the scheduler, then says so in one line
    (with --json: no progress bar) and exits with status 2; the address from --scheduler or
    $ASSIGNMENT3_SCHEDULER. It loads no data (the workers would)."""
    address = closed_port_address()
    procs = [subprocess.Popen([sys.executable, "-m", "assignment3", *SEARCH, "--json", *args],
                              env=env_, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for args, env_ in [(["--scheduler", address], os.environ),
                                ([], {**os.environ, env.SCHEDULER: address})]]
    for proc in procs:                             # both at once: each waits for the timeout
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 2
        assert f"cannot reach a Dask scheduler at '{address}'" in stderr
        assert "Traceback" not in stderr and len(stderr.splitlines()) == 1


@pytest.mark.slow
def test_servers_that_are_not_a_scheduler_stop_the_search_command():
    """With the real deadlines (CONNECT_TIMEOUT + HANDSHAKE_TIMEOUT, 6 s), where the command
    hung for ever: an HTTP server, a silent listener and a Dask dashboard's port, all at once.
    Each: one line, exit status 2, within 10 s of the connection (and the command's start-up,
    three at once on a small machine)."""
    with server("http") as http, server("silent") as silent, server("dashboard") as dashboard:
        start = time.monotonic()
        procs = {address: subprocess.Popen(
            [sys.executable, "-m", "assignment3", *SEARCH, "--scheduler", address, "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for address in (http, silent, dashboard)}
        for address, proc in procs.items():
            assert proc.communicate(timeout=60) == ("", (
                f"error: {address} accepts connections but is not a Dask scheduler (no Dask "
                "reply within 6 s): is it the dashboard's port (8787 by default) or another "
                "server? Give the scheduler's address, tcp://HOST:8786 by default, with "
                "--scheduler or $ASSIGNMENT3_SCHEDULER\n"))
            assert proc.returncode == 2
        assert 6 <= time.monotonic() - start < 10 + 10


@pytest.mark.slow
def test_search_waits_for_its_first_worker(tmp_path, worker_env, local_search, wait_until):
    """A scheduler without workers: after 10 s the search says so in one line (with --json: no
    progress bar) and waits; a worker joins, and the search gives the local search's trials."""
    with dask_cluster(tmp_path, 0, worker_env) as (address, _):
        errors = tmp_path / "search.err"
        start = time.monotonic()
        with open(errors, "w") as stderr:
            search = subprocess.Popen([sys.executable, "-m", "assignment3", *SEARCH,
                                       "--scheduler", address, "--wait-workers", "120", "--json"],
                                      stdout=subprocess.PIPE, stderr=stderr, text=True,
                                      env=worker_env, start_new_session=True)
        worker = None
        try:
            wait_until(lambda: errors.read_text(), 60, "the line about waiting for workers")
            assert time.monotonic() - start >= cluster.NOTICE_AFTER
            assert search.poll() is None                        # it still waits
            worker = spawn([sys.executable, "-m", "dask", "worker", address, "--nthreads", "1",
                            "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"],
                           tmp_path / "worker.log", env=worker_env)
            out, _ = search.communicate(timeout=300)
        finally:
            for proc in (search, worker):
                if proc:
                    kill(proc)
        assert search.returncode == 0
        assert json.loads(out) == local_search
        assert errors.read_text() == (
            f"waiting for workers at {address}: the scheduler has none; giving up after 120 s "
            "(--wait-workers or $ASSIGNMENT3_WAIT_WORKERS)\n")


@pytest.mark.slow
def test_search_stops_when_its_workers_are_gone(tmp_path, worker_env, wait_until):
    """Its only worker killed with SIGKILL during a trial: the scheduler keeps the trials for
    another worker, the search waits --wait-workers (3 s here) for one, then stops with one
    line and exit status 2, where it waited for ever."""
    with dask_cluster(tmp_path, 1, worker_env) as (address, workers):
        search = subprocess.Popen([sys.executable, "-m", "assignment3", *SEARCH, "--scheduler",
                                   address, "--wait-workers", "3", "--json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=worker_env, start_new_session=True)
        try:
            with Client(address, set_as_default=False) as client:
                wait_until(lambda: any(client.processing().values()), 120, "a trial running")
            kill(workers[0])
            killed = time.monotonic()
            out, err = search.communicate(timeout=120)
            waited = time.monotonic() - killed
        finally:
            kill(search)
    assert search.returncode == 2 and out == "" and waited >= 3
    assert re.fullmatch(f"error: the Dask scheduler at {re.escape(address)} has had no workers "
                        "for 3 s, with [1-4] runs? waiting: start workers .*\n", err)


@pytest.mark.slow
def test_worker_without_data_is_named(tmp_path, worker_env):
    env_ = {**worker_env, "CIFAR10_DIR": str(tmp_path / "nothing"),
            "XDG_CACHE_HOME": str(tmp_path / "cache")}
    with dask_cluster(tmp_path, 1, env_) as (address, _):
        with Client(address, set_as_default=False) as client:
            worker = next(iter(client.scheduler_info()["workers"]))
        proc = run_search([*SEARCH, "--scheduler", address], env=worker_env)
    assert proc.returncode == 2
    assert f"Dask worker {worker} on " in proc.stderr and "set CIFAR10_DIR" in proc.stderr
    assert "Traceback" not in proc.stderr


def _lines(path):
    return len(path.read_text().splitlines())
