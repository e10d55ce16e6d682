"""assignment3.training: `train` on the synthetic data (the schedules, the update rule with the BN
moving averages, every option beyond the assignment, repeatability, prefetching, the signal
handlers, divergence, the data and runs it refuses), and short runs on the real CIFAR-10 (slow).
A run stopped by a real signal and resumed from its checkpoint: here for AdamW, and in
test_harness.py and store/test_checkpoints.py."""
import json
import os
import signal
import threading
import time

import numpy as np
import pytest

from assignment3.config import Config, ConfigError
from assignment3.data import CIFAR10, Split, one_hot, zca_whiten
from assignment3.nn.network import (
    compute_gradients,
    forward,
    init_params,
    update_moving_averages,
)
from assignment3.nn.optim import DivergenceError, cyclic_lr, one_cycle_lr
from assignment3.signals import TrainingInterrupted
from assignment3.store import runfile
from assignment3.store.checkpoints import Checkpoint
from assignment3.training import Result, check_run, schedule, train
from assignment3.training.inputs import minibatches
from tests.conftest import equal_params, equal_stats, make_synthetic

#: A tiny run on the synthetic data (300 training images): 6 steps an epoch, 40 steps.
TINY = Config(hidden=(20,), n_batch=50, n_s=20, cycles=1)


def same_params(a, b):
    return all(len(a[n]) == len(b[n]) and all(np.array_equal(x, y) for x, y in zip(a[n], b[n]))
               for n in a)


# ---------------------------------------------------------------------------------------------
# Schedules


def test_default_schedule_is_the_assignments(synthetic):
    # 300 samples / batch 100 = 3 batches per epoch, so n_s = 15 steps, 2 cycles = 60 steps
    r = train(synthetic, Config())
    assert r.steps == 60 and r.epochs == 20 and r.summary()["epochs"] == 20
    assert r.history["step"] == list(range(3, 61, 3))                 # 10 evaluations a cycle
    assert r.history["eta"][9] == pytest.approx(cyclic_lr(29, n_s=15))
    assert r.resumed_from_step == 0 and r.seconds > 0


def test_cyclic_schedule_with_n_s_and_fractional_cycles(synthetic):
    config = TINY.with_(cycles=1.5, evals_per_cycle=4)
    total, every, rate = schedule(config, 6)
    assert (total, every) == (60, 10) and rate(20) == pytest.approx(config.eta_max)
    r = train(synthetic, config)
    assert r.steps == 60 and r.history["step"] == [10, 20, 30, 40, 50, 60]
    assert r.history["eta"] == [pytest.approx(cyclic_lr(t - 1, config.eta_min, config.eta_max, 20))
                                for t in r.history["step"]]


def test_one_cycle_schedule(synthetic):
    config = TINY.with_(schedule="one_cycle", epochs=5, cycles=2, eta_max=0.05)
    total, every, _ = schedule(config, 6)
    assert (total, every) == (30, 3)
    r = train(synthetic, config)
    assert r.steps == 30 and r.epochs == 5 and r.history["step"] == list(range(3, 31, 3))
    assert r.history["eta"] == [pytest.approx(one_cycle_lr(t - 1, 30, config.eta_min, 0.05))
                                for t in r.history["step"]]
    assert schedule(config.with_(epochs=0.01), 6)[:2] == (1, 1)       # at least one step
    held = train(synthetic, config.with_(swa=0.5, swa_lr=0.01)).history
    assert [eta for t, eta in zip(held["step"], held["eta"]) if t > 15] == [0.01] * 5
    assert held["eta"][:2] == r.history["eta"][:2]                  # the same warm-up
    assert all(a < b for a, b in zip(held["eta"][2:5], r.history["eta"][2:5]))  # falls sooner


