"""Runs in local worker processes: the same Results as in this process, in the order of the
configurations, a bar over the runs; the workers end with the call, however it ends (results,
an error, SIGTERM or SIGHUP to their parent, the parent killed), leave nothing in /dev/shm and
print no warnings; what a kill of the whole process group leaves, the next run removes."""
import operator
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from assignment3 import env
from assignment3.config import Config, ConfigError
from assignment3.scale.parallel import run_each, scheduler_address, train_many

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
    """No loky worker below this process, and no file of this process in /dev/shm: both may
    take a moment (killed workers' semaphores go when the executor that made them is
    finalized)."""
    wait_until(lambda: not any("LokyProcess" in _cmdline(p) for p in descendants(os.getpid())),
               30, "the workers to end")
    wait_until(lambda: shm_files_of(os.getpid()) == [], 10, "the files in /dev/shm to go")


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


def test_run_each_numbers_the_results_by_their_arguments():
    args = [(i, 10 * i) for i in range(5)]
    assert sorted(run_each(operator.mul, args, n_jobs=1)) == [(i, 10 * i * i) for i in range(5)]
    assert list(run_each(operator.add, [], n_jobs=3)) == []


def test_n_jobs_must_be_a_count(synthetic):
    """Below 1, and not an integer (a bool is none, nor is a string of digits): config.Limit's
    refusal (its table of kinds is tested with the configuration's settings)."""
    for n_jobs in (0, 1.5, True, "2"):
        with pytest.raises(ValueError, match=f"^n_jobs must be an integer >= 1 or None, got "
                                             f"{re.escape(repr(n_jobs))}$"):
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


#: A script's start: synthetic data of 12 MB, which reaches the workers memory-mapped.
SYNTHETIC_DATA = textwrap.dedent("""
    import sys
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
""")

TRAIN_MANY_FOREVER = SYNTHETIC_DATA + textwrap.dedent("""
    train_many(data, [Config(n_s=1_000_000, cycles=1, seed=s) for s in (0, 1)], n_jobs=2,
               progress=False)
""")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir() or not Path("/dev/shm").is_dir(),
                    reason="needs Linux's /proc and /dev/shm")
