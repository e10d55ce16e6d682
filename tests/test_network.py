"""The network: initialisation, forward pass in both BN modes, cost, accuracy, input checks."""
import numpy as np
import pytest

from assignment3.data import one_hot
from assignment3.network import (BN_EPS, compute_cost, compute_gradients, dropout_masks, evaluate,
                                 forward, init_params, log_softmax, softmax)

DIMS = [20, 50, 30, 10]


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 8))
    y = rng.integers(0, 10, 8)
    return X, one_hot(y), y


@pytest.mark.parametrize("bn", [False, True])
def test_init_params_structure(bn):
    p = init_params(DIMS, batch_norm=bn, seed=0)
    assert set(p) == {"W", "b", "gamma", "beta"}
    assert [W.shape for W in p["W"]] == [(50, 20), (30, 50), (10, 30)]
    assert [b.shape for b in p["b"]] == [(50, 1), (30, 1), (10, 1)]
    if bn:
        assert [g.shape for g in p["gamma"]] == [(50, 1), (30, 1)]
        assert all((g == 1).all() for g in p["gamma"]) and all((b == 0).all() for b in p["beta"])
    else:
        assert p["gamma"] == [] and p["beta"] == []
    assert all((b == 0).all() for b in p["b"])
    assert [p["W"][0].shape[1]] + [W.shape[0] for W in p["W"]] == DIMS


@pytest.mark.parametrize("init, expected", [("he", lambda m: np.sqrt(2 / m)),
                                            ("xavier", lambda m: np.sqrt(1 / m)),
                                            (1e-3, lambda m: 1e-3)])
def test_init_scale(init, expected):
    p = init_params([3072, 400, 300, 10], batch_norm=False, init=init, seed=1)
    for W in p["W"][:2]:
        assert W.std() == pytest.approx(expected(W.shape[1]), rel=0.03)


def test_init_seed_dtype_and_layers_differ():
    a = init_params([20, 30, 30, 30, 10], batch_norm=True, seed=5)
    b = init_params([20, 30, 30, 30, 10], batch_norm=True, seed=5, dtype=np.float32)
    assert all(Wb.dtype == np.float32 for Wb in b["W"])
    assert all(np.allclose(Wa, Wb, rtol=1e-6) for Wa, Wb in zip(a["W"], b["W"]))
    assert not np.allclose(a["W"][1], a["W"][2])            # no per-layer reseeding
    c = init_params([20, 30, 30, 30, 10], batch_norm=True, seed=6)
    assert not np.allclose(a["W"][0], c["W"][0])


@pytest.mark.parametrize("kwargs, match", [({"dims": [20]}, "dims"),
                                           ({"dims": [20, 0, 10]}, "dims"),
                                           ({"init": "uniform"}, "init"),
                                           ({"init": -0.1}, "sigma"),
                                           ({"dtype": np.int32}, "dtype")])
def test_init_bad_arguments(kwargs, match):
    args = {"dims": DIMS, "batch_norm": True, **kwargs}
    with pytest.raises(ValueError, match=match):
        init_params(args.pop("dims"), **args)


def test_softmax_and_log_softmax_are_stable():
    S = np.array([[1000.0, -5.0], [0.0, -5.0], [-1000.0, -5.0]])
    P = softmax(S)
    assert np.allclose(P.sum(axis=0), 1) and np.isfinite(P).all()
    assert np.allclose(np.exp(log_softmax(S)), P)
    assert np.isfinite(log_softmax(S)).all()


def test_training_mode_bn_normalises_with_biased_variance(batch):
    X, _, _ = batch
    p = init_params(DIMS, batch_norm=True, seed=0)
    _, _, stats = forward(p, X)
    S1 = p["W"][0] @ X + p["b"][0]
    mu, v = stats[0]
    assert np.allclose(mu[:, 0], S1.mean(axis=1))
    assert np.allclose(v[:, 0], S1.var(axis=1, ddof=0))
    # the first layer's output is relu(s_hat) with gamma 1, beta 0: recompute it by hand
    _, cache, _ = forward(p, X)
    H1 = cache[1][0]
    assert np.allclose(H1, np.maximum(0, (S1 - mu) / np.sqrt(v + BN_EPS)))


