"""assignment3.nn.optim: the learning-rate schedules, the parameters as one flat vector, one step
with each update rule (SGD plain, momentum, Nesterov) against the rule written out, and the
divergence check; and the BN moving averages (`nn.network`)."""
import pickle

import numpy as np
import pytest

from assignment3.data import one_hot
from assignment3.nn.network import (
    BN_ALPHA,
    Net,
    compute_gradients,
    dropout_masks,
    forward,
    init_params,
    update_moving_averages,
)
from assignment3.nn.optim import (
    SGD,
    UPDATE_BLOCK,
    UPDATE_RULES,
    AdamW,
    DivergenceError,
    FlatParams,
    cyclic_lr,
    one_cycle_lr,
    step,
)

DIMS = [20, 30, 15, 10]


def test_cyclic_lr_triangle():
    assert cyclic_lr(0) == pytest.approx(1e-5)
    assert cyclic_lr(2250) == pytest.approx(1e-1)
    assert cyclic_lr(1125) == pytest.approx((1e-5 + 1e-1) / 2)
    assert cyclic_lr(4500) == pytest.approx(1e-5)                     # end of cycle 1
    assert cyclic_lr(4500 + 2250) == pytest.approx(1e-1)             # peak of cycle 2
    assert cyclic_lr(3000) == pytest.approx(1e-1 - 750 / 2250 * (1e-1 - 1e-5))
    etas = [cyclic_lr(t, 0.0, 1.0, 10) for t in range(41)]
    assert max(etas) == 1.0 and min(etas) == 0.0 and etas[10] == etas[30] == 1.0


def test_one_cycle_lr_warms_up_then_decays_to_zero():
    total = 100
    etas = [one_cycle_lr(t, total, 0.0, 1.0, warmup=0.2) for t in range(total + 1)]
    assert etas[0] == 0.0 and etas[10] == pytest.approx(0.5) and etas[20] == pytest.approx(1.0)
    assert max(etas) == etas[20] and etas[60] == pytest.approx(0.5) and etas[100] == 0.0
    assert all(a < b for a, b in zip(etas[:20], etas[1:21]))
    assert all(a > b for a, b in zip(etas[20:], etas[21:]))
    assert one_cycle_lr(0, 10, 0.01, 1.0) == pytest.approx(0.01)   # starts at eta_min
    held = [one_cycle_lr(t, total, 0.0, 1.0, 0.2, hold=(60, 0.1)) for t in range(total)]
    assert held[:21] == etas[:21] and held[40] == pytest.approx(1.0 - 0.9 / 2)
    assert all(a > b for a, b in zip(held[20:60], held[21:61])) and set(held[60:]) == {0.1}


def test_moving_averages_start_from_first_batch_then_decay():
    first = [(np.array([[1.0]]), np.array([[4.0]]))]
    av = update_moving_averages(None, first)
    assert av[0][0] is not first[0][0] and av[0][0][0, 0] == 1.0     # a copy, not an alias
    again = update_moving_averages(av, [(np.array([[3.0]]), np.array([[2.0]]))])
    assert again is av                                                # updated in place
    assert av[0][0][0, 0] == pytest.approx(BN_ALPHA * 1 + (1 - BN_ALPHA) * 3)
    assert av[0][1][0, 0] == pytest.approx(BN_ALPHA * 4 + (1 - BN_ALPHA) * 2)
    assert first[0][0][0, 0] == 1.0                                   # input untouched
    other = update_moving_averages([(np.zeros((1, 1)), np.zeros((1, 1)))],
                                   [(np.ones((1, 1)), np.ones((1, 1)))], alpha=0.5)
    assert other[0][0][0, 0] == 0.5 and other[0][1][0, 0] == 0.5


