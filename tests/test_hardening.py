"""Bad inputs of the library's public functions and of the environment, and stops by real
signals: a parent of worker processes and a download stopped by SIGTERM or SIGHUP leave no
process and no file behind."""
import hashlib
import http.server
import io
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from assignment3 import env, network
from assignment3.beyond import load_or_train
from assignment3.data import CIFAR10, DataError, Split, download_cifar10, load_cifar10, one_hot
from assignment3.limits import ConfigError
from assignment3.network import compute_cost, compute_gradients, evaluate, forward, init_params
from assignment3.parallel import default_jobs, train_many
from assignment3.training import Config, DivergenceError, train

DIMS = [20, 30, 10]


# ---------------------------------------------------------------------------------------------
# The network's public functions


@pytest.fixture
def net():
    rng = np.random.default_rng(0)
    params = init_params(DIMS, batch_norm=True, seed=0)
    X = rng.standard_normal((20, 6))
    y = rng.integers(0, 10, 6)
    _, _, stats = forward(params, X)
    return params, X, one_hot(y), y, stats


def with_nan(X):
    X = X.copy()
    X[3, 2] = np.nan
    return X


#: (what is changed, the exception and part of its message): each is refused by all of
#: forward, compute_gradients, compute_cost and evaluate that take that input.
BAD_INPUTS = [
    ("X", lambda X: X[:, :0], ValueError, "n >= 1"),                       # an empty batch
    ("X", lambda X: X[:5], ValueError, "d = 20"),
    ("X", lambda X: X.astype(np.int64), TypeError, "floats"),
    ("X", lambda X: X.astype(np.complex128), TypeError, "floats"),
    ("X", lambda X: X.tolist(), TypeError, "numpy array"),
    ("X", with_nan, ValueError, "NaN or infinite"),
    ("X", lambda X: X * np.inf, ValueError, "NaN or infinite"),
    ("params", lambda p: {**p, "W": p["W"][:1]}, ValueError, "gamma and beta"),
    ("params", lambda p: {k: v for k, v in p.items() if k != "beta"}, TypeError, "dict"),
    ("params", lambda p: {**p, "W": [p["W"][0].T, p["W"][1]]}, ValueError, "do not fit"),
    ("params", lambda p: {**p, "b": [b.astype(int) for b in p["b"]]}, TypeError, "floats"),
]


@pytest.mark.parametrize("which, change, error, message", BAD_INPUTS)
@pytest.mark.parametrize("call", ["forward", "compute_gradients", "compute_cost", "evaluate"])
def test_public_functions_refuse_bad_inputs(net, which, change, error, message, call):
    params, X, Y, y, stats = net
    if which == "X":
        X = change(X)
    else:
        params = change(params)
    calls = {"forward": lambda: forward(params, X),
             "compute_gradients": lambda: compute_gradients(params, X, Y, 0.01),
             "compute_cost": lambda: compute_cost(params, X, Y, 0.01),
             "evaluate": lambda: evaluate(params, X, y, 0.01, stats)}
    with pytest.raises(error, match=message):
        calls[call]()


@pytest.mark.parametrize("labels, error, message", [
    (lambda y: np.where(np.arange(6) == 2, -1, y), ValueError, r"labels in 0\.\.9, got labels in -1"),
    (lambda y: np.where(np.arange(6) == 2, 10, y), ValueError, r"got labels in \d\.\.10"),
    (lambda y: y.astype(np.float64), TypeError, "integer labels"),
    (lambda y: y.astype(bool), TypeError, "integer labels"),
    (lambda y: y[:4], ValueError, "n = 6 labels"),
])
def test_evaluate_refuses_bad_labels(net, labels, error, message):
    params, X, _, y, stats = net
    with pytest.raises(error, match=message):
        evaluate(params, X, labels(y), 0.0, stats)


@pytest.mark.parametrize("Y, message", [
    (lambda Y: Y * 2, "one-hot or soft targets"),
    (lambda Y: np.full_like(Y, 0.2), "sum to 1"),             # a uniform 0.1 is a soft target
    (lambda Y: 1.5 * Y - 0.05, "entries in \\[0, 1\\]"),
    (lambda Y: Y[:, :3], "K x n"),
])
def test_gradients_and_cost_refuse_targets_that_are_not_distributions(net, Y, message):
    params, X, Y0, _, _ = net
    for call in (compute_gradients, compute_cost):
        with pytest.raises(ValueError, match=message):
            call(params, X, Y(Y0), 0.0)


