"""assignment3.nn.gradcheck: analytic gradients against centred differences, for every W, b,
gamma, beta, 1 to 4 hidden layers, with and without BN, lam 0 and > 0, both BN orders, dropout and
soft targets, float64. The fast tests use narrow layers (the check's time grows with the number
of parameters); the widths of the report's checks (50 units) are the slow ones."""
import numpy as np
import pytest

from assignment3.data import one_hot
from assignment3.nn.augment import mixup, smooth_labels
from assignment3.nn.gradcheck import (
    check_gradients,
    copy_params,
    numerical_gradients,
    relative_error,
)
from assignment3.nn.network import Net, compute_gradients, dropout_masks, forward, init_params

#: Hidden layers of the fast checks, and of the report's (slow).
HIDDEN = [(12,), (12, 10), (12, 10, 8), (12, 10, 8, 8)]
REPORT_HIDDEN = [(50,), (50, 50), (50, 30, 20), (50, 30, 20, 20)]


def small_batch(seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((20, 3)), one_hot(rng.integers(0, 10, 3))


@pytest.mark.parametrize("hidden", [
    *HIDDEN, *(pytest.param(h, marks=pytest.mark.slow, id=f"report-{len(h)}hidden")
               for h in REPORT_HIDDEN)], ids=lambda h: f"{len(h)}hidden")
@pytest.mark.parametrize("bn", [False, True], ids=["noBN", "BN"])
@pytest.mark.parametrize("lam", [0.0, 0.1])
def test_gradients_match_numerical(hidden, bn, lam):
    X, Y = small_batch(len(hidden))
    params = init_params([20, *hidden, 10], batch_norm=bn, seed=len(hidden))
    rows = check_gradients(params, X, Y, lam)
    expected = {"W": len(hidden) + 1, "b": len(hidden) + 1, "gamma": len(hidden) * bn,
                "beta": len(hidden) * bn}
    assert {n: sum(r["param"] == n for r in rows) for n in expected} == expected
    worst = max(rows, key=lambda r: r["max_rel_error"])
    assert worst["max_rel_error"] < 1e-6, worst


@pytest.mark.slow
def test_gradients_on_real_cifar_images(cifar10):
    X = cifar10.train.X[:20, :3].astype(np.float64)
    Y = one_hot(cifar10.train.y[:3])
    params = init_params([20, 50, 50, 10], batch_norm=True, seed=0)
    assert max(r["max_rel_error"] for r in check_gradients(params, X, Y, 0.005)) < 1e-6


def test_the_check_detects_wrong_gradients():
    X, Y = small_batch(0)
    params = init_params([20, 12, 10, 10], batch_norm=True, seed=0)
    gn = numerical_gradients(params, X, Y, 0.0)
    wrong_lam = compute_gradients(params, X, Y, 0.1)                # analytic with another lam
    assert relative_error(wrong_lam["W"][0], gn["W"][0]).max() > 1e-2
    ga = compute_gradients(params, X, Y, 0.0)
    assert relative_error(ga["gamma"][1] * 1.001, gn["gamma"][1]).max() > 1e-4


def test_numerical_gradients_change_no_state():
    X, Y = small_batch(1)
    params = init_params([20, 12, 10], batch_norm=True, seed=0)
    before = copy_params(params)
    _, _, stats = forward(params, X)
    stats_before = [(mu.copy(), v.copy()) for mu, v in stats]
    gn = numerical_gradients(params, X, Y, 0.01)
    assert all(G.dtype == np.longdouble and G.shape == P.shape
               for name in params for G, P in zip(gn[name], params[name]))
    for name in params:
        assert all((a == b).all() for a, b in zip(params[name], before[name]))
    assert all((mu == m).all() and (v == w).all()
               for (mu, v), (m, w) in zip(stats, stats_before))


def test_relative_error_has_an_absolute_floor():
    assert relative_error(np.array([1e-17]), np.array([-3e-14])).max() < 1e-7
    assert relative_error(np.array([1.0]), np.array([1.1])).max() == pytest.approx(0.1 / 2.1)


@pytest.mark.parametrize("hidden", [(12,), (12, 10, 8)], ids=lambda h: f"{len(h)}hidden")
@pytest.mark.parametrize("bn_order", ["before", "after"])
@pytest.mark.parametrize("dropout", [0.0, 0.3], ids=["no_dropout", "dropout"])
def test_gradients_with_bn_order_and_dropout(hidden, bn_order, dropout):
    X, Y = small_batch(7)
    params = init_params([20, *hidden, 10], batch_norm=True, seed=3)
    masks = (dropout_masks(params, X.shape[1], dropout, np.random.default_rng(0)) if dropout
             else None)
    if masks:
        assert any((M == 0).any() for M in masks)                  # some units really dropped
    rows = check_gradients(params, X, Y, 0.05, net=Net(bn_order), masks=masks)
    worst = max(rows, key=lambda r: r["max_rel_error"])
    assert worst["max_rel_error"] < 1e-6, worst


def test_bn_order_and_masks_change_the_gradients():
    """The options are not ignored: each gives other gradients than the default network."""
    X, Y = small_batch(8)
    params = init_params([20, 30, 20, 10], batch_norm=True, seed=0)
    default = compute_gradients(params, X, Y, 0.0)
    after = compute_gradients(params, X, Y, 0.0, net=Net("after"))
    masks = dropout_masks(params, X.shape[1], 0.5, np.random.default_rng(1))
    dropped = compute_gradients(params, X, Y, 0.0, masks=masks)
    assert not np.allclose(default["W"][0], after["W"][0])
    assert not np.allclose(default["W"][0], dropped["W"][0])


@pytest.mark.parametrize("bn", [False, True], ids=["noBN", "BN"])
def test_gradients_with_soft_targets(bn):
    """Label smoothing and MixUp train on soft targets: the gradient G = -(Y - P) must still be
    the gradient of the cost -sum_k y_k log p_k."""
    X, Y = small_batch(7)
    rng = np.random.default_rng(7)
    X, Y = mixup(X, smooth_labels(Y, 0.3), rng, 0.8)
    assert not np.isin(Y, (0.0, 1.0)).all()
    params = init_params([20, 12, 10, 10], batch_norm=bn, seed=7)
    worst = max(check_gradients(params, X, Y, 0.01), key=lambda r: r["max_rel_error"])
    assert worst["max_rel_error"] < 1e-6, worst
