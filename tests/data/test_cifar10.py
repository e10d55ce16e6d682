"""assignment3.data.cifar10: batch files read safely and checked (on batch files built in the test),
the refusals of load_cifar10, one-hot labels, `Source`, ZCA whitening of a data set; and the real
CIFAR-10 loaded into normalised splits (slow: its content, order, hashes, dtypes, n_val)."""
import hashlib
import os
import pickle
from dataclasses import replace

import numpy as np
import pytest

from assignment3.data import (
    CIFAR10,
    LABEL_NAMES,
    D,
    DataError,
    K,
    Source,
    load_batch,
    load_cifar10,
    one_hot,
    zca_whiten,
)
from assignment3.data.files import TEST_FILE, TRAIN_FILES
from assignment3.nn.augment import fit_zca
from tests.conftest import make_synthetic

ALL_FILES = (*TRAIN_FILES, TEST_FILE)

GOOD_DATA = np.zeros((10000, 3072), np.uint8)
GOOD_LABELS = [i % 10 for i in range(10000)]


def batch_bytes(data=GOOD_DATA, labels=GOOD_LABELS, protocol=2):
    """A batch file's content: the pickled dict of the official files."""
    return pickle.dumps({b"data": data, b"labels": labels}, protocol)


# ---------------------------------------------------------------------------------------------
# Labels, names, sizes


def test_one_hot():
    Y = one_hot(np.array([2, 0, 1]), K=3)
    np.testing.assert_array_equal(Y, [[0, 1, 0], [0, 0, 1], [1, 0, 0]])
    assert Y.dtype == np.float64 and Y.T.flags.c_contiguous
    assert one_hot([1, 9], dtype=np.float32).shape == (10, 2)
    assert one_hot([1], dtype=np.float32).dtype == np.float32
    assert one_hot(np.array([], np.int64)).shape == (10, 0)
    for y in (np.array([0, 3]), np.array([-1, 0]), np.array([0.0, 1.0]), np.array([[0, 1]])):
        with pytest.raises(ValueError, match=r"labels must be a 1-D array of integers in 0\.\.2"):
            one_hot(y, K=3)


def test_sizes_and_names():
    assert (D, K) == (3072, 10) and len(LABEL_NAMES) == K and LABEL_NAMES[0] == "airplane"


# ---------------------------------------------------------------------------------------------
# Batch files


def test_missing_batch_file(tmp_path):
    with pytest.raises(DataError, match="data_batch_1 not found"):
        load_batch(tmp_path / "data_batch_1")


def test_valid_fake_batch_of_any_pickle_protocol(tmp_path):
    path = tmp_path / "data_batch_1"
    data = (np.arange(10000 * 3072) % 251).astype(np.uint8).reshape(10000, 3072)
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        path.write_bytes(batch_bytes(data, protocol=protocol))
        batch_data, labels = load_batch(str(path))
        assert batch_data.shape == (10000, 3072) and batch_data.dtype == np.uint8
        assert np.array_equal(batch_data, data)
        assert labels.dtype == np.int64 and list(labels[:12]) == GOOD_LABELS[:12]


def check_truncated(content, tmp_path):
    """load_batch of `content` cut anywhere (the pickle fails in a different way at each cut):
    DataError saying so."""
    path = tmp_path / "data_batch_1"
    for keep in (0, 100, 20_000, 1_000_000, -1):
        path.write_bytes(content[:keep])
        with pytest.raises(DataError, match="truncated or corrupt.*Replace it with an intact "
                                            "copy"):
            load_batch(path)


def test_truncated_batch(tmp_path):
    check_truncated(batch_bytes(), tmp_path)


@pytest.mark.slow
def test_truncated_real_batch(tmp_path, cifar10_dir):
    check_truncated((cifar10_dir / "data_batch_1").read_bytes(), tmp_path)


def bad(data=GOOD_DATA, labels=GOOD_LABELS):
    return {b"data": data, b"labels": labels}