@pytest.mark.parametrize("lam, error", [(-0.1, ValueError), (np.nan, ValueError),
                                        (np.inf, ValueError), ("0.1", TypeError),
                                        (True, TypeError), (1j, TypeError)])
def test_lam_must_be_a_finite_number(net, lam, error):
    params, X, Y, y, stats = net
    for call in (lambda: compute_cost(params, X, Y, lam),
                 lambda: compute_gradients(params, X, Y, lam),
                 lambda: evaluate(params, X, y, lam, stats)):
        with pytest.raises(error, match="lam"):
            call()


def test_statistics_must_fit_the_bn_layers(net):
    params, X, _, y, stats = net
    for bad in (stats[:0], [(mu.T, v) for mu, v in stats], [stats[0][0]]):
        with pytest.raises(ValueError, match="one \\(mu, v\\) pair per BN layer"):
            evaluate(params, X, y, 0.0, bad)
        with pytest.raises(ValueError, match="one \\(mu, v\\) pair per BN layer"):
            network.test_scores(params, X, bad)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"dims": [20, 2.5, 10]}, ValueError, "integers >= 1"),
    ({"dims": [20, "30", 10]}, ValueError, "integers >= 1"),
    ({"dims": [20, True, 10]}, ValueError, "integers >= 1"),
    ({"dims": "20,30"}, ValueError, "integers >= 1"),
    ({"batch_norm": "no"}, TypeError, "batch_norm must be True or False"),
    ({"batch_norm": None}, TypeError, "batch_norm must be True or False"),
    ({"init": True}, ValueError, "init must be"),
    ({"init": np.inf}, ValueError, "finite number > 0"),
    ({"init": np.nan}, ValueError, "finite number > 0"),
    ({"seed": -1}, ValueError, "seed must be"),
    ({"seed": True}, ValueError, "seed must be"),
    ({"dtype": "float16"}, ValueError, "dtype must be float32 or float64"),
    ({"dtype": "nonsense"}, ValueError, "dtype must be float32 or float64"),
])
def test_init_params_refuses_bad_arguments(kwargs, error, message):
    args = {"dims": DIMS, "batch_norm": True, **kwargs}
    with pytest.raises(error, match=message):
        init_params(args.pop("dims"), **args)


# ---------------------------------------------------------------------------------------------
# Config and train


@pytest.mark.parametrize("kwargs, error, message", [
    ({"batch_norm": "no"}, TypeError, "batch_norm must be True or False, got 'no'"),
    ({"flip": 1}, TypeError, "flip must be True or False"),
    ({"n_s": 0}, ValueError, r"n_s must be an integer in \[1, 1000000\] or None, got 0"),
    ({"n_s": 2.5}, TypeError, "n_s must be an integer"),
    ({"n_batch": 100.0}, TypeError, "n_batch must be an integer"),
    ({"n_batch": True}, TypeError, "n_batch must be an integer"),
    ({"seed": -1}, ValueError, "seed must be an integer >= 0"),
    ({"lam": float("nan")}, ValueError, "lam must be a number >= 0, got nan"),
    ({"eta_max": float("inf")}, ValueError, "eta_max must be a number > 0"),
    ({"cycles": float("inf")}, ValueError, "cycles must be a number in"),
    ({"momentum": float("nan")}, ValueError, "momentum"),
    ({"lam": "0.1"}, TypeError, "lam must be a number"),
    ({"init": float("nan")}, ValueError, "init must be he, xavier or a number > 0"),
    ({"init": True}, TypeError, "init must be"),
    ({"dtype": np.float16}, TypeError, "dtype must be one of float32, float64"),
    ({"hidden": 50}, TypeError, "hidden must be a non-empty sequence"),
    ({"hidden": "50,50"}, TypeError, "hidden must be a non-empty sequence"),
    ({"hidden": (50, 2.5)}, TypeError, "every layer size in hidden"),
    ({"hidden": (100_000,)}, ValueError, "every layer size in hidden"),
    ({"hidden": (4000,) * 4}, ValueError, "parameters on CIFAR-10"),
    ({"eta_min": 0.2}, ValueError, "eta_max=0.1 must be at least eta_min=0.2"),
    ({"n_batch": 1}, ValueError, "needs n_batch >= 2"),
    ({"epochs": 3}, ValueError, "epochs=3 is the length of a one-cycle run"),
])
def test_config_refuses_values_it_cannot_use(kwargs, error, message):
    with pytest.raises(error, match=message) as err:
        Config(**kwargs)
    assert isinstance(err.value, ConfigError)


