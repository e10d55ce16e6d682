"""assignment3.nn.cost: the cost on a mini-batch, the test-mode evaluation (BN folded into the
weights, in chunks), the test-mode scores, the accuracy and the pieces of the cost."""
import tracemalloc

import numpy as np
import pytest

from assignment3.nn import cost
from assignment3.nn.cost import (
    compute_accuracy,
    compute_cost,
    cross_entropy_sum,
    evaluate,
    l2_penalty,
)
from assignment3.nn.network import Net, dropout_masks, forward, init_params, log_softmax, softmax

DIMS = [20, 50, 30, 10]


def test_cost_is_loss_plus_l2_and_evaluate_agrees(batch):
    X, Y, y = batch
    p = init_params(DIMS, batch_norm=False, seed=0)
    S, _, _ = forward(p, X)
    loss = -np.mean(np.log(softmax(S)[y, np.arange(len(y))]))
    l2 = sum((W ** 2).sum() for W in p["W"])
    assert l2_penalty(p, 0.1) == pytest.approx(0.1 * l2)
    assert cross_entropy_sum(S, y) == pytest.approx(len(y) * loss)
    assert compute_cost(p, X, Y, 0.1) == pytest.approx(loss + 0.1 * l2)
    res = evaluate(p, X, y, 0.1, None)
    assert res["loss"] == pytest.approx(loss) and res["cost"] == pytest.approx(loss + 0.1 * l2)
    assert res["accuracy"] == np.mean(S.argmax(axis=0) == y)
    assert compute_accuracy(p, X, y, None) == res["accuracy"]


def test_cost_of_soft_targets_is_their_cross_entropy(batch):
    """With soft targets (label smoothing, MixUp) a column's loss is -sum_k y_k log p_k."""
    X, Y, _ = batch
    p = init_params(DIMS, batch_norm=True, seed=0)
    soft = 0.7 * Y + 0.03
    S, _, _ = forward(p, X)
    expected = -(soft * log_softmax(S)).sum(axis=0).mean()
    assert compute_cost(p, X, soft, 0.0) == pytest.approx(expected, rel=1e-12)
    assert compute_cost(p, X, soft, 0.0) != pytest.approx(compute_cost(p, X, Y, 0.0), rel=1e-3)


def test_cost_in_float32_is_a_float32(batch):
    X, Y, _ = batch
    p = init_params(DIMS, batch_norm=True, seed=0, dtype=np.float32)
    c = compute_cost(p, X.astype(np.float32), Y.astype(np.float32), 0.01)
    assert c.dtype == np.float32
    assert c == pytest.approx(compute_cost(init_params(DIMS, batch_norm=True, seed=0), X, Y, 0.01),
                              rel=1e-5)


def test_cost_with_statistics_and_masks_uses_them(batch):
    X, Y, _ = batch
    p = init_params(DIMS, batch_norm=True, seed=0)
    _, _, stats = forward(p, X * 2.0)
    S, _, _ = forward(p, X, stats)
    assert compute_cost(p, X, Y, 0.0, stats) == pytest.approx(
        -(Y * log_softmax(S)).sum() / X.shape[1])
    masks = dropout_masks(p, X.shape[1], 0.5, np.random.default_rng(2))
    S, _, _ = forward(p, X, masks=masks)
    assert compute_cost(p, X, Y, 0.0, masks=masks) == pytest.approx(
        -(Y * log_softmax(S)).sum() / X.shape[1])


def test_evaluate_never_changes_the_moving_averages(batch):
    X, Y, y = batch
    p = init_params(DIMS, batch_norm=True, seed=0)
    _, _, stats = forward(p, X)
    before = [(mu.copy(), v.copy()) for mu, v in stats]
    evaluate(p, np.hstack([X * 3.0, X]), np.concatenate([y, y]), 0.01, stats)
    assert all((mu == m0).all() and (v == v0).all() for (mu, v), (m0, v0) in zip(stats, before))


def test_evaluate_requires_statistics_for_bn(batch):
    X, _, y = batch
    with pytest.raises(ValueError, match="a BN network needs the moving averages"):
        evaluate(init_params(DIMS, batch_norm=True, seed=0), X, y, 0.0, None)


def test_evaluate_in_chunks_equals_one_pass(monkeypatch, batch):
    X, _, y = batch
    p = init_params(DIMS, batch_norm=True, seed=0)
    _, _, stats = forward(p, X)
    whole = evaluate(p, X, y, 0.0, stats)
    monkeypatch.setattr(cost, "EVAL_CHUNK", 3)
    assert evaluate(p, X, y, 0.0, stats) == pytest.approx(whole)


def test_a_wide_networks_evaluation_peak_is_set_by_its_chunk(monkeypatch):
    """Chunks of fewer columns for a wide network: the peak of an evaluation of 4,000 columns
    (tracemalloc, which sees numpy's arrays) stays within EVAL_BYTES and the weights, and the
    scores are those of one pass."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((30, 4000)), rng.integers(0, 10, 4000)
    p = init_params([30, 2000, 10], batch_norm=False, seed=0)
    whole = evaluate(p, X, y, 0.0, None)
    monkeypatch.setattr(cost, "EVAL_BYTES", 1 << 20)     # 1 MiB: chunks of 65 columns
    tracemalloc.start()
    try:
        chunked = evaluate(p, X, y, 0.0, None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert chunked == pytest.approx(whole)
    assert peak < 4 * (1 << 20), peak       # one pass: 4,000 x 2,010 x 8 bytes = 64 MB


@pytest.mark.parametrize("bn_order", ["before", "after"])
def test_folded_test_mode_equals_forward_with_statistics(batch, bn_order):
    """`evaluate` folds BN into the weights; its loss must equal a test-mode forward pass."""
    X, Y, y = batch
    rng = np.random.default_rng(5)
    p = init_params(DIMS, batch_norm=True, seed=0)
    p["gamma"] = [1 + 0.3 * rng.standard_normal(g.shape) for g in p["gamma"]]
    p["beta"] = [0.3 * rng.standard_normal(g.shape) for g in p["beta"]]
    _, _, stats = forward(p, X * 1.5, net=Net(bn_order))             # statistics of other data
    S, _, _ = forward(p, X, stats, net=Net(bn_order))
    loss = -np.mean(log_softmax(S)[y, np.arange(len(y))])
    folded = evaluate(p, X, y, 0.0, stats, net=Net(bn_order))["loss"]
    assert folded == pytest.approx(loss, rel=1e-10)
    other = "after" if bn_order == "before" else "before"
    assert evaluate(p, X, y, 0.0, stats, net=Net(other))["loss"] != pytest.approx(loss, rel=1e-6)


@pytest.mark.parametrize("bn_order", ["before", "after"])
def test_test_scores_equal_a_test_mode_forward_pass(monkeypatch, batch, bn_order):
    X, _, y = batch
    p = init_params(DIMS, batch_norm=True, seed=0)
    _, _, stats = forward(p, X * 2.0, net=Net(bn_order))
    monkeypatch.setattr(cost, "EVAL_CHUNK", 3)
    S = cost.test_scores(p, X, stats, net=Net(bn_order))   # not imported: pytest would collect it
    assert S.shape == (10, X.shape[1])
    assert np.allclose(S, forward(p, X, stats, net=Net(bn_order))[0])
    assert compute_accuracy(p, X, y, stats, net=Net(bn_order)) == np.mean(S.argmax(axis=0) == y)