def test_stopped_parent_takes_its_workers_with_it(shm_files_of, wait_until):
    """The workers end with their parent, which ends by the signal and prints nothing (no
    resource tracker's warning of leaked semaphores): two parents at once, one stopped by
    SIGTERM, one by SIGHUP, while their workers train."""
    parents = {sig: subprocess.Popen([sys.executable, "-c", TRAIN_MANY_FOREVER],
                                     stderr=subprocess.PIPE, text=True)
               for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        for pid in (parent.pid for parent in parents.values()):
            wait_until(lambda pid=pid: sum("LokyProcess" in _cmdline(p)
                                           for p in descendants(pid)) == 2,
                       60, "two worker processes")
        time.sleep(1)
        workers = {sig: descendants(parent.pid) for sig, parent in parents.items()}
        for sig, parent in parents.items():
            parent.send_signal(sig)
        for sig, parent in parents.items():
            _, stderr = parent.communicate(timeout=60)   # until the resource trackers end too
            assert (parent.returncode, stderr) == (-sig, ""), signal.Signals(sig).name
    finally:
        for parent in parents.values():
            parent.kill()
            parent.communicate()
    every = [p for pids in workers.values() for p in pids]
    wait_until(lambda: not any(alive(p) for p in every), 30, "the workers to end")
    assert [f for parent in parents.values() for f in shm_files_of(parent.pid)] == []
    assert [f for p in every for f in shm_files_of(p)] == []


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs Linux's /dev/shm")
def test_killed_process_after_train_many_leaves_no_semaphores():
    """A notebook kernel is killed with its process group (nbval and jupyter do so), loky's
    resource tracker with it: the semaphores of the workers must already be gone by then (new
    ones of processes still running, as other test sessions, are not counted)."""
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
        proc.communicate()                               # and closes its stdout
    assert [name for name in semaphores() - before
            if not alive(int(name.split("-")[1]))] == []     # sem.loky-<pid>-<name>


# ---------------------------------------------------------------------------------------------
# A parent killed outright (SIGKILL, the OOM killer, a batch system's time limit)


def dead_pid():
    """The pid of a process that has ended (and been reaped): pids are handed out in turn, so
    no other process gets it during a test."""
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


def start_in_own_group(script, args=(), **kwargs):
    """The script (with command-line arguments `args`) in a process of its own process group,
    so that a failing test can kill everything it started; stderr captured."""
    return subprocess.Popen([sys.executable, "-c", script, *args], stderr=subprocess.PIPE,
                            text=True, start_new_session=True, **kwargs)


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


def kill_parent_and_check(proc, children, shm_files_of, wait_until):
    """kill -9 of the parent only: its workers and resource trackers (`children`) end within
    5 s, and none of them leaves a file in /dev/shm."""
    try:
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        wait_until(lambda: not any(alive(p) for p in children), 5,
                   "the workers and resource trackers of the killed parent to end")
    finally:
        kill_group(proc)
    assert shm_files_of(proc.pid) == []
    assert [f for p in children for f in shm_files_of(p)] == []


def with_two_workers(proc, wait_until):
    """Wait for two loky workers below proc; return all its child processes (the workers and
    the two resource trackers)."""
    wait_until(lambda: sum("LokyProcess" in _cmdline(p) for p in descendants(proc.pid)) == 2,
               60, "two worker processes")
    return descendants(proc.pid)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux's /proc")
def test_busy_workers_of_a_killed_parent_exit_within_seconds(tmp_path, shm_files_of,
                                                              wait_until):
    """Workers busy in a task notice that their parent died and exit; then loky's resource
    trackers end too and remove the parent's semaphores."""
    proc = start_in_own_group(textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from assignment3.scale.parallel import run_each

        def busy(i):
            Path(sys.argv[1], str(i)).touch()
            time.sleep(600)

        list(run_each(busy, [(0,), (1,)], n_jobs=2))
    """), args=[str(tmp_path)])
    try:
        children = with_two_workers(proc, wait_until)
        wait_until(lambda: len(list(tmp_path.iterdir())) == 2, 30, "both workers in a task")
    except BaseException:
        kill_group(proc)
        raise
    kill_parent_and_check(proc, children, shm_files_of, wait_until)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir() or not Path("/dev/shm").is_dir(),
                    reason="needs Linux's /proc and /dev/shm")
def test_training_workers_of_a_killed_parent_end_and_leave_nothing(shm_files_of, wait_until):
    """kill -9 of a train_many: its workers, training on memory-mapped data, end within
    seconds, and so do the resource trackers, which remove the memory-mapped folder and the
    semaphores."""
    proc = start_in_own_group(TRAIN_MANY_FOREVER)
    try:
        children = with_two_workers(proc, wait_until)
        wait_until(lambda: any(f.startswith("joblib_memmapping_folder_")
                               for f in shm_files_of(proc.pid)), 30, "the memory-mapped data")
        time.sleep(1)                                      # training
    except BaseException:
        kill_group(proc)
        raise
    kill_parent_and_check(proc, children, shm_files_of, wait_until)


def test_next_run_removes_shared_memory_of_dead_owners(tmp_path, monkeypatch):
    """What a process killed with its whole process group leaves (memory-mapped folders and
    loky semaphores whose pid no longer exists) goes at the next run; the files of live
    processes, of other users, and what a symbolic link points to stay."""
    monkeypatch.setenv("JOBLIB_TEMP_FOLDER", str(tmp_path))   # where joblib would put them
    dead, live = dead_pid(), os.getpid()
    stale = tmp_path / f"joblib_memmapping_folder_{dead}_0a1b_2c3d"
    stale.mkdir()
    (stale / f"{dead}-1-data.pkl").write_bytes(b"x" * 1000)
    kept = [tmp_path / f"joblib_memmapping_folder_{live}_0a1b_2c3d",        # a live owner
            tmp_path / "joblib_memmapping_folder_x_0a1b",                   # no pid in it
            tmp_path / f"joblib_memmapping_folder_{10**20}_0a1b"]           # no pid at all
    for folder in kept:
        folder.mkdir()
    target = tmp_path / "mine"
    target.mkdir()
    (target / "keep").write_text("keep")
    kept.append(tmp_path / f"joblib_memmapping_folder_{dead}_link")
    kept[-1].symlink_to(target)
    if os.geteuid() == 0:                                   # root can make another user's
        kept.append(tmp_path / f"joblib_memmapping_folder_{dead}_other")
        kept[-1].mkdir()
        os.chown(kept[-1], os.getuid() + 4321, -1)
    semaphores = Path("/dev/shm")
    if semaphores.is_dir():
        stale_semaphore = semaphores / f"sem.loky-{dead}-stale000"
        stale_semaphore.write_bytes(b"")
    try:
        assert list(run_each(operator.add, [(1, 2)], n_jobs=1)) == [(0, 3)]
        assert not stale.exists()
        assert all(p.is_symlink() or p.is_dir() for p in kept)
        assert (target / "keep").read_text() == "keep"
        if semaphores.is_dir():
            assert not stale_semaphore.exists()
    finally:
        if semaphores.is_dir():
            stale_semaphore.unlink(missing_ok=True)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux's /proc")
def test_group_killed_with_its_trackers_leaves_a_folder_that_the_next_run_removes(
        tmp_path, monkeypatch, wait_until):
    """Killed together with its workers and resource trackers (kill -9 of the process group,
    as batch systems do), a train_many cannot clean up: the next run does."""
    proc = start_in_own_group(TRAIN_MANY_FOREVER, env={**os.environ,
                                                       "JOBLIB_TEMP_FOLDER": str(tmp_path)})
    try:
        with_two_workers(proc, wait_until)
        wait_until(lambda: list(tmp_path.glob("joblib_memmapping_folder_*/*")), 30,
                   "the memory-mapped data")
    finally:
        kill_group(proc)
    left = list(tmp_path.glob(f"joblib_memmapping_folder_{proc.pid}_*"))
    assert left and any(any(folder.iterdir()) for folder in left)
    monkeypatch.setenv("JOBLIB_TEMP_FOLDER", str(tmp_path))
    list(run_each(operator.add, [(1, 2)], n_jobs=1))
    assert list(tmp_path.iterdir()) == []
    assert list(Path("/dev/shm").glob(f"sem.loky-{proc.pid}-*")) == []


# ---------------------------------------------------------------------------------------------
# No stray warnings


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux's /proc")
def test_diverged_run_is_one_line_and_no_warning(shm_files_of):
    """A run that diverges in a worker while the other one trains: the caller gets the
    DivergenceError, the busy worker is killed, and nothing else reaches stderr (no resource
    tracker's "leaked semaphore objects")."""
    script = SYNTHETIC_DATA + textwrap.dedent("""
        from assignment3.nn.optim import DivergenceError
        diverging = Config(hidden=(10,), n_s=20, n_batch=50, lam=1e3, eta_max=10)
        try:
            train_many(data, [Config(n_s=1_000_000, cycles=1), diverging], n_jobs=2,
                       progress=False)
        except DivergenceError as err:
            sys.exit(f"error: {err}")
    """)
    proc = start_in_own_group(script)
    try:
        _, stderr = proc.communicate(timeout=60)          # until the resource trackers end
    finally:
        kill_group(proc)
    assert proc.returncode == 1
    assert re.fullmatch(r"error: training diverged at step \d+: [^\n]*\n", stderr), stderr
    assert shm_files_of(proc.pid) == []


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux's /proc")
def test_search_stopped_by_sigterm_prints_one_line(cifar10_dir, tmp_path, wait_until,
                                                   shm_files_of):
    """`search --jobs 2` stopped while its workers train: exactly the documented line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "assignment3", "search", "--lam-range", "1e-3", "1e-1",
         "--coarse", "2", "--fine", "0", "--cycles", "1", "--jobs", "2", "--json",
         "--out", str(tmp_path / "search.jsonl")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "CIFAR10_DIR": str(cifar10_dir)})
    try:
        children = with_two_workers(proc, wait_until)
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
        wait_until(lambda: not any(alive(p) for p in children), 10,
                   "the workers and resource trackers to end")
    finally:
        kill_group(proc)
    assert (proc.returncode, stdout, stderr) == (128 + signal.SIGTERM, "", "stopped by SIGTERM\n")
    assert shm_files_of(proc.pid) == []