# ---------------------------------------------------------------------------------------------
# The steps


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_steps_follow_the_update_rule_with_the_moving_averages(synthetic64, momentum, nesterov,
                                                                sgd_update):
    """Three steps of `train` equal a loop written from the rule: g = gradient of the cost,
    theta -= eta g, or with momentum v = mu v + g, theta -= eta v (Nesterov: theta -= eta (g + mu
    v)), on the same mini-batches; the BN moving averages follow the mini-batch statistics."""
    config = Config(hidden=(20,), batch_norm=True, lam=0.01, n_batch=100, schedule="one_cycle",
                    epochs=1, momentum=momentum, nesterov=nesterov, dtype="float64", seed=2)
    result = train(synthetic64, config)
    assert result.steps == 3
    params = init_params([3072, 20, 10], batch_norm=True, seed=2)
    batches = minibatches(synthetic64.train, 100, np.random.default_rng([2, 1]))
    v = {name: [np.zeros_like(P) for P in params[name]] for name in params}
    stats = None
    for t in range(3):
        Xb, Yb, _ = next(batches)
        stats = update_moving_averages(stats, forward(params, Xb)[2])
        g = compute_gradients(params, Xb, Yb, config.lam)
        eta = one_cycle_lr(t, 3, config.eta_min, config.eta_max, config.warmup)
        sgd_update(params, g, v, eta, momentum, nesterov)
    for name in params:
        for mine, ref in zip(result.params[name], params[name]):
            assert np.allclose(mine, ref, rtol=1e-9, atol=1e-12)
    for (mu, var), (mu_ref, var_ref) in zip(result.stats, stats):
        assert np.allclose(mu, mu_ref, rtol=1e-9) and np.allclose(var, var_ref, rtol=1e-9)


def test_short_synthetic_training_learns(synthetic):
    r = train(synthetic, TINY.with_(cycles=3))
    h = r.history
    assert set(h) == {"step", "eta", "cost_train", "loss_train", "acc_train", "cost_val",
                      "loss_val", "acc_val"}
    assert h["loss_train"][-1] < h["loss_train"][0] - 0.2
    assert h["acc_train"][-1] > h["acc_train"][0] and h["acc_train"][-1] > 0.5   # chance: 0.1
    assert r.val_accuracy == h["acc_val"][-1] and 0 <= r.test_accuracy <= 1
    assert all(np.isfinite(h[k]).all() for k in h)
    assert [W.dtype for W in r.params["W"]] == [np.float32] * 2 and len(r.stats) == 1
    assert h["cost_train"][-1] > h["loss_train"][-1]                 # the L2 term


def test_without_batch_norm(synthetic):
    r = train(synthetic, TINY.with_(batch_norm=False, hidden=(20, 10), n_batch=1))
    assert r.params["gamma"] == [] and r.stats == [] and r.steps == 2 * 20
    assert np.isfinite(r.history["cost_train"]).all()


# ---------------------------------------------------------------------------------------------
# The options beyond the assignment


def test_all_beyond_options_train_and_learn(synthetic):
    """A short run with every option on but ZCA (one-cycle, Nesterov, BN after ReLU, dropout,
    flips and shifts, label smoothing, MixUp) trains, and a seed repeats it bit for bit; without
    the flips and shifts (which scramble the synthetic labels, a linear map of the pixels) it
    learns the training set. (More BLAS threads: test_harness.py; ZCA: below; all of it on real
    images: the slow test below.)"""
    config = Config(hidden=(100, 50), bn_order="after", dropout=0.2, flip=True, max_shift=3,
                    schedule="one_cycle", epochs=10, momentum=0.9, nesterov=True, lam=2.5e-4,
                    n_batch=50, seed=1, label_smoothing=0.1, mixup=0.2, eta_max=0.05)
    a, b = train(synthetic, config), train(synthetic, config)
    assert a.steps == 60 and len(a.history["step"]) == 10
    assert a.history["loss_train"][-1] < a.history["loss_train"][0]
    assert np.isfinite(a.history["cost_val"]).all()
    assert b.history == a.history and same_params(b.params, a.params)
    learns = train(synthetic, config.with_(flip=False, max_shift=0, eta_max=0.02))
    assert learns.history["acc_train"][-1] > 0.5              # chance is 0.10


@pytest.mark.parametrize("option", [{"dropout": 0.3}, {"flip": True}, {"max_shift": 2},
                                    {"label_smoothing": 0.2}, {"mixup": 0.4},
                                    {"bn_order": "after"}, {"momentum": 0.5},
                                    {"momentum": 0.5, "nesterov": True},
                                    {"optimizer": "adamw", "eta_max": 0.01}])
def test_each_option_changes_the_run(synthetic, option):
    base = TINY.with_(cycles=0.3, momentum=0.5 if option.get("nesterov") else 0.0)
    plain, other = train(synthetic, base), train(synthetic, base.with_(**option))
    assert not np.array_equal(plain.params["W"][0], other.params["W"][0])
    assert np.isfinite(other.history["cost_train"]).all()


