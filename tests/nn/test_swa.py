"""nn.swa: the steps whose weights enter the average (`snapshot_steps`), the running mean that
keeps it (`add_to_average`, also through `FlatParams`), and the BN statistics recomputed for the
averaged weights (`bn_statistics`), each against a computation written out here."""
import numpy as np
import pytest

from assignment3.nn.network import Net, forward, init_params
from assignment3.nn.optim import FlatParams
from assignment3.nn.swa import add_to_average, bn_statistics, snapshot_steps

# ---------------------------------------------------------------------------------------------
# snapshot_steps


@pytest.mark.parametrize("total, batches, fraction, expected", [
    (18, 6, 0.5, {12: 1, 18: 2}),              # the last 9 steps (10..18): two epoch ends
    (18, 6, 0.6, {12: 1, 18: 2}),              # the last 11 (8..18)
    (18, 6, 0.7, {6: 1, 12: 2, 18: 3}),        # the last 13 (6..18): epoch end 6 is in
    (18, 6, 0.66, {12: 1, 18: 2}),             # the last 12 (7..18): 6 is just out
    (20, 6, 0.5, {12: 1, 18: 2, 20: 3}),       # the last step, though not an epoch's end
    (20, 6, 0.2, {18: 1, 20: 2}),              # the last 4 (17..20)
    (20, 6, 0.1, {20: 1}),                     # the last 2: no epoch end among them
    (5, 1, 0.4, {4: 1, 5: 2}),                 # an epoch of one step: every step is an end
])
def test_snapshot_steps_are_the_epoch_ends_of_the_window_and_the_last(total, batches, fraction,
                                                                      expected):
    """The epoch ends (multiples of `batches`) within the last `fraction` of the steps, and the
    last step, numbered k = 1, 2, ... in order."""
    assert snapshot_steps(total, batches, fraction) == expected


@pytest.mark.parametrize("total, batches", [(18, 6), (20, 6), (7, 7), (90, 30), (1, 1)])
def test_fraction_one_covers_every_epoch_end(total, batches):
    """The whole run: every epoch's end and the last step, k counting them 1..n."""
    steps = snapshot_steps(total, batches, 1.0)
    ends = sorted({*range(batches, total + 1, batches), total})
    assert steps == {s: k for k, s in enumerate(ends, start=1)}
    assert list(steps.values()) == list(range(1, len(ends) + 1))


@pytest.mark.parametrize("total, batches", [(18, 6), (20, 6), (1, 1), (1000, 7)])
@pytest.mark.parametrize("fraction", [1e-9, 1e-4])
def test_tiny_fraction_gives_only_the_last_step(total, batches, fraction):
    """A window of no step at all still averages the last step's weights: {total: 1}."""
    assert snapshot_steps(total, batches, fraction) == {total: 1}


# ---------------------------------------------------------------------------------------------
# add_to_average


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_add_to_average_is_the_mean_of_the_snapshots(n):
    """After k = 1..n calls with the snapshots, the average is np.mean of the first k of them
    (float64: to rounding); the snapshots are left as they were."""
    rng = np.random.default_rng(n)
    snapshots = [rng.standard_normal(50) * (k + 1) + k for k in range(n)]
    copies = [s.copy() for s in snapshots]
    average = rng.standard_normal(50)                 # whatever it held before: overwritten
    for k, theta in enumerate(snapshots, start=1):
        add_to_average(average, theta, k)
        np.testing.assert_allclose(average, np.mean(snapshots[:k], axis=0), rtol=1e-13,
                                   atol=1e-13)
    assert average.dtype == np.float64
    assert all(np.array_equal(s, c) for s, c in zip(snapshots, copies))


def test_first_snapshot_is_copied_exactly():
    """k = 1 makes the average theta bit for bit (whatever was in it), not an alias of it."""
    theta = np.random.default_rng(1).standard_normal(10).astype(np.float32)
    average = np.full(10, np.nan, np.float32)
    add_to_average(average, theta, 1)
    assert np.array_equal(average, theta) and average.dtype == np.float32
    theta += 1
    assert not np.array_equal(average, theta)


def test_flat_params_keep_the_average_of_their_theta():
    """FlatParams(average=True): the average is a vector named "average" among the optimiser's
    vectors (beside the velocity), `averaged` the dict of views into it, and add_to_average
    averages the current theta; without `average` there is none."""
    params = init_params([12, 5, 3], batch_norm=True, seed=0, dtype=np.float64)
    flat = FlatParams(params, ("velocity",), average=True)
    assert set(flat.vectors()) == {"velocity", "average"}
    assert set(FlatParams(params).vectors()) == set()
    assert FlatParams(params).averaged is None
    thetas = []
    for k in range(1, 4):
        flat.theta[...] = np.random.default_rng(k).standard_normal(flat.theta.size)
        thetas.append(flat.theta.copy())
        flat.add_to_average(k)
    expected = np.mean(thetas, axis=0)
    np.testing.assert_allclose(flat.vectors()["average"], expected, rtol=1e-13, atol=1e-13)
    assert flat.averaged is not None
    i = 0
    for name in ("W", "b", "gamma", "beta"):              # the views lie in the vector's layout
        for view, P in zip(flat.averaged[name], flat.params[name]):
            assert view.shape == P.shape and np.shares_memory(view, flat.average)
            np.testing.assert_allclose(view.ravel(), expected[i:i + P.size], rtol=1e-13)
            i += P.size
    assert i == flat.average.size