def test_test_mode_with_own_statistics_equals_training_mode(batch):
    X, _, _ = batch
    p = init_params(DIMS, batch_norm=True, seed=0)
    S_train, _, stats = forward(p, X)
    S_test, _, _ = forward(p, X, stats)
    assert np.allclose(S_train, S_test)
    other = [(mu + 1.0, v * 4.0) for mu, v in stats]          # other statistics, other scores
    assert not np.allclose(forward(p, X, other)[0], S_train)


def test_evaluate_never_changes_the_moving_averages(batch):
    X, Y, y = batch
    p = init_params(DIMS, batch_norm=True, seed=0)
    _, _, stats = forward(p, X)
    before = [(mu.copy(), v.copy()) for mu, v in stats]
    evaluate(p, np.hstack([X * 3.0, X]), np.concatenate([y, y]), 0.01, stats)
    assert all((mu == m0).all() and (v == v0).all() for (mu, v), (m0, v0) in zip(stats, before))


def test_evaluate_requires_statistics_for_bn(batch):
    X, _, y = batch
    with pytest.raises(ValueError, match="moving averages"):
        evaluate(init_params(DIMS, batch_norm=True, seed=0), X, y, 0.0, None)


def test_cost_is_loss_plus_l2_and_evaluate_agrees(batch):
    X, Y, y = batch
    p = init_params(DIMS, batch_norm=False, seed=0)
    S, _, _ = forward(p, X)
    loss = -np.mean(np.log(softmax(S)[y, np.arange(len(y))]))
    l2 = sum((W ** 2).sum() for W in p["W"])
    assert compute_cost(p, X, Y, 0.1) == pytest.approx(loss + 0.1 * l2)
    res = evaluate(p, X, y, 0.1, None)
    assert res["loss"] == pytest.approx(loss) and res["cost"] == pytest.approx(loss + 0.1 * l2)
    assert res["accuracy"] == np.mean(S.argmax(axis=0) == y)


def test_evaluate_in_chunks_equals_one_pass(monkeypatch, batch):
    import assignment3.network as network
    X, _, y = batch
    p = init_params(DIMS, batch_norm=True, seed=0)
    _, _, stats = forward(p, X)
    whole = evaluate(p, X, y, 0.0, stats)
    monkeypatch.setattr(network, "EVAL_CHUNK", 3)
    assert evaluate(p, X, y, 0.0, stats) == pytest.approx(whole)


def test_bn_hidden_biases_get_zero_gradient(batch):
    X, Y, _ = batch
    p = init_params(DIMS, batch_norm=True, seed=0)
    g = compute_gradients(p, X, Y, 0.01)
    assert all(np.abs(gb).max() < 1e-12 for gb in g["b"][:-1])
    assert np.abs(g["b"][-1]).max() > 1e-3


@pytest.mark.parametrize("shape", [(19, 8), (20,), (8, 20, 1)])
def test_wrong_input_shape_is_a_clear_error(shape):
    p = init_params(DIMS, batch_norm=True, seed=0)
    with pytest.raises(ValueError, match="X must be d x n with d = 20"):
        compute_gradients(p, np.zeros(shape), np.zeros((10, 8)), 0.0)


def test_wrong_label_shape_is_a_clear_error(batch):
    X, _, y = batch
    p = init_params(DIMS, batch_norm=False, seed=0)
    with pytest.raises(ValueError, match="Y must be one-hot K x n"):
        compute_gradients(p, X, np.zeros((10, 7)), 0.0)
    with pytest.raises(ValueError, match="labels"):
        evaluate(p, X, y[:-1], 0.0, None)