@pytest.mark.parametrize("contents, message", [
    ([[GOOD_DATA, GOOD_LABELS]], "is not a dict with the keys b'data' and b'labels'"),
    ([{b"labels": GOOD_LABELS}, {"data": GOOD_DATA, "labels": GOOD_LABELS}],
     "is not a dict with the keys b'data' and b'labels'"),
    ([bad(data=[[0] * 3072])], "has data of type list, expected a numpy array"),
    ([bad(data=GOOD_DATA[:10]), bad(data=GOOD_DATA.view(np.int8))],
     r"has data (uint8 \(10, 3072\)|int8 \(10000, 3072\)), expected uint8 \(10000, 3072\)"),
    ([bad(labels=GOOD_LABELS[:9999]), bad(labels=[str(i) for i in GOOD_LABELS])],
     r"has labels (int64 \(9999,\)|<U1 \(10000,\)), expected 10000 integers"),
    ([bad(labels=[10] + GOOD_LABELS[1:]), bad(labels=[-1] + GOOD_LABELS[1:])],
     r"has labels in (0\.\.10|-1\.\.9), expected 0\.\.9"),
], ids=["not a dict", "keys", "data not an array", "data's dtype or shape",
        "labels' length or type", "labels' range"])
def test_wrong_content(tmp_path, contents, message):
    """Each check of a batch's content, each of its conditions (str keys: a batch pickled by
    Python 3 without bytes; data of another shape or dtype; labels of another length or type,
    above or below the classes)."""
    path = tmp_path / "data_batch_1"
    for content in contents:
        path.write_bytes(pickle.dumps(content, protocol=2))
        with pytest.raises(DataError, match=f"^CIFAR-10 batch {path} {message}. Replace it"):
            load_batch(path)


