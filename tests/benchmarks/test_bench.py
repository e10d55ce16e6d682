"""benchmarks/bench.py times the training loop by running it step by step with the package's own
functions, its working tree's and, with --baseline, an older revision's in either layout: here its
loop must be the loop of `train` (the same parameters after the same steps, bit for bit), so that
a change of the training code shows up here, not as a wrong figure in `make bench`. On the
synthetic data (no CIFAR-10)."""
import importlib.util
import subprocess
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from assignment3 import Config, train

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks" / "bench.py"
#: Steps of each compared run: Config(n_s=15, cycles=1) makes train's run this long.
STEPS = 30


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def revision(rev):
    """`rev`, or a skip if this checkout does not hold it (a shallow clone)."""
    found = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{rev}^{{commit}}"],
                           capture_output=True)
    if found.returncode != 0:
        pytest.skip(f"revision {rev} is not in this checkout")
    return rev


def baseline(bench, rev, tmp_path, monkeypatch):
    """The `Code` of revision `rev`, extracted as bench.py --baseline does."""
    name = bench.baseline_package(revision(rev), tmp_path, name=f"a3_{rev}")
    monkeypatch.syspath_prepend(str(tmp_path))
    return bench.load_code(name)


def assert_same_params(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert len(a[name]) == len(b[name])
        for P, Q in zip(a[name], b[name]):
            np.testing.assert_array_equal(P, Q)


@pytest.mark.parametrize("fields", [
    {"batch_norm": True},
    {"batch_norm": False, "hidden": (20, 10, 10)},
    {"batch_norm": True, "dropout": 0.2, "flip": True, "momentum": 0.9},
], ids=["bn", "no-bn-4-layer", "dropout-flip-momentum"])
def test_step_loop_is_the_loop_of_train(bench, synthetic, fields):
    code = bench.load_code("assignment3")
    assert code.layout == "nested"
    fields = {**fields, "n_s": STEPS // 2, "cycles": 1}
    seconds, params, stats = bench.run_steps(code, synthetic, fields, STEPS)
    result = train(synthetic, Config(**fields))
    assert result.steps == STEPS and seconds > 0
    assert_same_params(params, result.params)
    assert len(stats or []) == len(result.stats)
    for (mu, v), (mu_r, v_r) in zip(stats or [], result.stats):
        np.testing.assert_array_equal(mu, mu_r)
        np.testing.assert_array_equal(v, v_r)


def test_baseline_in_the_flat_layout_is_timed_with_its_own_loop(bench, synthetic, tmp_path,
                                                               monkeypatch):
    code = baseline(bench, "488c968", tmp_path, monkeypatch)      # the last flat layout
    assert code.layout == "flat" and code.package == "a3_488c968"
    fields = {"n_s": STEPS // 2, "cycles": 1}
    _, params, _ = bench.run_steps(code, synthetic, fields, STEPS)
    assert_same_params(params, code.train(synthetic, code.Config(**fields)).params)


def test_baseline_of_the_first_loop_is_timed_with_that_loop(bench, synthetic, tmp_path,
                                                           monkeypatch):
    code = baseline(bench, "9d3f9fb", tmp_path, monkeypatch)      # the first training loop
    assert code.layout == "first"
    fields = {"n_s": STEPS // 2, "cycles": 1}
    _, params, _ = bench.run_steps(code, synthetic, fields, STEPS)      # one BLAS thread
    with threadpool_limits(1, user_api="blas"):   # 9d3f9fb's train takes the process's threads
        result = code.train(synthetic, code.Config(**fields))
    assert_same_params(params, result.params)


def test_baseline_between_the_layouts_is_refused(bench, tmp_path):
    rev = revision("542ac99")       # a step function, but no minibatches.step_inputs yet
    with pytest.raises(SystemExit, match="--baseline 542ac99: revisions from 0b2cea4 to "
                                         "before aebdaaf have a step loop this benchmark"):
        bench.baseline_package(rev, tmp_path)
    assert not (tmp_path / "a3_baseline").exists()