def test_bn_after_relu_normalises_the_relu_output(batch):
    X, _, _ = batch
    p = init_params(DIMS, batch_norm=True, seed=0)
    _, cache, stats = forward(p, X, bn_order="after")
    R1 = np.maximum(0, p["W"][0] @ X + p["b"][0])
    mu, v = stats[0]
    assert np.allclose(mu[:, 0], R1.mean(axis=1)) and np.allclose(v[:, 0], R1.var(axis=1))
    assert np.allclose(cache[1].H, (R1 - mu) / np.sqrt(v + BN_EPS))   # gamma 1, beta 0


@pytest.mark.parametrize("bn_order", ["before", "after"])
def test_folded_test_mode_equals_forward_with_statistics(batch, bn_order):
    """`evaluate` folds BN into the weights; its loss must equal a test-mode forward pass."""
    X, Y, y = batch
    rng = np.random.default_rng(5)
    p = init_params(DIMS, batch_norm=True, seed=0)
    p["gamma"] = [1 + 0.3 * rng.standard_normal(g.shape) for g in p["gamma"]]
    p["beta"] = [0.3 * rng.standard_normal(g.shape) for g in p["beta"]]
    _, _, stats = forward(p, X * 1.5, bn_order=bn_order)             # statistics of other data
    S, _, _ = forward(p, X, stats, bn_order=bn_order)
    loss = -np.mean(log_softmax(S)[y, np.arange(len(y))])
    assert evaluate(p, X, y, 0.0, stats, bn_order=bn_order)["loss"] == pytest.approx(loss, rel=1e-10)
    other = "after" if bn_order == "before" else "before"
    assert evaluate(p, X, y, 0.0, stats, bn_order=other)["loss"] != pytest.approx(loss, rel=1e-6)


def test_dropout_masks_are_inverted_and_drop_at_rate():
    p = init_params([20, 400, 300, 10], batch_norm=False, seed=0)
    masks = dropout_masks(p, 500, 0.2, np.random.default_rng(0))
    assert [M.shape for M in masks] == [(400, 500), (300, 500)]
    for M in masks:
        assert set(np.unique(M)) == {0.0, 1 / 0.8}
        assert abs((M == 0).mean() - 0.2) < 0.01 and abs(M.mean() - 1) < 0.02
    with pytest.raises(ValueError, match="dropout probability"):
        dropout_masks(p, 5, 1.0, np.random.default_rng(0))


def test_dropout_zeroes_the_dropped_units(batch):
    X, _, _ = batch
    p = init_params(DIMS, batch_norm=False, seed=0)
    masks = dropout_masks(p, X.shape[1], 0.5, np.random.default_rng(0))
    _, cache, _ = forward(p, X, masks=masks)
    _, plain, _ = forward(p, X)
    assert np.array_equal(cache[1].H, plain[1].H * masks[0])


def test_bad_network_options_are_clear_errors(batch):
    X, Y, _ = batch
    p = init_params(DIMS, batch_norm=True, seed=0)
    with pytest.raises(ValueError, match='bn_order must be "before" or "after"'):
        forward(p, X, bn_order="middle")
    with pytest.raises(ValueError, match="one m_l x n array per hidden layer"):
        compute_gradients(p, X, Y, 0.0, masks=[np.ones((30, X.shape[1]))])


@pytest.mark.parametrize("bn_order", ["before", "after"])
def test_test_scores_equal_a_test_mode_forward_pass(monkeypatch, batch, bn_order):
    import assignment3.network as network
    X, _, _ = batch
    p = init_params(DIMS, batch_norm=True, seed=0)
    _, _, stats = forward(p, X * 2.0, bn_order=bn_order)
    monkeypatch.setattr(network, "EVAL_CHUNK", 3)
    S = network.test_scores(p, X, stats, bn_order=bn_order)
    assert S.shape == (10, X.shape[1])
    assert np.allclose(S, forward(p, X, stats, bn_order=bn_order)[0])
