"""The network's wiring as a value, `Net(bn_order, linear)`; the linear bottleneck (`linear=j`: no
ReLU in the first j hidden layers, BN kept): gradients against centred differences, the forward
pass against a hand computation, test mode against a forward pass with the same statistics, the
refusals of `Net` and of `check_input`'s net check (which every public function reaches), and the
optimiser step and SWA's BN statistics with it."""
import numpy as np
import pytest

from assignment3.data import one_hot
from assignment3.nn import cost
from assignment3.nn.cost import compute_accuracy, compute_cost, evaluate
from assignment3.nn.gradcheck import check_gradients, numerical_gradients, relative_error
from assignment3.nn.network import (
    BN_EPS,
    Net,
    compute_gradients,
    dropout_masks,
    forward,
    init_params,
    log_softmax,
)
from assignment3.nn.optim import SGD, FlatParams, step
from assignment3.nn.swa import bn_statistics

#: d = 20 inputs, three hidden layers, K = 10 classes.
DIMS = [20, 12, 10, 8, 10]


def random_params(dims, bn, seed):
    """init_params with nonzero biases and gamma, beta away from 1, 0 (so that a test cannot
    pass because they are trivial), float64."""
    params = init_params(dims, batch_norm=bn, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for name, scale, offset in (("b", 0.5, 0.0), ("gamma", 0.3, 1.0), ("beta", 0.5, 0.0)):
        params[name] = [offset + scale * rng.standard_normal(P.shape) for P in params[name]]
    return params


def samples(n, seed, d=20, K=10):
    """(X d x n, one-hot Y, labels y), float64."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    return rng.standard_normal((d, n)), one_hot(y, K), y


def bn(S, gamma, beta):
    """BN of S (m x n) with its own batch statistics (variance over n), written out."""
    mu, v = S.mean(axis=1, keepdims=True), S.var(axis=1, keepdims=True)
    return gamma * (S - mu) / np.sqrt(v + BN_EPS) + beta


def by_hand(params, X, linear, bn_order="before"):
    """The training-mode scores and each hidden layer's output, the network written out layer
    by layer: s = W x + b; BN before or after max(0, .); no max(0, .) in the first `linear`."""
    W, b, gamma, beta = params["W"], params["b"], params["gamma"], params["beta"]
    H, outputs = X, []
    for l in range(len(W) - 1):
        S = W[l] @ H + b[l]
        if gamma and bn_order == "before":
            S = bn(S, gamma[l], beta[l])
        if l >= linear:
            S = np.maximum(0, S)
        if gamma and bn_order == "after":
            S = bn(S, gamma[l], beta[l])
        H = S
        outputs.append(H)
    return W[-1] @ H + b[-1], outputs


# ---------------------------------------------------------------------------------------------
# Gradients

NETS = [pytest.param(True, "before", id="BN-before"), pytest.param(True, "after", id="BN-after"),
        pytest.param(False, "before", id="noBN")]


@pytest.mark.parametrize("batch_norm, bn_order", NETS)
@pytest.mark.parametrize("linear", [1, 2])
@pytest.mark.parametrize("dropout", [0.0, 0.3], ids=["no_dropout", "dropout"])
def test_gradients_match_numerical(batch_norm, bn_order, linear, dropout):
    """Analytic gradients of a 3-hidden-layer net with `linear` layers without a ReLU against
    centred differences (float64, d = 20, threshold of test_gradcheck.py), fixed dropout masks
    or none. 5 samples rather than 3: BN over 3 samples without the ReLUs in between is curved
    enough for the O(h^2) error of the differences to pass 1e-6 on some seeds; over 5 the
    largest errors are those of gradients that are exactly 0 (b, beta before a BN), ~2e-13."""
    X, Y, _ = samples(5, seed=0)
    params = init_params(DIMS, batch_norm=batch_norm, seed=0)
    masks = dropout_masks(params, 5, dropout, np.random.default_rng(0)) if dropout else None
    if masks:
        assert any((M == 0).any() for M in masks)
    rows = check_gradients(params, X, Y, 0.05, net=Net(bn_order, linear), masks=masks)
    assert len(rows) == 2 * len(DIMS) - 2 + 2 * (len(DIMS) - 2) * batch_norm
    worst = max(rows, key=lambda r: r["max_rel_error"])
    assert worst["max_rel_error"] < 1e-6, worst


@pytest.mark.parametrize("batch_norm, bn_order", NETS)
def test_gradients_of_another_linear_fail_the_check(batch_norm, bn_order):
    """The check can fail: the analytic gradients of linear=0 and linear=2 are far from the
    numerical ones of linear=1 (so `linear` reaches both the cost and the backward pass)."""
    X, Y, _ = samples(5, seed=0)
    params = init_params(DIMS, batch_norm=batch_norm, seed=0)
    gn = numerical_gradients(params, X, Y, 0.0, net=Net(bn_order, 1))
    right = compute_gradients(params, X, Y, 0.0, net=Net(bn_order, 1))
    assert relative_error(right["W"][0], gn["W"][0]).max() < 1e-6
    for other in (0, 2):
        wrong = compute_gradients(params, X, Y, 0.0, net=Net(bn_order, other))
        assert relative_error(wrong["W"][0], gn["W"][0]).max() > 1e-2


# ---------------------------------------------------------------------------------------------
# The forward pass


@pytest.mark.parametrize("batch_norm, bn_order", NETS)
def test_first_layer_without_relu_by_hand(batch_norm, bn_order):
    """hidden (12, 8), linear=1: layer 0's output is BN(W0 X + b0) (before) or BN(W0 X + b0)
    with no max(0, .) (after), or W0 X + b0 without BN: negative entries kept; linear=0 takes
    max(0, .) of it and gives other scores. Both equal the network written out."""
    X, _, _ = samples(16, seed=1)
    params = random_params([20, 12, 8, 10], batch_norm, seed=1)
    W0, b0 = params["W"][0], params["b"][0]
    first = bn(W0 @ X + b0, params["gamma"][0], params["beta"][0]) if batch_norm else W0 @ X + b0
    assert (first < 0).any() and (first > 0).any()
    S1, cache1, _ = forward(params, X, net=Net(bn_order, 1))
    S0, cache0, _ = forward(params, X, net=Net(bn_order, 0))
    np.testing.assert_allclose(cache1[1].H, first, rtol=1e-12, atol=1e-12)
    if bn_order == "before":                  # after: BN of max(0, s), not max(0, BN(s))
        np.testing.assert_allclose(cache0[1].H, np.maximum(0, first), rtol=1e-12, atol=1e-12)
    for linear, S in ((1, S1), (0, S0)):
        np.testing.assert_allclose(S, by_hand(params, X, linear, bn_order)[0], rtol=1e-10,
                                   atol=1e-12)
    assert not np.allclose(S1, S0)


@pytest.mark.parametrize("batch_norm, bn_order", NETS)
def test_every_linear_matches_the_network_written_out(batch_norm, bn_order):
    """For linear 0..3 of a 3-hidden-layer net: the scores and every hidden layer's output are
    those of `by_hand`, and no two values of linear give the same scores."""
    X, _, _ = samples(16, seed=3)
    params = random_params(DIMS, batch_norm, seed=3)
    scores = []
    for linear in range(4):
        S, cache, _ = forward(params, X, net=Net(bn_order, linear))
        S_hand, outputs = by_hand(params, X, linear, bn_order)
        np.testing.assert_allclose(S, S_hand, rtol=1e-10, atol=1e-12)
        for l, H in enumerate(outputs):
            np.testing.assert_allclose(cache[l + 1].H, H, rtol=1e-10, atol=1e-12)
        scores.append(S)
    assert not any(np.allclose(scores[i], scores[j]) for i in range(4) for j in range(i))


def test_all_hidden_layers_linear_make_an_affine_map():
    """Without BN and with linear = every hidden layer the network is affine: the scores of
    a X1 + (1 - a) X2 are a S(X1) + (1 - a) S(X2); with one ReLU left they are not."""
    X1, _, _ = samples(6, seed=4)
    X2, _, _ = samples(6, seed=5)
    params = random_params(DIMS, False, seed=4)

    def scores(X, linear):
        return forward(params, X, net=Net(linear=linear))[0]

    mixed = scores(0.3 * X1 + 0.7 * X2, 3)
    np.testing.assert_allclose(mixed, 0.3 * scores(X1, 3) + 0.7 * scores(X2, 3), rtol=1e-10,
                               atol=1e-12)
    assert not np.allclose(scores(0.3 * X1 + 0.7 * X2, 2),
                           0.3 * scores(X1, 2) + 0.7 * scores(X2, 2))


# ---------------------------------------------------------------------------------------------
# Test mode


@pytest.mark.parametrize("batch_norm, bn_order", NETS)
@pytest.mark.parametrize("linear", [0, 1, 2])
def test_test_mode_equals_forward_with_the_statistics(monkeypatch, batch_norm, bn_order, linear):
    """Statistics from a training-mode forward pass on one batch; on other samples,
    `test_scores` (chunks of 7, BN folded into the weights) equal forward with those statistics,
    evaluate's loss and accuracy are theirs, and another linear gives other scores. On the batch
    itself, test mode gives back the training-mode scores."""
    monkeypatch.setattr(cost, "EVAL_CHUNK", 7)
    X, _, _ = samples(16, seed=6)
    X_new, _, y_new = samples(30, seed=7)
    params = random_params(DIMS, batch_norm, seed=6)
    S_train, _, batch_stats = forward(params, X, net=Net(bn_order, linear))
    stats = batch_stats if batch_norm else None
    assert len(batch_stats) == 3 * batch_norm
    net = {"net": Net(bn_order, linear)}
    np.testing.assert_allclose(cost.test_scores(params, X, stats, **net), S_train, rtol=1e-9,
                               atol=1e-10)
    S = forward(params, X_new, stats, **net)[0]
    np.testing.assert_allclose(cost.test_scores(params, X_new, stats, **net), S, rtol=1e-9,
                               atol=1e-10)
    scores = evaluate(params, X_new, y_new, 0.0, stats, **net)
    loss = -log_softmax(S)[y_new, np.arange(30)].mean()
    assert scores["loss"] == pytest.approx(loss, rel=1e-10)
    assert scores["accuracy"] == np.mean(S.argmax(axis=0) == y_new)
    assert compute_accuracy(params, X_new, y_new, stats, **net) == scores["accuracy"]
    other = {"net": Net(bn_order, (linear + 1) % 3)}
    assert not np.allclose(cost.test_scores(params, X_new, stats, **other), S)
    assert evaluate(params, X_new, y_new, 0.0, stats, **other)["loss"] != pytest.approx(loss)


def test_cost_uses_linear(batch):
    """compute_cost with linear=1 is the cross-entropy of forward(linear=1)'s scores plus the
    L2 term, in training mode and with statistics; not the cost of linear=0."""
    X, Y, y = batch
    params = random_params([20, 12, 8, 10], True, seed=8)
    lam = 0.01
    l2 = lam * sum((W ** 2).sum() for W in params["W"])
    S, _, stats = forward(params, X, net=Net(linear=1))
    expected = -log_softmax(S)[y, np.arange(8)].mean() + l2
    one, zero = Net(linear=1), Net(linear=0)
    assert compute_cost(params, X, Y, lam, net=one) == pytest.approx(expected, rel=1e-12)
    assert compute_cost(params, X, Y, lam, stats, net=one) == pytest.approx(expected, rel=1e-9)
    assert compute_cost(params, X, Y, lam, net=zero) != pytest.approx(expected, rel=1e-3)


# ---------------------------------------------------------------------------------------------
# Refusals

STATS = [(np.zeros((m, 1)), np.ones((m, 1))) for m in DIMS[1:-1]]

CALLS = {
    "forward": lambda p, X, Y, y, net: forward(p, X, net=net),
    "compute_gradients": lambda p, X, Y, y, net: compute_gradients(p, X, Y, 0.0, net=net),
    "compute_cost": lambda p, X, Y, y, net: compute_cost(p, X, Y, 0.0, net=net),
    "evaluate": lambda p, X, Y, y, net: evaluate(p, X, y, 0.0, STATS, net=net),
    "test_scores": lambda p, X, Y, y, net: cost.test_scores(p, X, STATS, net=net),
    "compute_accuracy": lambda p, X, Y, y, net: compute_accuracy(p, X, y, STATS, net=net),
    "check_gradients": lambda p, X, Y, y, net: check_gradients(p, X, Y, 0.0, net=net),
}


@pytest.mark.parametrize("fields, message", [
    ({"linear": 1.5}, r"linear must be an integer >= 0 \(hidden layers without a ReLU\), got 1\.5"),
    ({"linear": True}, "linear must be an integer >= 0 .*, got True"),
    ({"linear": "1"}, "linear must be an integer >= 0 .*, got '1'"),
    ({"linear": -1}, "linear must be an integer >= 0 .*, got -1"),
    ({"bn_order": "middle"}, "bn_order must be \"before\" or \"after\" .*, not 'middle'"),
])
def test_a_net_is_checked_when_built(fields, message):
    with pytest.raises(ValueError, match=message):
        Net(**fields)


def test_every_public_function_checks_the_net_against_the_network(batch):
    """Each takes linear from 0 to the number of hidden layers (numpy integers too), refuses
    more naming the range, and refuses a net that is not a `Net`."""
    X, Y, y = batch
    params = init_params(DIMS, batch_norm=True, seed=0)
    for call in CALLS.values():
        call(params, X, Y, y, Net(linear=np.uint8(3)))
        with pytest.raises(ValueError, match=r"linear must be in \[0, 3\] for a network of 3 "
                                             r"hidden layers, got 4"):
            call(params, X, Y, y, Net(linear=4))
        with pytest.raises(TypeError, match=r"net must be a Net\(bn_order, linear\), got 'after'"):
            call(params, X, Y, y, "after")
    shallow = init_params([20, 12, 10], batch_norm=False, seed=0)
    with pytest.raises(ValueError, match=r"for a network of 1 hidden layer, got 2"):
        forward(shallow, X, net=Net(linear=2))


# ---------------------------------------------------------------------------------------------
# The optimiser step and SWA's BN statistics


@pytest.mark.parametrize("bn_order", ["before", "after"])
def test_step_moves_along_the_gradient_of_linear(batch, bn_order):
    """Plain SGD, lam = 0: step(linear=1) makes theta - eta g with g = compute_gradients(
    linear=1), returns forward(linear=1)'s batch statistics, and is not the step of linear=0."""
    X, Y, _ = batch
    params = random_params([20, 12, 8, 10], True, seed=9)
    eta = 0.1
    g = compute_gradients(params, X, Y, 0.0, net=Net(bn_order, 1))
    g0 = compute_gradients(params, X, Y, 0.0, net=Net(bn_order, 0))
    flat = FlatParams(params)
    batch_stats = step(flat, X, Y, eta, 0, SGD(), net=Net(bn_order, 1))
    for name in params:
        assert len(flat.params[name]) == len(params[name])
        for new, P, G in zip(flat.params[name], params[name], g[name]):
            np.testing.assert_allclose(new, P - eta * G, rtol=1e-12, atol=1e-15)
    assert not np.allclose(flat.params["W"][0], params["W"][0] - eta * g0["W"][0])
    expected = forward(params, X, net=Net(bn_order, 1))[2]
    for (mu, v), (mu_e, v_e) in zip(batch_stats, expected, strict=True):
        np.testing.assert_allclose(mu, mu_e, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(v, v_e, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("bn_order", ["before", "after"])
def test_bn_statistics_with_linear_are_the_mean_of_the_batch_statistics(bn_order):
    """bn_statistics(linear=1) on 4 batches of 10 is the mean of forward(linear=1)'s batch
    (mu, v) per layer, and differs from linear=0's where the missing ReLU is upstream of BN
    (layer 1 with BN before; layers 0 and 1 with BN after)."""
    X, _, _ = samples(40, seed=10)
    params = random_params(DIMS, True, seed=10)
    stats = bn_statistics(params, X, 10, Net(bn_order, 1))
    per_batch = [forward(params, X[:, i:i + 10], net=Net(bn_order, 1))[2]
                 for i in range(0, 40, 10)]
    assert len(stats) == 3
    for l, (mu, v) in enumerate(stats):
        np.testing.assert_allclose(mu, np.mean([b[l][0] for b in per_batch], axis=0),
                                   rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(v, np.mean([b[l][1] for b in per_batch], axis=0),
                                   rtol=1e-12, atol=1e-14)
    plain = bn_statistics(params, X, 10, Net(bn_order, 0))
    differs = [not np.allclose(stats[l][0], plain[l][0]) for l in range(3)]
    assert differs == ([False, True, True] if bn_order == "before" else [True, True, True])