class RunsCode:
    """Unpickling this would create a folder, if the unpickler allowed arbitrary globals."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


def test_pickle_cannot_run_code(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": RunsCode(tmp_path / "pwned"), b"labels": []}, 2))
    with pytest.raises(DataError, match="refusing to load posix.mkdir"):
        load_batch(path)
    assert not (tmp_path / "pwned").exists()


# ---------------------------------------------------------------------------------------------
# load_cifar10's refusals (no real data needed)


def fake_folder(folder, skip=()):
    """A folder with the batch names: data_batch_1 a valid batch, the others empty files."""
    folder.mkdir()
    for name in ALL_FILES:
        if name not in skip:
            (folder / name).write_bytes(batch_bytes() if name == "data_batch_1" else b"")
    return folder


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="nope does not exist.*CIFAR10_DIR"):
        load_cifar10(tmp_path / "nope", progress=False)


def test_truncated_batch_via_load_cifar10(tmp_path):
    """The damaged file is named, though the ones before it are intact."""
    folder = fake_folder(tmp_path / "cifar")
    (folder / "data_batch_2").write_bytes(batch_bytes()[:1_000_000])
    with pytest.raises(DataError, match="data_batch_2 cannot be read, it is truncated or corrupt"):
        load_cifar10(folder, progress=False)


def test_arguments_are_checked_before_the_data_is_looked_for(tmp_path):
    """n_val: an integer (no bool, no float) with 0 < n_val < 50000; dtype: float32 or float64
    (nn.checks.checked_float_dtype, tested there)."""
    for n_val in (0, 50000, 2.5, True):
        with pytest.raises(ValueError, match=r"^n_val \(training images kept for validation\) "
                                             f"must be an integer with 0 < n_val < 50000, got "
                                             f"{n_val!r}$"):
            load_cifar10(tmp_path / "nope", n_val=n_val)
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        load_cifar10(tmp_path / "nope", dtype=np.float16)


def test_source_keeps_load_cifar10s_arguments_for_another_process(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    source = Source("~/cifar", n_val=1000, dtype=np.float64)
    assert source == Source(str(tmp_path / "cifar"), 1000, "float64")
    assert source.path == str(tmp_path / "cifar") and source.dtype == "float64"
    assert Source().path is None and Source().dtype == "float32"
    with pytest.raises(DataError, match=f"{tmp_path / 'cifar'} does not exist"):
        source.load()                                 # its path, not this process's data
    with pytest.raises(ValueError, match="n_val .* got 0"):
        Source(str(tmp_path), n_val=0).load()


# ---------------------------------------------------------------------------------------------
# ZCA whitening of a data set


def test_zca_whiten_fits_on_the_training_split_only(tmp_path):
    data = replace(make_synthetic(n_train=400, n_val=50, n_test=60, d=24, seed=3),
                   source=Source(str(tmp_path)))           # as if loaded by load_cifar10
    white = zca_whiten(data, eps_scale=1e-6)
    W = fit_zca(data.train.X, eps_scale=1e-6)
    for name in ("train", "val", "test"):
        before, after = getattr(data, name), getattr(white, name)
        assert after.X.dtype == before.X.dtype and after.X.T.flags.c_contiguous
        assert np.allclose(after.X, W @ before.X, atol=1e-4)
        assert after.Y is before.Y and after.y is before.y
    Z = white.train.X.astype(np.float64)                  # second moments about 0, as the data
    assert np.allclose(Z @ Z.T / 400, np.eye(24), atol=1e-3)   # is centred by load_cifar10
    assert white.mean is data.mean and white.std is data.std
    assert not np.allclose(white.val.X, fit_zca(data.val.X, eps_scale=1e-6) @ data.val.X, atol=1e-3)
    assert isinstance(white, CIFAR10) and data.train.X is not white.train.X
    # a transformed copy: loading its source again would not give it (a Dask worker would train
    # on unwhitened data)
    assert white.source is None and data.source is not None


# ---------------------------------------------------------------------------------------------
# The real data (slow)


@pytest.fixture(scope="module")
def cifar(cifar10_dir):
    return load_cifar10(cifar10_dir, progress=False)


def row_blocks(A, rows=1000):
    """Consecutive blocks of rows of A (n x d): checks on them need little memory."""
    return (A[i:i + rows] for i in range(0, len(A), rows))


@pytest.mark.slow
def test_shapes_dtypes_and_layout(cifar, cifar10_dir):
    for split, n in ((cifar.train, 45000), (cifar.val, 5000), (cifar.test, 10000)):
        assert split.n == n
        assert split.X.shape == (3072, n) and split.X.dtype == np.float32
        assert split.X.T.flags.c_contiguous
        assert split.Y.shape == (10, n) and split.Y.dtype == np.float32
        assert split.y.shape == (n,) and split.y.dtype == np.int64
        assert split.y.min() >= 0 and split.y.max() <= 9
        assert set(np.unique(split.Y)) == {0.0, 1.0}
        np.testing.assert_array_equal(split.Y.sum(axis=0), 1)
        np.testing.assert_array_equal(split.Y.argmax(axis=0), split.y)
    for stat in (cifar.mean, cifar.std):
        assert stat.shape == (3072, 1) and stat.dtype == np.float64
    assert cifar.source == Source(str(cifar10_dir), 5000, "float32")


@pytest.mark.slow
def test_training_split_is_normalised(cifar):
    A = cifar.train.X.T  # n x d
    mean = sum(block.sum(axis=0, dtype=np.float64) for block in row_blocks(A)) / len(A)
    var = sum(((block - mean) ** 2).sum(axis=0) for block in row_blocks(A)) / len(A)
    np.testing.assert_allclose(mean, 0, atol=1e-5)
    np.testing.assert_allclose(np.sqrt(var), 1, atol=1e-5)
    # Mean pixel values per channel over the 45,000 training images (the README's well-known
    # figures are over all 50,000: 125.307, 122.950, 113.865).
    channel_means = cifar.mean.reshape(3, 1024).mean(axis=1)
    np.testing.assert_allclose(channel_means, [125.307, 122.950, 113.865], atol=0.1)


@pytest.mark.slow
def test_class_counts(cifar):
    np.testing.assert_array_equal(np.bincount(cifar.test.y, minlength=10), 1000)
    all_train = np.concatenate([cifar.train.y, cifar.val.y])
    np.testing.assert_array_equal(np.bincount(all_train, minlength=10), 5000)


def pixels(split, column, cifar):
    """Raw uint8 values of one image, recovered from its normalised column."""
    return np.rint(split.X[:, column] * cifar.std[:, 0] + cifar.mean[:, 0]).astype(int)


@pytest.mark.slow
def test_official_order(cifar, cifar10_dir):
    _, batch_1_labels = load_batch(cifar10_dir / "data_batch_1")
    _, batch_5_labels = load_batch(cifar10_dir / "data_batch_5")
    assert list(batch_1_labels[:10]) == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert list(cifar.train.y[:10]) == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert list(cifar.test.y[:10]) == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    np.testing.assert_array_equal(cifar.val.y, batch_5_labels[5000:])  # the last 5,000
    # Image rows are 1024 red, 1024 green, 1024 blue values: first and last values of the row.
    for column, first, last in ((0, [59, 43, 50, 68, 98, 119, 139, 145, 149, 149], [140, 84, 72]),
                                (1, [154, 126, 105], [139, 142, 144]),
                                (9999, [62, 61, 60], [130, 130, 131])):
        image = pixels(cifar.train, column, cifar)
        assert list(image[:len(first)]) == first and list(image[-3:]) == last
    assert list(pixels(cifar.test, 1, cifar)[:3]) == [235, 231, 232]


@pytest.mark.slow
def test_raw_content_hashes(cifar10_dir):
    """sha256 of the raw uint8 bytes, as published in the data README."""
    data_hash, labels_hash = hashlib.sha256(), hashlib.sha256()
    for name in TRAIN_FILES:
        batch_data, batch_labels = load_batch(cifar10_dir / name)
        data_hash.update(batch_data.tobytes())
        labels_hash.update(batch_labels.astype(np.uint8).tobytes())
    test_data, _ = load_batch(cifar10_dir / TEST_FILE)
    assert data_hash.hexdigest() == (
        "9d5c2eddadb0deff02c14c350c0385aab7b1d5ff1edfeb4997c8dc8644960111")
    assert labels_hash.hexdigest() == (
        "2b7cd2f24487317614016b72ffd53071c3062f592f0eb300c18a770d41ae1253")
    assert hashlib.sha256(test_data.tobytes()).hexdigest() == (
        "177777c33ba79825320efa646ad04a94bdc3c80e4ebe3bd21724f8cdfd4b9d56")


def max_abs_difference(a, b):
    """max |a - b| of two n x d arrays."""
    return max(np.abs(x - y).max() for x, y in zip(row_blocks(a), row_blocks(b)))


@pytest.mark.slow
def test_float64_agrees_with_float32(cifar, cifar10_dir):
    cifar64 = load_cifar10(cifar10_dir, dtype=np.float64, progress=False)
    np.testing.assert_array_equal(cifar64.mean, cifar.mean)
    np.testing.assert_array_equal(cifar64.std, cifar.std)
    for name in ("train", "val", "test"):
        split32, split64 = getattr(cifar, name), getattr(cifar64, name)
        assert split64.X.dtype == split64.Y.dtype == np.float64
        assert split64.X.T.flags.c_contiguous
        assert max_abs_difference(split64.X.T, split32.X.T) < 1e-6
        np.testing.assert_array_equal(split64.y, split32.y)
    assert cifar64.source.dtype == "float64"


@pytest.mark.slow
def test_n_val_across_batch_boundaries(cifar10_dir):
    n_val = 12345  # the validation split starts inside data_batch_4
    other = load_cifar10(cifar10_dir, n_val=n_val, progress=False)
    labels = np.concatenate([load_batch(cifar10_dir / name)[1] for name in TRAIN_FILES])
    assert (other.train.n, other.val.n, other.test.n) == (50000 - n_val, n_val, 10000)
    np.testing.assert_array_equal(other.train.y, labels[:-n_val])
    np.testing.assert_array_equal(other.val.y, labels[-n_val:])
    raw, _ = load_batch(cifar10_dir / "data_batch_4")
    first_val = 50000 - n_val - 30000  # its row in data_batch_4
    np.testing.assert_array_equal(pixels(other.val, 0, other), raw[first_val])
    np.testing.assert_array_equal(pixels(other.train, -1, other), raw[first_val - 1])
    assert other.source.n_val == n_val


@pytest.mark.slow
def test_constant_pixel_is_bad_data(cifar10_dir):
    """One training image: every pixel has std 0 and cannot be normalised."""
    with pytest.raises(DataError, match="3072 of the 3072 pixel values .* std is 0"):
        load_cifar10(cifar10_dir, n_val=49_999, progress=False)

