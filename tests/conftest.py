"""Shared pytest fixtures: the real CIFAR-10 (for the tests marked slow) and a small synthetic
data set built in memory (for everything else)."""

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

#: The fixtures that hold the real CIFAR-10: a test that uses one is slow (`make check` leaves it
#: out, and must run without the data).
REAL_DATA = {"cifar10_dir", "cifar10", "small_data"}


def pytest_collection_modifyitems(config, items):
    """A test that uses the real CIFAR-10 but is not marked slow is an error of the test suite:
    the fast tier (`pytest -m "not slow"`) must run where there is no CIFAR-10."""
    unmarked = [item.nodeid for item in items if REAL_DATA & set(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("slow") is None]
    if unmarked:
        raise pytest.UsageError("tests that use the real CIFAR-10 must be marked slow: "
                                + ", ".join(unmarked))


@pytest.fixture(scope="session")
def cifar10_dir() -> Path:
    """The real CIFAR-10 batches: $CIFAR10_DIR, else <repo>/../shared/data/cifar-10-batches-py."""
    candidates = [REPO.parent / "shared" / "data" / "cifar-10-batches-py"]
    if os.environ.get("CIFAR10_DIR"):
        candidates.insert(0, Path(os.environ["CIFAR10_DIR"]).resolve())
    for folder in candidates:
        if (folder / "test_batch").is_file():
            return folder
    pytest.skip(f"real CIFAR-10 data not found in {' or '.join(map(str, candidates))}; "
                "set CIFAR10_DIR to the cifar-10-batches-py folder")


@pytest.fixture(scope="session")
def cifar10(cifar10_dir):
    """The real CIFAR-10 splits in float32, loaded once per test session."""
    from assignment3.data import load_cifar10
    return load_cifar10(cifar10_dir)


@pytest.fixture(scope="session")
def small_data(cifar10):
    """A small slice of the real data (2,000 train, 1,000 val, 1,000 test) for quick trainings."""
    from assignment3.data import CIFAR10, Split

    def part(split, n):
        return Split(split.X[:, :n], split.Y[:, :n], split.y[:n])

    return CIFAR10(train=part(cifar10.train, 2000), val=part(cifar10.val, 1000),
                   test=part(cifar10.test, 1000), mean=cifar10.mean, std=cifar10.std)


def make_synthetic(n_train=300, n_val=100, n_test=100, d=3072, K=10, seed=0, dtype=np.float32):
    """A CIFAR10 of random images (X d x n, normalised like load_cifar10's: mean 0, std 1 per
    dimension) whose labels are the arg-max of a fixed random linear map of X plus noise, so that
    a network fits the training labels well above the chance 1/K in a few hundred steps (with
    300 images in 3072 dimensions, validation and test accuracy stay near chance)."""
    from assignment3.data import CIFAR10, Split, one_hot

    rng = np.random.default_rng(seed)
    A = rng.standard_normal((K, d)) / np.sqrt(d)

    def split(n):
        X = rng.standard_normal((n, d)).astype(dtype).T          # X.T C-contiguous, as loaded
        y = (A @ X + 0.5 * rng.standard_normal((K, n))).argmax(axis=0).astype(np.int64)
        return Split(X=X, Y=one_hot(y, K, dtype=dtype), y=y)

    return CIFAR10(train=split(n_train), val=split(n_val), test=split(n_test),
                   mean=np.zeros((d, 1)), std=np.ones((d, 1)))


@pytest.fixture(scope="session")
def synthetic():
    """A small synthetic CIFAR10 (300 train, 100 val, 100 test images, float32), built in memory
    once per session: `make_synthetic()`."""
    return make_synthetic()


@pytest.fixture(scope="session")
def synthetic64():
    """The same synthetic data in float64."""
    return make_synthetic(dtype=np.float64)


def equal_params(a, b):
    """Whether two parameter dicts hold the same arrays, bit for bit and of the same dtypes."""
    return a.keys() == b.keys() and all(
        len(a[n]) == len(b[n]) and all(x.dtype == y.dtype and np.array_equal(x, y)
                                       for x, y in zip(a[n], b[n])) for n in a)


def equal_stats(a, b):
    """Whether two lists of BN statistics (mu, v) hold the same arrays, bit for bit."""
    return len(a) == len(b) and all(np.array_equal(x, y) for s, t in zip(a, b)
                                    for x, y in zip(s, t))


def _wait_until(condition, timeout, what):
    """Poll `condition()` until it is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(name="wait_until", scope="session")
def wait_until_fixture():
    """`wait_until(condition, timeout, what)`: poll until condition() holds, else fail."""
    return _wait_until


def _sgd_update(params, grads, velocities, eta, momentum=0.0, nesterov=False):
    """The update rule written out, in place, array by array: v = mu v + g, then theta -= eta v
    (Nesterov: theta -= eta (g + mu v)); with mu = 0 plain theta -= eta g."""
    for name in params:
        for P, G, V in zip(params[name], grads[name], velocities[name]):
            V *= momentum
            V += G
            P -= eta * (G + momentum * V if nesterov else V)


@pytest.fixture(name="sgd_update", scope="session")
def sgd_update_fixture():
    """`sgd_update(params, grads, velocities, eta, momentum, nesterov)`: the reference update."""
    return _sgd_update


def shm_files_of(pid):
    """Our files in /dev/shm made by process pid: joblib's memory-mapped folders and loky's
    semaphores."""
    return sorted(p.name for p in Path("/dev/shm").glob("*") if p.name.startswith(
        (f"joblib_memmapping_folder_{pid}_", f"sem.loky-{pid}-")))


@pytest.fixture(name="shm_files_of", scope="session")
def shm_files_of_fixture():
    return shm_files_of


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_stops():
    """SIGINT as Ctrl-C in this process and the processes it starts, as in a terminal, even when
    the tests were started in the background by a shell (`make check &`), which ignores SIGINT
    for them: the tests of stops send it."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session", autouse=True)
def no_shared_memory_left_behind():
    """After the tests, this process has left nothing in /dev/shm (other processes, such as
    other test sessions, are not counted)."""
    before = shm_files_of(os.getpid())
    yield
    assert shm_files_of(os.getpid()) == before == [], "files left in /dev/shm"


@pytest.fixture
def cli_synthetic(synthetic, monkeypatch, capsys):
    """The command line in this process on the `synthetic` data: `run(*args)` -> (exit status,
    stdout, stderr) of `main(args)`, with the commands' load_cifar10 giving `synthetic` (the
    small data set; a CIFAR-10 folder of synthetic batches is 740 MB in float32)."""
    from assignment3.cli import main

    monkeypatch.setattr("assignment3.cli.commands.load_cifar10",
                        lambda *args, **kwargs: synthetic)

    def run(*args):
        status = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return status, out, err
    return run
