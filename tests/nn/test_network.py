"""assignment3.nn.network: initialisation, the forward pass in both BN modes and both BN orders,
dropout masks, softmax, the backward pass, and the refusals of init_params and of bad network
options. (The checks of inputs shared with the cost are in test_checks.py.)"""
import numpy as np
import pytest

from assignment3.nn.network import (
    BN_EPS,
    LayerCache,
    Net,
    backward,
    compute_gradients,
    dropout_masks,
    forward,
    forward_unchecked,
    init_params,
    log_softmax,
    relu,
    row_sum,
    softmax,
)

DIMS = [20, 50, 30, 10]


# ---------------------------------------------------------------------------------------------
# init_params


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
    assert all(Wa.dtype == np.float64 for Wa in a["W"])
    assert all(P.dtype == np.float32 for arrays in b.values() for P in arrays)
    assert all(np.allclose(Wa, Wb, rtol=1e-6) for Wa, Wb in zip(a["W"], b["W"]))
    assert not np.allclose(a["W"][1], a["W"][2])            # no per-layer reseeding
    c = init_params([20, 30, 30, 30, 10], batch_norm=True, seed=6)
    assert not np.allclose(a["W"][0], c["W"][0])
    generator = init_params([20, 30, 10], batch_norm=False, seed=np.random.default_rng(5))
    assert np.array_equal(generator["W"][0], init_params([20, 30, 10], batch_norm=False,
                                                         seed=5)["W"][0])


@pytest.mark.parametrize("kwargs, error, message", [
    ({"dims": [20]}, ValueError, "dims must list at least an input and an output size"),
    ({"dims": [20, 0, 10]}, ValueError, "dims .* integers >= 1"),
    ({"dims": [20, 2.5, 10]}, ValueError, "integers >= 1"),
    ({"dims": [20, "30", 10]}, ValueError, "integers >= 1"),
    ({"dims": [20, True, 10]}, ValueError, "integers >= 1"),
    ({"dims": "20,30"}, ValueError, "integers >= 1"),
    ({"batch_norm": "no"}, TypeError, "batch_norm must be True or False"),
    ({"batch_norm": None}, TypeError, "batch_norm must be True or False"),
    ({"init": "uniform"}, ValueError, 'init must be "he", "xavier" or a positive float sigma'),
    ({"init": True}, ValueError, "init must be"),
    ({"init": -0.1}, ValueError, "init sigma must be a finite number > 0"),
    ({"init": np.inf}, ValueError, "finite number > 0"),
    ({"init": np.nan}, ValueError, "finite number > 0"),
    ({"seed": -1}, ValueError, "seed must be"),
    ({"seed": True}, ValueError, "seed must be"),
    ({"dtype": np.int32}, ValueError, "dtype must be float32 or float64, got"),
    ({"dtype": "float16"}, ValueError, "dtype must be float32 or float64"),
    ({"dtype": "nonsense"}, ValueError, "dtype must be float32 or float64"),
])
def test_init_params_refuses_bad_arguments(kwargs, error, message):
    args = {"dims": DIMS, "batch_norm": True, **kwargs}
    with pytest.raises(error, match=message):
        init_params(args.pop("dims"), **args)


# ---------------------------------------------------------------------------------------------
# Elementwise pieces


def test_softmax_and_log_softmax_are_stable():
    S = np.array([[1000.0, -5.0], [0.0, -5.0], [-1000.0, -5.0]])
    P = softmax(S)
    assert np.allclose(P.sum(axis=0), 1) and np.isfinite(P).all()
    assert np.allclose(P[:, 1], 1 / 3) and P[0, 0] == pytest.approx(1.0)
    assert np.allclose(np.exp(log_softmax(S)), P)
    assert np.isfinite(log_softmax(S)).all()
    assert S[0, 0] == 1000.0                                    # the input is not modified


def test_relu_is_in_place_and_row_sum_sums_rows():
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float64):
        S = rng.standard_normal((7, 13)).astype(dtype)
        expected = np.maximum(S, 0)
        out = relu(S)
        assert out is S and np.array_equal(S, expected)
        A = rng.standard_normal((5, 9)).astype(dtype)
        sums = row_sum(A)
        assert sums.shape == (5, 1) and sums.dtype == dtype
        assert np.allclose(sums[:, 0], A.sum(axis=1), rtol=1e-5)
        target = np.empty((5, 1), dtype)
        assert row_sum(A, out=target) is target and np.allclose(target, sums)


# ---------------------------------------------------------------------------------------------
# Forward pass


def test_training_mode_bn_normalises_with_biased_variance(batch):
    X, _, _ = batch
    p = init_params(DIMS, batch_norm=True, seed=0)
    _, cache, stats = forward(p, X)
    S1 = p["W"][0] @ X + p["b"][0]
    mu, v = stats[0]
    assert np.allclose(mu[:, 0], S1.mean(axis=1))
    assert np.allclose(v[:, 0], S1.var(axis=1, ddof=0))
    # the first layer's output is relu(s_hat) with gamma 1, beta 0: recompute it by hand
    H1 = cache[1][0]
    assert np.allclose(H1, np.maximum(0, (S1 - mu) / np.sqrt(v + BN_EPS)))
    assert len(cache) == 3 and all(isinstance(c, LayerCache) for c in cache)
    assert cache[0].H is X and len(stats) == 2


