"""The Dask backend. Without a cluster: an unreachable scheduler, data the workers cannot load
themselves and a worker without data are clear errors. On a real cluster (slow): a scheduler and
workers started as subprocesses on 127.0.0.1 (`dask scheduler`, `dask worker --nthreads 1`),
searches run by the real command line, a worker killed with SIGKILL mid-search; every process
is killed again after its test."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest

pytest.importorskip("distributed", reason="the Dask backend needs the cluster extra")
from distributed import Client  # noqa: E402

from assignment3 import env  # noqa: E402
from assignment3.config import Config  # noqa: E402
from assignment3.data import DataError, Source, load_cifar10  # noqa: E402
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


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_unreachable_scheduler_is_a_cluster_error(how, monkeypatch):
    """Within the connection timeout (cut here to 0.2 s), naming the address."""
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 0.2)
    address = closed_port_address()
    if how == "environment":
        monkeypatch.setenv(env.SCHEDULER, address)
    start = time.monotonic()
    with pytest.raises(ClusterError, match=f"cannot reach a Dask scheduler at '{address}' .*: "
                                           "start one \\(`dask scheduler`\\)"):
        train_many(Source(), [Config()], scheduler=address if how == "argument" else None)
    assert time.monotonic() - start < 10


def test_data_that_workers_cannot_load_is_refused(synthetic):
    """A CIFAR10 not loaded by load_cifar10 (here built in memory) has no Source to send."""
    with pytest.raises(ValueError, match="Dask workers load CIFAR-10 themselves, so they need "
                                         "data as load_cifar10 returns it"):
        list(train_on_cluster(closed_port_address(), synthetic, [Config()]))


def test_no_runs_need_no_cluster():
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