def test_an_adamw_run_learns_and_resumes_bit_for_bit(synthetic, tmp_path):
    """AdamW with decoupled weight decay, stopped by a real SIGTERM once its first checkpoint is
    written: resumed from it, the run ends as the run never stopped (parameters, moving
    averages, history, scores), its checkpoint holding the moments m and v; and it fits the
    training set."""
    config = TINY.with_(hidden=(16,), n_s=100, cycles=1, evals_per_cycle=20, eta_max=0.01,
                        optimizer="adamw", weight_decay=0.05, dropout=0.1)
    reference = train(synthetic, config)
    assert reference.history["acc_train"][-1] > 0.9          # it fits the training set
    path = tmp_path / "adamw.ckpt.npz"

    def stop_after_first_checkpoint():
        while not path.exists():
            time.sleep(0.001)
        os.kill(os.getpid(), signal.SIGTERM)

    late = []                              # a signal that came after the run: the test fails
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: late.append(signum))
    thread = threading.Thread(target=stop_after_first_checkpoint, daemon=True)
    try:
        thread.start()
        with pytest.raises(TrainingInterrupted) as stop:
            train(synthetic, config, checkpoint=Checkpoint(path))
        thread.join()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert late == [] and 0 < stop.value.step < reference.steps
    assert {"m", "v"} <= set(runfile.read(path)[0])
    resumed = train(synthetic, config, checkpoint=Checkpoint(path))
    assert resumed.resumed_from_step == stop.value.step
    assert equal_params(resumed.params, reference.params)
    assert equal_stats(resumed.stats, reference.stats)
    assert resumed.history == reference.history
    assert (resumed.val_accuracy, resumed.test_accuracy) == (reference.val_accuracy,
                                                             reference.test_accuracy)


def test_zca_option_trains_on_the_whitened_data():
    """zca=True is the same run as on data whitened by `zca_whiten` beforehand (small images:
    the fit is a d x d eigen-decomposition)."""
    data = make_synthetic(n_train=200, n_val=50, n_test=50, d=40, seed=1)
    config = Config(hidden=(10,), n_batch=50, n_s=8, cycles=1)
    whitened, by_hand = train(data, config.with_(zca=True)), train(zca_whiten(data), config)
    assert whitened.history == by_hand.history and same_params(whitened.params, by_hand.params)
    assert whitened.test_accuracy == by_hand.test_accuracy
    assert not same_params(train(data, config).params, whitened.params)


@pytest.mark.slow
def test_all_beyond_options_with_zca_on_real_images(small_data):
    """Every option on, ZCA included, on 2,000 real training images: the run learns."""
    config = Config(hidden=(100, 50), bn_order="after", dropout=0.2, flip=True, max_shift=3,
                    zca=True, schedule="one_cycle", epochs=4, momentum=0.9, nesterov=True,
                    lam=2.5e-4, n_batch=50, blas_threads=2, seed=1, label_smoothing=0.1,
                    mixup=0.2)
    a = train(small_data, config)
    assert a.steps == 160 and len(a.history["step"]) == 10
    assert a.history["loss_train"][-1] < a.history["loss_train"][0]
    assert a.test_accuracy > 0.2                       # chance is 0.10; 2,000 training images


def test_float64_option(synthetic64, synthetic):
    r = train(synthetic64, TINY.with_(dtype="float64", cycles=0.2))
    assert all(P.dtype == np.float64 for arrays in r.params.values() for P in arrays)
    with pytest.raises(ValueError, match=r"data.train.X is float64 but the config's dtype is "
                                         r"float32: load the data with load_cifar10\(dtype="
                                         r"np.float32\)"):
        train(synthetic64, TINY)
    with pytest.raises(ValueError, match="load_cifar10"):
        train(synthetic, TINY.with_(dtype="float64"))


# ---------------------------------------------------------------------------------------------
# Repeatability, prefetching, checkpoints and stops


def test_same_seed_same_run_bit_for_bit(synthetic):
    config = TINY.with_(seed=3)
    a, b = train(synthetic, config), train(synthetic, config)
    assert same_params(a.params, b.params) and a.history == b.history
    assert all(np.array_equal(x, y) for pa, pb in zip(a.stats, b.stats) for x, y in zip(pa, pb))
    c = train(synthetic, config.with_(seed=4))
    assert not np.array_equal(a.params["W"][0], c.params["W"][0])