def test_test_mode_with_own_statistics_equals_training_mode(batch):
    X, _, _ = batch
    p = init_params(DIMS, batch_norm=True, seed=0)
    S_train, _, stats = forward(p, X)
    S_test, _, _ = forward(p, X, stats)
    assert np.allclose(S_train, S_test)
    other = [(mu + 1.0, v * 4.0) for mu, v in stats]          # other statistics, other scores
    assert not np.allclose(forward(p, X, other)[0], S_train)


def test_forward_without_bn_is_the_plain_network(batch):
    X, _, _ = batch
    p = init_params(DIMS, batch_norm=False, seed=0)
    S, _, stats = forward(p, X)
    H = X
    for W, b in zip(p["W"][:-1], p["b"][:-1]):
        H = np.maximum(0, W @ H + b)
    assert np.allclose(S, p["W"][-1] @ H + p["b"][-1]) and stats == []
    assert np.array_equal(forward_unchecked(p, X)[0], S)


def test_bn_after_relu_normalises_the_relu_output(batch):
    X, _, _ = batch
    p = init_params(DIMS, batch_norm=True, seed=0)
    _, cache, stats = forward(p, X, net=Net("after"))
    R1 = np.maximum(0, p["W"][0] @ X + p["b"][0])
    mu, v = stats[0]
    assert np.allclose(mu[:, 0], R1.mean(axis=1)) and np.allclose(v[:, 0], R1.var(axis=1))
    assert np.allclose(cache[1].H, (R1 - mu) / np.sqrt(v + BN_EPS))   # gamma 1, beta 0
    assert cache[0].bn_after


def test_bad_network_options_are_clear_errors(batch):
    X, Y, _ = batch
    p = init_params(DIMS, batch_norm=True, seed=0)
    with pytest.raises(ValueError, match="one m_l x n array per hidden layer"):
        compute_gradients(p, X, Y, 0.0, masks=[np.ones((30, X.shape[1]))])


# ---------------------------------------------------------------------------------------------
# Dropout


def test_dropout_masks_are_inverted_and_drop_at_rate():
    p = init_params([20, 400, 300, 10], batch_norm=False, seed=0)
    masks = dropout_masks(p, 500, 0.2, np.random.default_rng(0))
    assert [M.shape for M in masks] == [(400, 500), (300, 500)]
    for M in masks:
        assert set(np.unique(M)) == {0.0, 1 / 0.8} and M.dtype == np.float64
        assert abs((M == 0).mean() - 0.2) < 0.01 and abs(M.mean() - 1) < 0.02
    p32 = init_params([20, 40, 10], batch_norm=False, seed=0, dtype=np.float32)
    assert dropout_masks(p32, 5, 0.5, np.random.default_rng(0))[0].dtype == np.float32


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5])
def test_dropout_probability_must_be_in_0_1(p):
    params = init_params([20, 40, 10], batch_norm=False, seed=0)
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\)"):
        dropout_masks(params, 5, p, np.random.default_rng(0))


def test_dropout_zeroes_the_dropped_units(batch):
    X, _, _ = batch
    p = init_params(DIMS, batch_norm=False, seed=0)
    masks = dropout_masks(p, X.shape[1], 0.5, np.random.default_rng(0))
    _, cache, _ = forward(p, X, masks=masks)
    _, plain, _ = forward(p, X)
    assert np.array_equal(cache[1].H, plain[1].H * masks[0])


# ---------------------------------------------------------------------------------------------
# Backward pass


def test_bn_hidden_biases_get_zero_gradient(batch):
    X, Y, _ = batch
    p = init_params(DIMS, batch_norm=True, seed=0)
    g = compute_gradients(p, X, Y, 0.01)
    assert all(np.abs(gb).max() < 1e-12 for gb in g["b"][:-1])
    assert np.abs(g["b"][-1]).max() > 1e-3


def test_backward_writes_into_given_arrays_and_adds_the_l2_term(batch):
    """`backward` with `out` fills those arrays; lam adds 2 lam W to every weight gradient."""
    X, Y, _ = batch
    p = init_params(DIMS, batch_norm=True, seed=0)
    S, cache, _ = forward(p, X)
    plain = backward(p, Y, softmax(S), cache, 0.0)
    out = {name: [np.empty_like(P) for P in arrays] for name, arrays in p.items()}
    targets = {name: list(arrays) for name, arrays in out.items()}
    S, cache, _ = forward(p, X)
    assert backward(p, Y, softmax(S), cache, 0.1, out=out) is out
    for name in p:
        assert all(a is b for a, b in zip(out[name], targets[name]))
    for W, g0, g1 in zip(p["W"], plain["W"], out["W"]):
        assert np.allclose(g1, g0 + 0.2 * W)
    for name in ("b", "gamma", "beta"):
        assert all(np.allclose(a, b) for a, b in zip(plain[name], out[name]))
    assert all(np.allclose(a, b) for a, b in zip(compute_gradients(p, X, Y, 0.1)["W"], out["W"]))
