"""assignment3.nn.checks: the predicates the package shares, and the checks of inputs as the public
functions of the network and the cost (forward, compute_gradients, compute_cost, evaluate,
test_scores) and `check_data` report them: each bad input is refused with a message saying
what is wrong."""
import numpy as np
import pytest

from assignment3.data import CIFAR10, Split, one_hot
from assignment3.nn import cost
from assignment3.nn.checks import check_data, check_one_hot, checked_float_dtype, is_int, is_real
from assignment3.nn.cost import compute_cost, evaluate
from assignment3.nn.network import check_input, compute_gradients, forward, init_params

DIMS = [20, 30, 10]


@pytest.fixture
def net():
    rng = np.random.default_rng(0)
    params = init_params(DIMS, batch_norm=True, seed=0)
    X = rng.standard_normal((20, 6))
    y = rng.integers(0, 10, 6)
    _, _, stats = forward(params, X)
    return params, X, one_hot(y), y, stats


# ---------------------------------------------------------------------------------------------
# The predicates


@pytest.mark.parametrize("value, integer, real", [
    (3, True, True), (np.int64(3), True, True), (np.uint8(3), True, True),
    (2.5, False, True), (np.float32(2.5), False, True), (float("nan"), False, True),
    (True, False, False), (np.bool_(True), False, False), ("3", False, False),
    (None, False, False), (1j, False, False), (np.array(3), False, False),
])
def test_is_int_and_is_real(value, integer, real):
    assert is_int(value) is integer and is_real(value) is real


@pytest.mark.parametrize("dtype", [np.float32, np.float64, "float32", "float64", np.dtype("f4")])
def test_checked_float_dtype_accepts_the_two_float_types(dtype):
    assert checked_float_dtype(dtype) == np.dtype(dtype)
    assert isinstance(checked_float_dtype(dtype), np.dtype)


@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.uint8, "nonsense", complex])
def test_checked_float_dtype_refuses_others(dtype):
    with pytest.raises(ValueError, match="dtype must be float32 or float64, got"):
        checked_float_dtype(dtype)


@pytest.mark.parametrize("Y, message", [
    (np.full((3, 4), 1 / 3), "Y must be one-hot: every column one 1"),
    (np.eye(3)[:, [0, 1, 2, 2]] * 2, "Y must be one-hot"),
    (np.eye(3)[:, [0, 1]], r"Y must be one-hot K x n = \(3, 4\)"),
    ([[1, 0, 0, 1]] * 3, "Y must be one-hot K x n .*got shape list"),
])
def test_check_one_hot(Y, message):
    check_one_hot(np.eye(3)[:, [0, 1, 2, 2]], 3, 4)
    with pytest.raises(ValueError, match=message):
        check_one_hot(Y, 3, 4)


# ---------------------------------------------------------------------------------------------
# The public functions of the network and the cost


def with_nan(X):
    X = X.copy()
    X[3, 2] = np.nan
    return X


#: (what is changed, how, the exception and part of its message): each is refused by
#: `check_input`, which every public function of the network and the cost calls.
BAD_INPUTS = [
    ("X", lambda X: X[:, :0], ValueError, "n >= 1"),                       # an empty batch
    ("X", lambda X: X[:5], ValueError, "X must be d x n with d = 20"),
    ("X", lambda X: X[:19], ValueError, "X must be d x n with d = 20"),
    ("X", lambda X: X[:, 0], ValueError, r"X must be d x n with d = 20 .*shape \(20,\)"),
    ("X", lambda X: X.T[..., None], ValueError, "X must be d x n with d = 20"),
    ("X", lambda X: X.astype(np.int64), TypeError, "X must be a numpy array of floats"),
    ("X", lambda X: X.astype(np.complex128), TypeError, "floats"),
    ("X", lambda X: X.tolist(), TypeError, "numpy array"),
    ("X", with_nan, ValueError, "X holds NaN or infinite values"),
    ("X", lambda X: X * np.inf, ValueError, "NaN or infinite"),
    ("params", lambda p: {**p, "W": p["W"][:1]}, ValueError, "gamma and beta"),
    ("params", lambda p: {k: v for k, v in p.items() if k != "beta"}, TypeError,
     "params must be a dict of the lists W, b, gamma, beta"),
    ("params", lambda p: {**p, "W": tuple(p["W"])}, TypeError, "dict of the lists"),
    ("params", lambda p: {**p, "W": [p["W"][0].T, p["W"][1]]}, ValueError,
     "the parameters of layer 0 do not fit"),
    ("params", lambda p: {**p, "gamma": [g[:-1] for g in p["gamma"]]}, ValueError,
     "layer 0 do not fit"),
    ("params", lambda p: {**p, "b": [b.astype(int) for b in p["b"]]}, TypeError,
     r"params\['b'\]\[0\] must be a numpy array of floats"),
]