def test_config_stores_hidden_as_a_tuple_of_ints():
    config = Config(hidden=[np.int64(40), 20])
    assert config.hidden == (40, 20) and all(type(m) is int for m in config.hidden)
    assert config == Config(hidden=(40, 20))


def test_train_refuses_a_run_that_does_not_fit(small_data):
    with pytest.raises(ConfigError, match="n_batch=2001 exceeds the 2000 training samples"):
        train(small_data, Config(n_batch=2001))
    with pytest.raises(ConfigError, match=r"cycles=0.001 makes 0 training steps"):
        train(small_data, Config(cycles=0.001))       # 200 steps a cycle
    with pytest.raises(ConfigError, match="blas_threads=.* exceeds the .* cores"):
        train(small_data, Config(blas_threads=(os.cpu_count() or 1) + 1))
    with pytest.raises(TypeError, match="config must be a training.Config"):
        train(small_data, {"hidden": (50,)})


def replace_split(data, name, X=None, y=None):
    split = getattr(data, name)
    y = split.y if y is None else y
    new = Split(split.X if X is None else X, split.Y if y is split.y else one_hot(y % 10, dtype=split.Y.dtype), y)
    return CIFAR10(**{**{s: getattr(data, s) for s in ("train", "val", "test")}, name: new},
                   mean=data.mean, std=data.std)


@pytest.mark.parametrize("name", ["train", "val", "test"])
def test_nan_in_the_data_is_bad_data_not_divergence(small_data, name):
    X = getattr(small_data, name).X.copy()
    X[100, 7] = np.nan
    with pytest.raises(ValueError, match=f"data.{name}.X holds NaN or infinite values: the data"):
        train(replace_split(small_data, name, X=X), Config(cycles=0.05))


def test_bad_labels_in_the_data(small_data):
    y = small_data.val.y.copy()
    y[5] = -1
    with pytest.raises(ValueError, match=r"data.val.y must hold labels in 0..9"):
        train(replace_split(small_data, "val", y=y), Config(cycles=0.05))
    y = small_data.train.y.copy()
    y[0] = (y[0] + 1) % 10                            # Y no longer says the same
    broken = CIFAR10(Split(small_data.train.X, small_data.train.Y, y), small_data.val,
                     small_data.test, small_data.mean, small_data.std)
    with pytest.raises(ValueError, match="data.train.Y is not the one-hot form of data.train.y"):
        train(broken, Config(cycles=0.05))


def test_divergence_is_still_reported_as_divergence(small_data):
    with pytest.raises(DivergenceError):
        train(small_data, Config(batch_norm=False, eta_min=1e3, eta_max=1e4, n_s=50))


def test_constant_pixel_is_bad_data(cifar10_dir):
    """One training image: every pixel has std 0 and cannot be normalised."""
    with pytest.raises(DataError, match="3072 of the 3072 pixel values .* std is 0"):
        load_cifar10(cifar10_dir, n_val=49_999, progress=False)


# ---------------------------------------------------------------------------------------------
# Environment variables


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5", "1000000"])
def test_jobs_variable_must_be_a_core_count(monkeypatch, value):
    monkeypatch.setenv("ASSIGNMENT3_JOBS", value)
    with pytest.raises(env.EnvironmentValueError,
                       match=f"ASSIGNMENT3_JOBS='{value}': expected the number of worker "
                             f"processes, an integer in 1..{os.cpu_count()}"):
        default_jobs()


@pytest.mark.parametrize("value, jobs", [("", os.cpu_count()), (" 1 ", 1), ("1", 1)])
def test_jobs_variable_unset_empty_or_valid(monkeypatch, value, jobs):
    monkeypatch.setenv("ASSIGNMENT3_JOBS", value)
    assert default_jobs() == jobs


def test_retrain_variable_must_be_0_or_1(monkeypatch, tmp_path):
    monkeypatch.setenv("ASSIGNMENT3_RETRAIN", "yes")
    with pytest.raises(env.EnvironmentValueError, match="ASSIGNMENT3_RETRAIN='yes': expected "
                                                        "one of 0, 1"):
        load_or_train(None, tmp_path)


