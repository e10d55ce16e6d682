"""Lambda search: the grids and the coarse-to-fine logic, on short real trainings."""
import numpy as np
import pytest

from assignment3.search import best_trial, coarse_to_fine, lambda_values
from assignment3.training import Config


def test_log_spaced_values():
    lams = lambda_values(1e-5, 1e-1, 8)
    assert len(lams) == 8 and lams[0] == pytest.approx(1e-5) and lams[-1] == pytest.approx(1e-1)
    assert np.allclose(np.diff(np.log10(lams)), 4 / 7)


def test_random_values_in_range_sorted_and_seeded():
    lams = lambda_values(1e-4, 1e-2, 20, random=True, seed=1)
    assert all(1e-4 <= v <= 1e-2 for v in lams) and lams == sorted(lams)
    assert lams == lambda_values(1e-4, 1e-2, 20, random=True, seed=1)
    assert lams != lambda_values(1e-4, 1e-2, 20, random=True, seed=2)


@pytest.mark.parametrize("args", [(0, 1, 3), (1e-2, 1e-3, 3), (1e-3, 1e-2, 0)])
def test_bad_ranges(args):
    with pytest.raises(ValueError):
        lambda_values(*args)


def test_best_trial_uses_validation_only():
    trials = [{"lam": 1, "val_accuracy": 0.5, "test_accuracy": 0.9},
              {"lam": 2, "val_accuracy": 0.6, "test_accuracy": 0.1}]
    assert best_trial(trials)["lam"] == 2


def test_coarse_to_fine_searches_around_the_best(small_data):
    out = coarse_to_fine(small_data, Config(n_s=10, cycles=1), n_coarse=4, n_fine=4, n_jobs=1)
    coarse = [t["lam"] for t in out["coarse"]]
    assert np.allclose(coarse, lambda_values(1e-5, 1e-1, 4))
    best_coarse = best_trial(out["coarse"])["lam"]
    fine = [t["lam"] for t in out["fine"]]
    step = 4 / 3                                   # the coarse grid's step in log10
    assert np.allclose(np.log10(fine), np.log10(best_coarse) + np.linspace(-step, step, 6)[1:-1])
    assert not set(fine) & set(coarse)
    every = out["coarse"] + out["fine"]
    assert out["best"]["val_accuracy"] == max(t["val_accuracy"] for t in every)
    assert all(t["result"].config.lam == t["lam"] for t in every)