@pytest.mark.parametrize("which, change, error, message", BAD_INPUTS)
def test_check_input_refuses_bad_inputs(net, which, change, error, message):
    params, X, Y, _, _ = net
    if which == "X":
        X = change(X)
    else:
        params = change(params)
    with pytest.raises(error, match=message):
        check_input(params, X, Y)


def test_every_public_function_checks_its_inputs(net):
    """Each reaches `check_input`: a bad X and bad params are refused by all of them."""
    params, X, Y, y, stats = net
    calls = [lambda p, X: forward(p, X),
             lambda p, X: compute_gradients(p, X, Y, 0.01),
             lambda p, X: compute_cost(p, X, Y, 0.01),
             lambda p, X: evaluate(p, X, y, 0.01, stats),
             lambda p, X: cost.test_scores(p, X, stats)]
    for call in calls:
        with pytest.raises(ValueError, match="X holds NaN or infinite values"):
            call(params, with_nan(X))
        with pytest.raises(TypeError, match="params must be a dict of the lists"):
            call({k: v for k, v in params.items() if k != "beta"}, X)


@pytest.mark.parametrize("labels, error, message", [
    (lambda y: np.where(np.arange(6) == 2, -1, y), ValueError,
     r"labels in 0\.\.9, got labels in -1"),
    (lambda y: np.where(np.arange(6) == 2, 10, y), ValueError, r"got labels in \d\.\.10"),
    (lambda y: y.astype(np.float64), TypeError, "integer labels"),
    (lambda y: y.astype(bool), TypeError, "integer labels"),
    (lambda y: y[:4], ValueError, "y must hold n = 6 labels"),
    (lambda y: y[:-1], ValueError, "n = 6 labels"),
])
def test_evaluate_refuses_bad_labels(net, labels, error, message):
    params, X, _, y, stats = net
    with pytest.raises(error, match=message):
        evaluate(params, X, labels(y), 0.0, stats)


@pytest.mark.parametrize("Y, message", [
    (lambda Y: Y * 2, "one-hot or soft targets"),
    (lambda Y: np.full_like(Y, 0.2), "sum to 1"),             # a uniform 0.1 is a soft target
    (lambda Y: 1.5 * Y - 0.05, "entries in \\[0, 1\\]"),
    (lambda Y: Y[:, :3], "Y must be one-hot K x n"),
    (lambda Y: np.zeros((10, 7)), r"Y must be one-hot K x n = \(10, 6\)"),
    (lambda Y: Y.astype(int), "Y must be a numpy array of floats"),
])
def test_gradients_and_cost_refuse_targets_that_are_not_distributions(net, Y, message):
    params, X, Y0, _, _ = net
    for call in (compute_gradients, compute_cost):
        with pytest.raises((ValueError, TypeError), match=message):
            call(params, X, Y(Y0), 0.0)


def test_gradients_and_cost_take_soft_targets(net):
    params, X, Y, _, _ = net
    soft = np.full_like(Y, 0.1)
    assert np.isfinite(compute_cost(params, X, soft, 0.0))
    assert compute_gradients(params, X, soft, 0.0)["W"][0].shape == (30, 20)


@pytest.mark.parametrize("lam, error, message", [
    (-0.1, ValueError, "lam must be a finite number >= 0, got -0.1"),
    (np.nan, ValueError, "lam must be a finite number >= 0"),
    (np.inf, ValueError, "lam must be a finite number >= 0"),
    ("0.1", TypeError, "lam must be a number >= 0, got '0.1'"),
    (True, TypeError, "lam must be a number"),
    (1j, TypeError, "lam must be a number"),
])
def test_lam_must_be_a_finite_number(net, lam, error, message):
    params, X, Y, y, stats = net
    for call in (lambda: compute_cost(params, X, Y, lam),
                 lambda: compute_gradients(params, X, Y, lam),
                 lambda: evaluate(params, X, y, lam, stats)):
        with pytest.raises(error, match=message):
            call()


