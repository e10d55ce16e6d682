"""assignment3.training.inputs: shuffled mini-batches (every sample once an epoch), their
augmentation, the inputs of a run's steps drawn from the seed's random streams, continued
exactly from a position, and prepared one step ahead in a thread, on the synthetic data."""
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

import numpy as np

from assignment3.config import Config
from assignment3.nn.augment import augment_rows
from assignment3.nn.network import init_params
from assignment3.training.inputs import STREAMS, inputs, minibatches, prefetched, step_inputs


def test_prefetched_yields_the_same_items_in_order():
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert list(prefetched(iter([0, None, 2]), pool)) == [0, None, 2]
        assert list(prefetched(iter([]), pool)) == []
        made_in = []

        def items():
            for i in range(3):
                made_in.append(threading.current_thread().name)
                yield i

        assert list(prefetched(items(), pool)) == [0, 1, 2]
        assert all(name != "MainThread" for name in made_in)


def test_every_sample_once_an_epoch_then_reshuffled(synthetic):
    split = synthetic.train                                 # 300 samples: 4 batches of 70
    batches = list(islice(minibatches(split, 70, np.random.default_rng(0)), 8))
    columns = {tuple(split.X[:5, i]): i for i in range(split.n)}
    epochs = []
    for start in (0, 4):
        seen = []
        for j, (Xb, Yb, (_, done)) in enumerate(batches[start:start + 4]):
            assert Xb.shape == (3072, 70) and Yb.shape == (10, 70) and done == j + 1
            idx = [columns[tuple(x)] for x in Xb[:5].T]
            assert np.array_equal(Xb, split.X[:, idx]) and np.array_equal(Yb, split.Y[:, idx])
            seen += idx
        assert len(set(seen)) == 280                        # a last partial batch is dropped
        epochs.append(seen)
    assert epochs[0] != epochs[1]                           # reshuffled every epoch
    assert batches[0][2][0] != batches[4][2][0]             # the epoch's state before its shuffle


def test_minibatches_continue_from_a_position(synthetic):
    full = list(islice(minibatches(synthetic.train, 100, np.random.default_rng(3)), 7))
    for k in (1, 3, 5):                                     # mid-epoch and at an epoch's end
        again = list(islice(minibatches(synthetic.train, 100, np.random.default_rng(99),
                                        start=full[k - 1][2]), 7 - k))
        assert all(np.array_equal(a[0], b[0]) and a[2][1] == b[2][1]
                   for a, b in zip(full[k:], again))


def test_minibatches_of_any_layout_are_the_same(synthetic):
    from assignment3.data import Split
    split = synthetic.train
    other = Split(np.ascontiguousarray(split.X), split.Y, split.y)   # X, not X.T, C-contiguous
    assert not other.X.T.flags.c_contiguous
    a = next(minibatches(split, 50, np.random.default_rng(0)))
    b = next(minibatches(other, 50, np.random.default_rng(0)))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_augmented_minibatches_transform_the_same_images(synthetic):
    plain = minibatches(synthetic.train, 50, np.random.default_rng(0))
    augmented = minibatches(synthetic.train, 50, np.random.default_rng(0),
                            lambda rows: augment_rows(rows, np.random.default_rng(1)))
    Xp, Yp, _ = next(plain)
    Xa, Ya, _ = next(augmented)
    assert np.array_equal(Yp, Ya) and not np.array_equal(Xp, Xa)
    assert np.array_equal(Xa, augment_rows(np.ascontiguousarray(Xp.T), np.random.default_rng(1)).T)


CONFIGS = {
    "plain": Config(hidden=(20,), n_batch=50, seed=1),
    "everything": Config(hidden=(20, 10), n_batch=50, seed=1, flip=True, max_shift=2,
                         dropout=0.3, label_smoothing=0.1, mixup=0.4),
}


def same(a, b):
    """Two lists of step inputs are equal, array for array."""
    def equal(x, y):
        if x is None or y is None:
            return x is y
        if isinstance(x, list):
            return len(x) == len(y) and all(equal(p, q) for p, q in zip(x, y))
        return np.array_equal(x, y)
    return len(a) == len(b) and all(
        equal(x[0], y[0]) and equal(x[1], y[1]) and equal(x[2], y[2]) and x[3] == y[3]
        for x, y in zip(a, b))


def test_inputs_continue_exactly_from_a_position(synthetic):
    """Plain, and with every random option of the config (each drawing from its stream)."""
    for name, config in CONFIGS.items():
        params = init_params([3072, *config.hidden, 10], batch_norm=True, seed=0)
        run = list(inputs(synthetic.train, params, config, 14))   # 6 batches an epoch
        assert len(run) == 14, name
        assert same(run, list(inputs(synthetic.train, params, config, 14))), name  # the seed
        for k in (1, 6, 9):
            position = json.loads(json.dumps(run[k - 1][3]))        # JSON-ready, as stored
            assert same(run[k:], list(inputs(synthetic.train, params, config, 14 - k,
                                             position))), (name, k)
        other = list(inputs(synthetic.train, params, config.with_(seed=2), 2))
        assert not np.array_equal(other[0][0], run[0][0]), name
        assert set(run[0][3]["streams"]) == set(STREAMS), name


def test_inputs_apply_the_options_of_the_config(synthetic):
    params = init_params([3072, 20, 10, 10], batch_norm=True, seed=0)
    plain = next(inputs(synthetic.train, params, CONFIGS["plain"], 1))
    Xb, Yb, masks, _ = plain
    assert masks is None and set(np.unique(Yb)) == {0.0, 1.0}
    assert Xb.dtype == synthetic.train.X.dtype
    smooth = next(inputs(synthetic.train, params, CONFIGS["plain"].with_(label_smoothing=0.2), 1))
    assert np.array_equal(smooth[0], Xb) and np.allclose(smooth[1], 0.8 * Yb + 0.02)
    mixed = next(inputs(synthetic.train, params, CONFIGS["plain"].with_(mixup=0.4), 1))
    assert not np.array_equal(mixed[0], Xb) and np.allclose(mixed[1].sum(axis=0), 1)
    dropped = next(inputs(synthetic.train, params, CONFIGS["plain"].with_(dropout=0.5), 1))
    assert [M.shape for M in dropped[2]] == [(20, 50), (10, 50)]
    assert np.array_equal(dropped[0], Xb)                    # dropout draws from its own stream
    flipped = next(inputs(synthetic.train, params, CONFIGS["plain"].with_(flip=True), 1))
    assert np.array_equal(flipped[1], Yb) and not np.array_equal(flipped[0], Xb)


def test_step_inputs_are_prepared_in_a_thread_when_a_core_is_free(synthetic):
    """In a thread when the cores outnumber the BLAS threads; else here. The same inputs."""
    params = init_params([3072, 20, 10, 10], batch_norm=True, seed=0)
    for blas_threads, cores, in_thread in [(1, 2, True), (2, 2, False)]:
        config = CONFIGS["everything"].with_(blas_threads=blas_threads)
        with ThreadPoolExecutor(max_workers=1) as pool:
            items = step_inputs(synthetic.train, params, config, 8, pool, cores)
            assert (type(items).__name__ == "generator"
                    and items.__name__ == "prefetched") == in_thread, (blas_threads, cores)
            assert same(list(items), list(inputs(synthetic.train, params, config, 8)))