@pytest.mark.parametrize("n_jobs", [0, -1, 1.5, True, "2"])
def test_n_jobs_must_be_a_count(small_data, n_jobs):
    with pytest.raises(ValueError, match="n_jobs must be None"):
        train_many(small_data, [Config(cycles=0.05)], n_jobs=n_jobs)


# ---------------------------------------------------------------------------------------------
# Stops by real signals


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


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


TRAIN_MANY_FOREVER = textwrap.dedent("""
    import numpy as np
    from assignment3.data import CIFAR10, Split, one_hot
    from assignment3.parallel import train_many
    from assignment3.training import Config
    rng = np.random.default_rng(0)

    def split(n):
        X = np.asfortranarray(rng.standard_normal((3072, n), dtype=np.float32))
        y = rng.integers(0, 10, n)
        return Split(X, one_hot(y, dtype=np.float32), y)

    data = CIFAR10(split(1000), split(200), split(200), np.zeros((3072, 1)), np.ones((3072, 1)))
    train_many(data, [Config(n_s=1_000_000, cycles=1, seed=s) for s in (0, 1)], n_jobs=2)
""")


@pytest.mark.skipif(not Path("/proc").is_dir() or not Path("/dev/shm").is_dir(),
                    reason="needs Linux's /proc and /dev/shm")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_stopped_parent_takes_its_workers_with_it(sig, shm_files_of):
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


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def test_train_many_leaves_no_workers_or_shared_memory(small_data, shm_files_of):
    results = train_many(small_data, [Config(n_s=10, cycles=1, seed=s) for s in (0, 1)], n_jobs=2)
    assert len(results) == 2
    wait_until(lambda: not any("LokyProcess" in _cmdline(p) for p in descendants(os.getpid())),
               30, "the workers to end")
    assert shm_files_of(os.getpid()) == []


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


class StallingHandler(http.server.BaseHTTPRequestHandler):
    """Sends the headers of a large file and its first bytes, then waits (a slow download)."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(10**9))
        self.end_headers()
        self.wfile.write(b"x" * 1_000_000)          # more than one read of the download
        self.wfile.flush()
        self.server.release.wait(60)

    def log_message(self, *args):
        pass


@pytest.fixture
def stalling_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StallingHandler)
    server.release = threading.Event()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/cifar.tar.gz"
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_download_stopped_by_a_signal_leaves_no_part_file(stalling_server, tmp_path, sig):
    root = tmp_path / "cache"
    code = (f"from assignment3.data import download_cifar10; "
            f"download_cifar10({str(root)!r}, url={stalling_server!r}, progress=False)")
    child = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: any(p.stat().st_size > 0 for p in root.glob(".*part*")), 60,
                   "the download to start")
        child.send_signal(sig)
        status = child.wait(timeout=30)
    finally:
        child.kill()
        child.wait()
    assert status == -sig                             # ended by the signal, after cleaning up
    assert list(root.iterdir()) == []


def archive_with_batches():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                     "data_batch_5", "test_batch"):
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = 4
            tar.addfile(info, io.BytesIO(b"fake"))
    return buffer.getvalue()


class ArchiveHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.server.archive)))
        self.end_headers()
        self.wfile.write(self.server.archive)

    def log_message(self, *args):
        pass


def test_stale_part_files_are_removed_but_not_live_ones(tmp_path):
    import fcntl
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ArchiveHandler)
    server.archive = archive_with_batches()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    root = tmp_path / "cache"
    root.mkdir()
    stale = root / ".cifar-10-python.tar.gz.part-killed1"
    stale.write_bytes(b"half an archive")
    live = root / ".cifar-10-python.tar.gz.part-running"
    try:
        with live.open("wb") as f:
            fcntl.flock(f, fcntl.LOCK_EX)             # as a download in progress holds it
            download_cifar10(root, url=f"http://127.0.0.1:{server.server_address[1]}/a.tar.gz",
                             md5=hashlib.md5(server.archive).hexdigest(), progress=False)
            assert not stale.exists() and live.exists()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert sorted(p.name for p in root.iterdir()) == [
        ".cifar-10-python.tar.gz.part-running", "cifar-10-batches-py", "cifar-10-python.tar.gz"]