def test_prefetching_minibatches_changes_nothing(synthetic):
    """With a core free (cores=2) the next mini-batch, its augmentation and dropout masks are
    made in another thread; the run is the same, bit for bit, as without (cores=1)."""
    config = Config(hidden=(30, 20), dropout=0.2, flip=True, max_shift=2, n_batch=50, n_s=20,
                    cycles=1, seed=5)
    a, b = train(synthetic, config, cores=2), train(synthetic, config, cores=1)
    assert same_params(a.params, b.params) and a.history == b.history


def test_train_restores_the_signal_handlers(synthetic):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    train(synthetic, TINY.with_(cycles=0.1))
    assert {s: signal.getsignal(s) for s in before} == before


def test_divergence_stops_with_the_step(synthetic):
    with pytest.raises(DivergenceError, match=r"training diverged at step \d+: mini-batch cost is"
                                              r" (nan|inf)") as err:
        train(synthetic, TINY.with_(batch_norm=False, eta_min=1e3, eta_max=1e4, cycles=2))
    assert 0 <= err.value.step < 80


def test_result_summary_is_json_ready(synthetic):
    r = train(synthetic, TINY.with_(cycles=0.2))
    summary = json.loads(json.dumps(r.summary()))
    assert summary["config"]["hidden"] == [20] and summary["steps"] == 8
    assert summary["test_accuracy"] == r.test_accuracy and isinstance(r, Result)


# ---------------------------------------------------------------------------------------------
# What train refuses, before any step


def test_train_refuses_a_run_that_does_not_fit(synthetic):
    with pytest.raises(ConfigError, match="n_batch=301 exceeds the 300 training samples"):
        train(synthetic, Config(n_batch=301))
    with pytest.raises(ConfigError, match=r"cycles=0.01 makes 0 training steps \(a cycle has 30 "
                                          r"steps\): use at least 0.033"):
        train(synthetic, Config(cycles=0.01))           # 30 steps a cycle
    with pytest.raises(ConfigError, match="blas_threads=.* exceeds the .* cores of this machine"):
        train(synthetic, Config(blas_threads=(os.cpu_count() or 1) + 1))
    with pytest.raises(TypeError, match="config must be a Config, got dict"):
        train(synthetic, {"hidden": (50,)})
    check_run(Config(n_batch=300), 300)                 # a batch of the whole set fits


def replace_split(data, name, X=None, y=None):
    split = getattr(data, name)
    y = split.y if y is None else y
    Y = split.Y if y is split.y else one_hot(y % 10, dtype=split.Y.dtype)
    new = Split(split.X if X is None else X, Y, y)
    return CIFAR10(**{**{s: getattr(data, s) for s in ("train", "val", "test")}, name: new},
                   mean=data.mean, std=data.std)


@pytest.mark.parametrize("name", ["train", "val", "test"])
def test_nan_in_the_data_is_bad_data_not_divergence(synthetic, name):
    X = getattr(synthetic, name).X.copy()
    X[100, 7] = np.nan
    with pytest.raises(ValueError, match=f"data.{name}.X holds NaN or infinite values: the data"):
        train(replace_split(synthetic, name, X=X), TINY)


def test_bad_labels_in_the_data(synthetic):
    y = synthetic.val.y.copy()
    y[5] = -1
    with pytest.raises(ValueError, match=r"data.val.y must hold labels in 0..9"):
        train(replace_split(synthetic, "val", y=y), TINY)
    y = synthetic.train.y.copy()
    y[0] = (y[0] + 1) % 10                            # Y no longer says the same
    broken = CIFAR10(Split(synthetic.train.X, synthetic.train.Y, y), synthetic.val,
                     synthetic.test, synthetic.mean, synthetic.std)
    with pytest.raises(ValueError, match="data.train.Y is not the one-hot form of data.train.y"):
        train(broken, TINY)


# ---------------------------------------------------------------------------------------------
# The real data


@pytest.mark.slow
@pytest.mark.parametrize("bn", [True, False])
def test_short_real_training_learns(cifar10, bn):
    r = train(cifar10, Config(batch_norm=bn, n_s=300, cycles=1))
    h = r.history
    assert r.steps == 600 and len(h["step"]) == 10
    assert h["loss_train"][-1] < h["loss_train"][0] - 0.2
    assert h["acc_val"][-1] > h["acc_val"][0]
    assert r.val_accuracy > 0.38 and r.test_accuracy > 0.38          # chance is 0.10
    assert np.isfinite([h[k] for k in h]).all()