def test_statistics_must_fit_the_bn_layers(net):
    params, X, Y, y, stats = net
    for bad in (stats[:0], [(mu.T, v) for mu, v in stats], [stats[0][0]], "stats"):
        for call, args in ((evaluate, (params, X, y, 0.0, bad)),
                           (cost.test_scores, (params, X, bad)),
                           (compute_cost, (params, X, Y, 0.0, bad)),
                           (forward, (params, X, bad))):
            with pytest.raises(ValueError, match="one \\(mu, v\\) pair per BN layer"):
                call(*args)


# ---------------------------------------------------------------------------------------------
# check_data: what train refuses before any step (train's own refusals: test_training.py)


def tiny_data(dtype=np.float32, n=(12, 6, 6), d=20, K=10, seed=0):
    rng = np.random.default_rng(seed)

    def split(n):
        y = rng.integers(0, K, n)
        return Split(rng.standard_normal((n, d)).astype(dtype).T, one_hot(y, K, dtype), y)

    return CIFAR10(*(split(m) for m in n), mean=np.zeros((d, 1)), std=np.ones((d, 1)))


def replaced(data, name, **fields):
    split = getattr(data, name)
    new = Split(**{**{"X": split.X, "Y": split.Y, "y": split.y}, **fields})
    return CIFAR10(**{**{s: getattr(data, s) for s in ("train", "val", "test")}, name: new},
                   mean=data.mean, std=data.std)


def test_check_data_accepts_good_data_of_its_dtype():
    check_data(tiny_data(), "float32")
    check_data(tiny_data(np.float64), np.float64)


@pytest.mark.parametrize("name", ["train", "val", "test"])
def test_check_data_refuses_bad_splits(name):
    data = tiny_data()
    split = getattr(data, name)
    X = split.X.copy()
    X[3, 1] = np.inf
    cases = [
        (dict(X=X), ValueError, f"data.{name}.X holds NaN or infinite values: the data is bad"),
        (dict(X=split.X.astype(np.float64)), ValueError,
         f"data.{name}.X is float64 but the config's dtype is float32: load the data with "
         r"load_cifar10\(dtype=np.float32\)"),
        (dict(X=split.X[:19]), ValueError,                   # d is the training split's
         "data.val.X must be d x n with d = 19" if name == "train"
         else f"data.{name}.X must be d x n with d = 20"),
        (dict(y=list(split.y)), TypeError, f"data.{name}.y must be a numpy array, got list"),
        (dict(X=split.X.tolist()), TypeError, f"data.{name}.X must be a numpy array, got list"),
        (dict(y=split.y[:-1]), ValueError, f"data.{name}.y must hold n = {split.n} labels"),
        (dict(y=split.y.astype(float)), TypeError, f"data.{name}.y must hold integer labels"),
        (dict(y=np.where(np.arange(split.n) == 0, 10, split.y)), ValueError,
         rf"data.{name}.y must hold labels in 0..9, got labels in \d\.\.10"),
        (dict(Y=split.Y[:, :-1]), ValueError, f"data.{name}.Y must be one-hot K x n"),
        (dict(Y=split.Y * 0.5), ValueError, f"data.{name}.Y must be one-hot: every column"),
        (dict(y=(split.y + 1) % 10), ValueError,
         f"data.{name}.Y is not the one-hot form of data.{name}.y"),
    ]
    for fields, error, message in cases:
        with pytest.raises(error, match=message):
            check_data(replaced(data, name, **fields), "float32")


def test_check_data_refuses_what_is_not_a_data_set():
    with pytest.raises(TypeError, match="data must have train, val and test splits with X, Y and "
                                        "y, as the CIFAR10 of load_cifar10"):
        check_data({"train": None}, "float32")
    data = tiny_data()
    with pytest.raises(TypeError, match="data must have train, val and test splits"):
        check_data(CIFAR10(data.train, data.val, None, data.mean, data.std), "float32")