# ---------------------------------------------------------------------------------------------
# bn_statistics


def by_hand(params, X, n_batch, bn_order):
    """The mean over X's whole mini-batches of n_batch columns of the (mu, v) of each BN layer
    of a training-mode `forward`, in float64, then in X's dtype."""
    per_batch = [forward(params, X[:, i:i + n_batch], net=Net(bn_order))[2]
                 for i in range(0, X.shape[1] - n_batch + 1, n_batch)]
    return [tuple(np.mean([np.asarray(b[l][j], np.float64) for b in per_batch], axis=0)
                  .astype(X.dtype) for j in (0, 1))
            for l in range(len(per_batch[0]))]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bn_order", ["before", "after"])
@pytest.mark.parametrize("n, n_batch", [(60, 20), (67, 20), (60, 60), (19, 19)])
def test_bn_statistics_are_the_mean_of_the_training_mode_batch_statistics(dtype, bn_order, n,
                                                                          n_batch):
    """Each BN layer's (mu, v): the mean over the whole mini-batches (67 = 3 x 20 + 7 columns:
    three of them) of what training mode computes; of X's dtype and the layer's shape m x 1."""
    rng = np.random.default_rng(3)
    params = init_params([15, 8, 6, 4], batch_norm=True, seed=2, dtype=dtype)
    params["gamma"] = [g + rng.standard_normal(g.shape).astype(dtype) for g in params["gamma"]]
    params["beta"] = [b + rng.standard_normal(b.shape).astype(dtype) for b in params["beta"]]
    X = (rng.standard_normal((15, n)) * 2 + 0.5).astype(dtype)
    stats = bn_statistics(params, X, n_batch, Net(bn_order))
    expected = by_hand(params, X, n_batch, bn_order)
    assert len(stats) == len(expected) == 2
    tol = 1e-12 if dtype == np.float64 else 1e-6
    for (mu, v), (mu_hand, v_hand), m in zip(stats, expected, (8, 6)):
        assert mu.dtype == v.dtype == dtype and mu.shape == v.shape == (m, 1)
        np.testing.assert_allclose(mu, mu_hand, rtol=tol, atol=tol)
        np.testing.assert_allclose(v, v_hand, rtol=tol, atol=tol)


def test_last_partial_batch_is_dropped():
    """The 7 columns after 3 batches of 20 do not count: the statistics are those of the first
    60 columns bit for bit, and not those with the 7 as a fourth batch."""
    rng = np.random.default_rng(4)
    params = init_params([15, 8, 4], batch_norm=True, seed=1, dtype=np.float64)
    X = rng.standard_normal((15, 67))
    X[:, 60:] += 5                                        # a partial batch unlike the others
    stats = bn_statistics(params, X, 20)
    first_60 = bn_statistics(params, X[:, :60], 20)
    assert all(np.array_equal(a, b) for s, t in zip(stats, first_60) for a, b in zip(s, t))
    four = [forward(params, X[:, i:i + 20])[2][0][0] for i in (0, 20, 40, 60)]
    assert not np.allclose(stats[0][0], np.mean(four, axis=0), rtol=1e-3)
    np.testing.assert_allclose(stats[0][0], np.mean(four[:3], axis=0), rtol=1e-12)


def test_bn_statistics_depend_on_the_order_and_leave_the_params():
    """BN before and after the ReLU give other statistics (the mean after a ReLU is >= 0), and
    the params are not changed."""
    rng = np.random.default_rng(5)
    params = init_params([10, 7, 3], batch_norm=True, seed=0, dtype=np.float64)
    copies = {name: [P.copy() for P in arrays] for name, arrays in params.items()}
    X = rng.standard_normal((10, 40))
    before = bn_statistics(params, X, 10, Net("before"))
    after = bn_statistics(params, X, 10, Net("after"))
    assert np.all(after[0][0] >= 0) and not np.allclose(before[0][0], after[0][0])
    assert all(np.array_equal(P, Q) for name in params for P, Q in zip(params[name], copies[name]))


def test_bn_statistics_of_a_net_without_bn_are_empty():
    """[] for a network without BN layers, whatever the data."""
    params = init_params([10, 7, 3], batch_norm=False, seed=0, dtype=np.float64)
    X = np.random.default_rng(0).standard_normal((10, 40))
    assert bn_statistics(params, X, 10) == []
    assert bn_statistics(params, X, 40, Net("after")) == []
