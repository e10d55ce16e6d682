"""Training: the cyclical and one-cycle learning rates, moving averages, momentum, augmentation,
a real short training, repeatability, divergence, argument checks."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from assignment3.augment import augment_rows
from assignment3.minibatches import minibatches, prefetched
from assignment3.network import compute_gradients, init_params
from assignment3.parallel import train_many
from assignment3.training import (BN_ALPHA, Config, DivergenceError, cyclic_lr, one_cycle_lr, train,
                                  update_moving_averages)


def test_cyclic_lr_triangle():
    assert cyclic_lr(0) == pytest.approx(1e-5)
    assert cyclic_lr(2250) == pytest.approx(1e-1)
    assert cyclic_lr(1125) == pytest.approx((1e-5 + 1e-1) / 2)
    assert cyclic_lr(4500) == pytest.approx(1e-5)                     # end of cycle 1
    assert cyclic_lr(4500 + 2250) == pytest.approx(1e-1)             # peak of cycle 2
    assert cyclic_lr(3000) == pytest.approx(1e-1 - 750 / 2250 * (1e-1 - 1e-5))
    etas = [cyclic_lr(t, 0.0, 1.0, 10) for t in range(41)]
    assert max(etas) == 1.0 and min(etas) == 0.0 and etas[10] == etas[30] == 1.0


def test_moving_averages_start_from_first_batch_then_decay():
    first = [(np.array([[1.0]]), np.array([[4.0]]))]
    av = update_moving_averages(None, first)
    assert av[0][0] is not first[0][0] and av[0][0][0, 0] == 1.0     # a copy, not an alias
    av = update_moving_averages(av, [(np.array([[3.0]]), np.array([[2.0]]))])
    assert av[0][0][0, 0] == pytest.approx(BN_ALPHA * 1 + (1 - BN_ALPHA) * 3)
    assert av[0][1][0, 0] == pytest.approx(BN_ALPHA * 4 + (1 - BN_ALPHA) * 2)
    assert first[0][0][0, 0] == 1.0                                   # input untouched


@pytest.mark.parametrize("kwargs", [{"hidden": ()}, {"hidden": (50, 0)}, {"lam": -1},
                                    {"n_batch": 0}, {"cycles": 0}, {"eta_min": 1, "eta_max": 0.1},
                                    {"dtype": "float16"}])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        Config(**kwargs)


def test_default_schedule_is_the_assignments(small_data):
    # 2,000 samples / batch 100 = 20 batches per epoch, so n_s = 100 steps, 2 cycles = 400 steps
    r = train(small_data, Config(cycles=2))
    assert r.steps == 400 and r.epochs == 20 and r.summary()["epochs"] == 20
    assert r.history["step"] == list(range(20, 401, 20))              # 10 evaluations a cycle
    assert r.history["eta"][9] == pytest.approx(cyclic_lr(199, n_s=100))


@pytest.mark.parametrize("bn", [True, False])
def test_short_real_training_learns(cifar10, bn):
    r = train(cifar10, Config(batch_norm=bn, n_s=300, cycles=1))
    h = r.history
    assert r.steps == 600 and len(h["step"]) == 10
    assert h["loss_train"][-1] < h["loss_train"][0] - 0.2
    assert h["acc_val"][-1] > h["acc_val"][0]
    assert r.val_accuracy > 0.38 and r.test_accuracy > 0.38          # chance is 0.10
    assert np.isfinite([h[k] for k in h]).all()


def test_same_seed_same_run_bit_for_bit(small_data):
    config = Config(n_s=30, cycles=1, seed=3)
    a, b = train(small_data, config), train(small_data, config)
    assert all((x == y).all() for n in a.params for x, y in zip(a.params[n], b.params[n]))
    assert a.history == b.history
    c = train(small_data, config.with_(seed=4))
    assert not np.array_equal(a.params["W"][0], c.params["W"][0])


def test_float64_option(cifar10_dir):
    from assignment3.data import load_cifar10
    data = load_cifar10(cifar10_dir, n_val=49000, dtype=np.float64)   # a small train split
    r = train(data, Config(dtype="float64", n_s=10, cycles=1))
    assert all(W.dtype == np.float64 for W in r.params["W"])
    with pytest.raises(ValueError, match="load_cifar10"):
        train(data, Config(dtype="float32", n_s=10, cycles=1))


def test_divergence_stops_with_the_step(small_data):
    with pytest.raises(DivergenceError, match=r"diverged at step \d+") as err:
        train(small_data, Config(batch_norm=False, eta_min=1e3, eta_max=1e4, n_s=50))
    assert 0 <= err.value.step < 200


def test_train_many_in_workers_matches_in_process(small_data):
    configs = [Config(n_s=20, cycles=1, seed=s) for s in (0, 1)]
    serial = train_many(small_data, configs, n_jobs=1)
    parallel = train_many(small_data, configs, n_jobs=2)
    for a, b in zip(serial, parallel):
        assert a.config == b.config
        assert all((x == y).all() for n in a.params for x, y in zip(a.params[n], b.params[n]))
        assert a.history == b.history


def test_prefetching_minibatches_changes_nothing(small_data):
    """With a core free (cores=2) the next mini-batch, its augmentation and dropout masks are
    made in another thread; the run is the same, bit for bit, as without (cores=1)."""
    config = Config(hidden=(30, 20), dropout=0.2, flip=True, max_shift=2, n_batch=50, n_s=20,
                    cycles=1, seed=5)
    a, b = train(small_data, config, cores=2), train(small_data, config, cores=1)
    assert all((x == y).all() for n in a.params for x, y in zip(a.params[n], b.params[n]))
    assert a.history == b.history


def test_prefetched_yields_the_same_items_in_order():
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert list(prefetched(iter([0, None, 2]), pool)) == [0, None, 2]
        assert list(prefetched(iter([]), pool)) == []


def test_one_cycle_lr_warms_up_then_decays_to_zero():
    total = 100
    etas = [one_cycle_lr(t, total, 0.0, 1.0, warmup=0.2) for t in range(total + 1)]
    assert etas[0] == 0.0 and etas[10] == pytest.approx(0.5) and etas[20] == pytest.approx(1.0)
    assert max(etas) == etas[20] and etas[60] == pytest.approx(0.5) and etas[100] == 0.0
    assert all(a < b for a, b in zip(etas[:20], etas[1:21]))
    assert all(a > b for a, b in zip(etas[20:], etas[21:]))


@pytest.mark.parametrize("kwargs", [{"schedule": "cosine"}, {"schedule": "one_cycle"},
                                    {"epochs": 3}, {"schedule": "one_cycle", "epochs": 0},
                                    {"schedule": "one_cycle", "epochs": 2, "warmup": 1.0},
                                    {"momentum": 1.0}, {"nesterov": True}, {"bn_order": "middle"},
                                    {"dropout": 1.0}, {"max_shift": -1}, {"blas_threads": 0}])
def test_config_rejects_bad_options(kwargs):
    with pytest.raises(ValueError):
        Config(**kwargs)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_steps_follow_the_update_rule(small_data, nesterov):
    """Three steps of `train` equal a loop written from the rule: g = gradient of the cost,
    v = mu v + g, theta -= eta v (Nesterov: theta -= eta (g + mu v)), on the same mini-batches."""
    data64 = _as_float64(small_data)
    config = Config(hidden=(20,), batch_norm=True, lam=0.01, n_batch=100, schedule="one_cycle",
                    epochs=3 / 20, momentum=0.9, nesterov=nesterov, dtype="float64", seed=2)
    result = train(data64, config)
    params = init_params([3072, 20, 10], batch_norm=True, seed=2)
    batches = minibatches(data64.train, 100, np.random.default_rng([2, 1]))
    v = {name: [np.zeros_like(P) for P in params[name]] for name in params}
    for t in range(3):
        Xb, Yb, _ = next(batches)
        g = compute_gradients(params, Xb, Yb, config.lam)
        eta = one_cycle_lr(t, 3, config.eta_min, config.eta_max, config.warmup)
        for name in params:
            for P, G, V in zip(params[name], g[name], v[name]):
                V *= 0.9
                V += G
                P -= eta * (G + 0.9 * V if nesterov else V)
    for name in params:
        for mine, ref in zip(result.params[name], params[name]):
            assert np.allclose(mine, ref, rtol=1e-9, atol=1e-12)


def _as_float64(data):
    from assignment3.data import CIFAR10, Split

    def cast(split):
        return Split(np.ascontiguousarray(split.X.T, np.float64).T, split.Y, split.y)

    return CIFAR10(cast(data.train), cast(data.val), cast(data.test), data.mean, data.std)


def test_all_beyond_options_train_and_learn(small_data):
    """A short run with every option on (one-cycle, Nesterov, BN after ReLU, dropout, flips and
    shifts, label smoothing, MixUp, ZCA, 2 BLAS threads) learns; a seed repeats such a run bit for bit (without the
    slow ZCA fit, on one BLAS thread)."""
    config = Config(hidden=(100, 50), bn_order="after", dropout=0.2, flip=True, max_shift=3,
                    zca=True, schedule="one_cycle", epochs=4, momentum=0.9, nesterov=True,
                    lam=2.5e-4, n_batch=50, blas_threads=2, seed=1, label_smoothing=0.1,
                    mixup=0.2)
    a = train(small_data, config)
    assert a.steps == 160 and len(a.history["step"]) == 10
    assert a.history["loss_train"][-1] < a.history["loss_train"][0]
    assert a.test_accuracy > 0.2                       # chance is 0.10; 2,000 training images
    repeat = config.with_(zca=False, blas_threads=1, epochs=1)
    b, c = train(small_data, repeat), train(small_data, repeat)
    assert b.history == c.history and np.array_equal(b.params["W"][0], c.params["W"][0])


def test_augmented_minibatches_transform_the_same_images(small_data):
    plain = minibatches(small_data.train, 50, np.random.default_rng(0))
    augmented = minibatches(small_data.train, 50, np.random.default_rng(0),
                             lambda rows: augment_rows(rows, np.random.default_rng(1)))
    Xp, Yp, _ = next(plain)
    Xa, Ya, _ = next(augmented)
    assert np.array_equal(Yp, Ya) and not np.array_equal(Xp, Xa)
    assert np.array_equal(Xa, augment_rows(np.ascontiguousarray(Xp.T), np.random.default_rng(1)).T)