@pytest.mark.parametrize("momentum", [False, True])
def test_flat_params_are_views_into_one_vector(momentum):
    params = init_params(DIMS, batch_norm=True, seed=0, dtype=np.float32)
    flat = FlatParams(params, ("velocity",) if momentum else ())
    n = sum(P.size for arrays in params.values() for P in arrays)
    assert flat.theta.shape == flat.grad.shape == (n,) and flat.theta.dtype == np.float32
    for name in params:
        for P, view in zip(params[name], flat.params[name]):
            assert np.array_equal(P, view) and np.shares_memory(view, flat.theta)
            assert view is not P                                      # a copy of the caller's
    assert flat.weights.size == sum(W.size for W in params["W"])
    assert np.shares_memory(flat.params["W"][-1], flat.weights)
    assert not np.shares_memory(flat.params["b"][0], flat.weights)
    flat.theta[:] = 7
    assert all((view == 7).all() for arrays in flat.params.values() for view in arrays)
    assert set(flat.vectors()) == ({"velocity"} if momentum else set())


def test_flat_params_assign_copies_params_and_vectors_into_place():
    flat = FlatParams(init_params(DIMS, batch_norm=True, seed=0), ("velocity",))
    other = init_params(DIMS, batch_norm=True, seed=1)
    theta, velocity = flat.theta, flat.state["velocity"]
    flat.assign(other, {"velocity": np.arange(flat.theta.size, dtype=float)})
    assert flat.theta is theta and flat.state["velocity"] is velocity
    assert all(np.array_equal(a, b) for a, b in zip(flat.params["W"], other["W"]))
    assert np.array_equal(flat.state["velocity"], np.arange(flat.theta.size))


def batch(seed=0, n=16, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((DIMS[0], n)).astype(dtype),
            one_hot(rng.integers(0, 10, n), dtype=dtype))


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
@pytest.mark.parametrize("bn_order, dropout", [("before", False), ("after", True)])
def test_steps_follow_the_update_rule(momentum, nesterov, bn_order, dropout, sgd_update):
    """Three steps equal a loop written from the rule: g = gradient of the cost (lam included),
    plain theta -= eta g; momentum v = mu v + g, theta -= eta v; Nesterov theta -= eta (g + mu v).
    Each returns the mini-batch's BN statistics."""
    params = init_params(DIMS, batch_norm=True, seed=2)
    rule = SGD(0.01, momentum, nesterov)
    flat = FlatParams(params, rule.state)
    v = {name: [np.zeros_like(P) for P in params[name]] for name in params}
    rng = np.random.default_rng(4)
    for t, eta in enumerate([0.05, 0.1, 0.02]):
        Xb, Yb = batch(t)
        masks = dropout_masks(params, Xb.shape[1], 0.3, rng) if dropout else None
        expected_stats = forward(params, Xb, net=Net(bn_order), masks=masks)[2]
        g = compute_gradients(params, Xb, Yb, rule.lam, net=Net(bn_order), masks=masks)
        stats = step(flat, Xb, Yb, eta, t, rule, net=Net(bn_order), masks=masks)
        assert all(np.allclose(a, b) and np.allclose(c, d)
                   for (a, c), (b, d) in zip(stats, expected_stats))
        sgd_update(params, g, v, eta, momentum, nesterov)
        for name in params:
            for mine, ref in zip(flat.params[name], params[name]):
                assert np.allclose(mine, ref, rtol=1e-10, atol=1e-13)
    if momentum:
        assert np.abs(flat.state["velocity"]).max() > 0


