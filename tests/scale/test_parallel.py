"""Runs in local worker processes: the same Results as in this process, in the order of the
configurations, a bar over the runs; the workers end with the call, however it ends (results,
an error, SIGTERM or SIGHUP to their parent, the parent killed), and leave nothing in /dev/shm."""
import operator
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from assignment3 import env
from assignment3.config import Config, ConfigError
from assignment3.scale.parallel import run_each, run_many, scheduler_address, train_many

#: Two tiny runs on the synthetic data.
CONFIGS = [Config(hidden=(10,), n_s=20, cycles=1, n_batch=50, seed=s) for s in (0, 1)]


def descendants(pid):
    """The pids of all processes below pid, from /proc."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue                                # the process ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def no_workers_left(shm_files_of, wait_until):
    """No loky worker below this process (they may take a moment to exit), and no file of
    this process in /dev/shm."""
    wait_until(lambda: not any("LokyProcess" in _cmdline(p) for p in descendants(os.getpid())),
               30, "the workers to end")
    assert shm_files_of(os.getpid()) == []


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux's /proc")
def test_workers_give_the_runs_of_this_process_and_end(synthetic, shm_files_of, wait_until):
    """n_jobs=2: the Results of n_jobs=1 (one process) bit for bit, in the order of the
    configurations; then no worker process and no shared memory is left."""
    serial = train_many(synthetic, CONFIGS, n_jobs=1, progress=False)
    parallel = train_many(synthetic, CONFIGS, n_jobs=2, progress=False)
    assert [r.config for r in parallel] == CONFIGS
    for a, b in zip(serial, parallel):
        assert a.history == b.history and a.test_accuracy == b.test_accuracy
        assert all(np.array_equal(x, y) for n in a.params for x, y in zip(a.params[n],
                                                                          b.params[n]))
        assert all(np.array_equal(x, y) for s, t in zip(a.stats, b.stats) for x, y in zip(s, t))
    assert serial[0].history != serial[1].history                 # the seeds made two runs
    no_workers_left(shm_files_of, wait_until)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux's /proc")
def test_error_in_a_worker_reaches_the_caller_and_the_workers_end(synthetic, shm_files_of,
                                                                   wait_until):
    configs = [CONFIGS[0], CONFIGS[1].with_(n_batch=301)]      # more than the 300 samples
    with pytest.raises(ConfigError, match="n_batch=301 exceeds the 300 training samples"):
        train_many(synthetic, configs, n_jobs=2, progress=False)
    no_workers_left(shm_files_of, wait_until)


def test_run_many_keeps_the_order_of_its_arguments():
    args = [(i, 10 * i) for i in range(5)]
    assert run_many(operator.add, args, n_jobs=1) == [11 * i for i in range(5)]
    assert sorted(run_each(operator.mul, args, n_jobs=1)) == [(i, 10 * i * i) for i in range(5)]
    assert run_many(operator.add, [], n_jobs=3) == []


@pytest.mark.parametrize("n_jobs", [0, -1, 1.5, True, "2"])
def test_n_jobs_must_be_a_count(synthetic, n_jobs):
    with pytest.raises(ValueError, match="n_jobs must be None \\(default\\) or an integer >= 1, "
                                         f"got {n_jobs!r}"):
        train_many(synthetic, [CONFIGS[0]], n_jobs=n_jobs)


def test_train_many_shows_a_bar_over_the_runs(synthetic, capsys):
    train_many(synthetic, CONFIGS, n_jobs=1)
    assert "2/2" in capsys.readouterr().err
    train_many(synthetic, CONFIGS, n_jobs=1, progress=False)
    assert capsys.readouterr().err == ""


def test_scheduler_address_from_the_argument_or_the_environment(monkeypatch):
    monkeypatch.delenv(env.SCHEDULER, raising=False)
    assert scheduler_address() is None and scheduler_address(2) is None
    assert scheduler_address(2, "tcp://127.0.0.1:1") == "tcp://127.0.0.1:1"
    monkeypatch.setenv(env.SCHEDULER, " tcp://127.0.0.1:2 ")
    assert scheduler_address() == "tcp://127.0.0.1:2"
    assert scheduler_address(n_jobs=1) is None              # local processes asked for
    assert scheduler_address(None, "tcp://127.0.0.1:1") == "tcp://127.0.0.1:1"
    monkeypatch.setenv(env.SCHEDULER, "")
    assert scheduler_address() is None


# ---------------------------------------------------------------------------------------------
# Stops by real signals


TRAIN_MANY_FOREVER = textwrap.dedent("""
    import numpy as np
    from assignment3.config import Config
    from assignment3.data import CIFAR10, Split, one_hot
    from assignment3.scale.parallel import train_many
    rng = np.random.default_rng(0)

    def split(n):
        X = np.asfortranarray(rng.standard_normal((3072, n), dtype=np.float32))
        y = rng.integers(0, 10, n)
        return Split(X, one_hot(y, dtype=np.float32), y)

    data = CIFAR10(split(1000), split(200), split(200), np.zeros((3072, 1)), np.ones((3072, 1)))
    train_many(data, [Config(n_s=1_000_000, cycles=1, seed=s) for s in (0, 1)], n_jobs=2)
""")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir() or not Path("/dev/shm").is_dir(),
                    reason="needs Linux's /proc and /dev/shm")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_stopped_parent_takes_its_workers_with_it(sig, shm_files_of, wait_until):
    parent = subprocess.Popen([sys.executable, "-c", TRAIN_MANY_FOREVER])
    try:
        wait_until(lambda: sum("LokyProcess" in _cmdline(p) for p in descendants(parent.pid)) == 2,
                   60, "two worker processes training")
        workers = descendants(parent.pid)
        parent.send_signal(sig)
        assert parent.wait(timeout=60) == -sig
    finally:
        parent.kill()
        parent.wait()
    wait_until(lambda: not any(alive(p) for p in workers), 30, "the workers to end")
    assert shm_files_of(parent.pid) == []


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs Linux's /dev/shm")
def test_killed_process_after_train_many_leaves_no_semaphores():
    """A notebook kernel is killed with its process group (nbval and jupyter do so), loky's
    resource tracker with it: the semaphores of the workers must already be gone by then."""
    def semaphores():
        return {p.name for p in Path("/dev/shm").glob("sem.loky-*")}

    before = semaphores()
    script = TRAIN_MANY_FOREVER.replace("n_s=1_000_000", "n_s=5") + \
        "print('done', flush=True)\nimport time\ntime.sleep(600)\n"
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "done"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert semaphores() - before == set()