@pytest.mark.parametrize("lam, weight_decay", [(0.0, 0.0), (0.01, 0.0), (0.0, 0.1)])
def test_adamw_steps_follow_the_update_written_out(lam, weight_decay):
    """Four AdamW steps (BN, dropout, float64) equal Loshchilov and Hutter's update written out
    array by array, in PyTorch's form: g = the cost's gradient (lam included); the weights decay
    W -= eta wd W; m, v the moving averages of g and g^2; theta -= eta / c1 m / (sqrt(v / c2) +
    eps) with the bias corrections c1 = 1 - b1^t, c2 = 1 - b2^t (t counted from 1); biases,
    gamma and beta do not decay. Steps are ~eta, so atol 1e-10 is 1e-7 of one."""
    rule = AdamW(lam, weight_decay)
    params = init_params(DIMS, batch_norm=True, seed=5)
    flat = FlatParams(params, rule.state)
    assert set(flat.vectors()) == {"m", "v"} and UPDATE_RULES["adamw"] is AdamW
    m, v = ({name: [np.zeros_like(P) for P in params[name]] for name in params} for _ in "mv")
    rng = np.random.default_rng(6)
    for t, eta in enumerate([1e-3, 3e-3, 2e-3, 5e-4]):
        Xb, Yb = batch(t)
        masks = dropout_masks(params, Xb.shape[1], 0.3, rng)
        g = compute_gradients(params, Xb, Yb, lam, masks=masks)
        step(flat, Xb, Yb, eta, t, rule, masks=masks)
        c1, c2 = 1 - 0.9 ** (t + 1), 1 - 0.999 ** (t + 1)
        for name in params:
            for P, G, M, V in zip(params[name], g[name], m[name], v[name]):
                if name == "W":
                    P -= eta * weight_decay * P
                M[...] = 0.9 * M + 0.1 * G
                V[...] = 0.999 * V + 0.001 * G * G
                P -= eta / c1 * M / (np.sqrt(V / c2) + 1e-8)
        for name in params:         # atol: the hidden biases' gradients are 0 up to rounding
            for mine, ref in zip(flat.params[name], params[name]):
                np.testing.assert_allclose(mine, ref, rtol=1e-12, atol=1e-10)


def test_momentum_update_in_blocks_equals_one_pass(monkeypatch):
    """The momentum update runs block by block over the vectors: blocks that split the weights
    from the other parameters give the same step."""
    from assignment3.nn import optim
    params = init_params(DIMS, batch_norm=True, seed=3)
    Xb, Yb = batch(5)
    rule = SGD(0.05, 0.8, nesterov=True)
    whole = FlatParams(params, rule.state)
    step(whole, Xb, Yb, 0.1, 0, rule)
    assert whole.theta.size < UPDATE_BLOCK
    monkeypatch.setattr(optim, "UPDATE_BLOCK", 97)
    blocks = FlatParams(params, rule.state)
    step(blocks, Xb, Yb, 0.1, 0, rule)
    assert np.allclose(blocks.theta, whole.theta, rtol=1e-12, atol=1e-15)
    assert np.allclose(blocks.state["velocity"], whole.state["velocity"], rtol=1e-12,
                       atol=1e-15)


def test_a_non_finite_step_raises_divergence_with_the_step():
    flat = FlatParams(init_params(DIMS, batch_norm=False, seed=0))
    Xb, Yb = batch(0)
    theta = flat.theta.copy()
    with pytest.raises(DivergenceError, match=r"diverged at step 7: mini-batch cost is nan "
                                              r"\(learning rate 0\.5\)") as err, \
            np.errstate(invalid="ignore", over="ignore"):
        step(flat, Xb * np.inf, Yb, 0.5, 7, SGD())
    assert (err.value.step, err.value.eta) == (7, 0.5)
    assert np.array_equal(flat.theta, theta)                   # nothing was updated


def test_divergence_error_names_the_settings_and_pickles_with_its_fields():
    err = DivergenceError(12, float("inf"), 0.25)
    assert str(err) == ("training diverged at step 12: mini-batch cost is inf (learning rate "
                        "0.25); lower eta_max or lam, or use a smaller init")
    assert "lower --eta-max or --lam, or use a smaller --init" in err.worded(
        lambda field: "--" + field.replace("_", "-"))
    again = pickle.loads(pickle.dumps(err))
    assert (again.step, again.cost, again.eta) == (12, float("inf"), 0.25)
    assert str(again) == str(err) and isinstance(again, RuntimeError)
