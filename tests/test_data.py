"""Tests of assignment3.data: real CIFAR-10 loading, bad inputs, and downloads over real HTTP."""

import functools
import hashlib
import http.server
import io
import os
import pickle
import re
import socket
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from assignment3 import data
from assignment3.data import DataError, download_cifar10, find_data_dir, load_batch, load_cifar10

ALL_FILES = (*data.TRAIN_FILES, data.TEST_FILE)


# ---------------------------------------------------------------------------------------------
# Real data


@pytest.fixture(scope="module")
def cifar(cifar10_dir):
    return load_cifar10(cifar10_dir, progress=False)


def row_blocks(A, rows=1000):
    """Consecutive blocks of rows of A (n x d): checks on them need little memory."""
    return (A[i:i + rows] for i in range(0, len(A), rows))


def test_shapes_dtypes_and_layout(cifar):
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


def test_class_counts(cifar):
    np.testing.assert_array_equal(np.bincount(cifar.test.y, minlength=10), 1000)
    all_train = np.concatenate([cifar.train.y, cifar.val.y])
    np.testing.assert_array_equal(np.bincount(all_train, minlength=10), 5000)


def pixels(split, column, cifar):
    """Raw uint8 values of one image, recovered from its normalised column."""
    return np.rint(split.X[:, column] * cifar.std[:, 0] + cifar.mean[:, 0]).astype(int)


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


def test_raw_content_hashes(cifar10_dir):
    """sha256 of the raw uint8 bytes, as published in the data README."""
    data_hash, labels_hash = hashlib.sha256(), hashlib.sha256()
    for name in data.TRAIN_FILES:
        batch_data, batch_labels = load_batch(cifar10_dir / name)
        data_hash.update(batch_data.tobytes())
        labels_hash.update(batch_labels.astype(np.uint8).tobytes())
    test_data, _ = load_batch(cifar10_dir / data.TEST_FILE)
    assert data_hash.hexdigest() == (
        "9d5c2eddadb0deff02c14c350c0385aab7b1d5ff1edfeb4997c8dc8644960111")
    assert labels_hash.hexdigest() == (
        "2b7cd2f24487317614016b72ffd53071c3062f592f0eb300c18a770d41ae1253")
    assert hashlib.sha256(test_data.tobytes()).hexdigest() == (
        "177777c33ba79825320efa646ad04a94bdc3c80e4ebe3bd21724f8cdfd4b9d56")


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


def max_abs_difference(a, b):
    """max |a - b| of two n x d arrays."""
    return max(np.abs(x - y).max() for x, y in zip(row_blocks(a), row_blocks(b)))


def test_n_val_across_batch_boundaries(cifar10_dir):
    n_val = 12345  # the validation split starts inside data_batch_4
    other = load_cifar10(cifar10_dir, n_val=n_val, progress=False)
    labels = np.concatenate([load_batch(cifar10_dir / name)[1] for name in data.TRAIN_FILES])
    assert (other.train.n, other.val.n, other.test.n) == (50000 - n_val, n_val, 10000)
    np.testing.assert_array_equal(other.train.y, labels[:-n_val])
    np.testing.assert_array_equal(other.val.y, labels[-n_val:])
    raw, _ = load_batch(cifar10_dir / "data_batch_4")
    first_val = 50000 - n_val - 30000  # its row in data_batch_4
    np.testing.assert_array_equal(pixels(other.val, 0, other), raw[first_val])
    np.testing.assert_array_equal(pixels(other.train, -1, other), raw[first_val - 1])


def test_find_data_dir_uses_cifar10_dir(cifar10_dir, monkeypatch):
    monkeypatch.setenv("CIFAR10_DIR", str(cifar10_dir))
    assert find_data_dir(download=False) == cifar10_dir


def test_one_hot():
    Y = data.one_hot(np.array([2, 0, 1]), K=3)
    np.testing.assert_array_equal(Y, [[0, 1, 0], [0, 0, 1], [1, 0, 0]])
    assert Y.dtype == np.float64 and Y.T.flags.c_contiguous
    with pytest.raises(ValueError, match="0..2"):
        data.one_hot(np.array([0, 3]), K=3)


# ---------------------------------------------------------------------------------------------
# Bad inputs


def link_batches(folder: Path, source: Path, skip=()) -> Path:
    """folder with symbolic links to the real batch files of source, except those in skip."""
    folder.mkdir(exist_ok=True)
    for name in ALL_FILES:
        if name not in skip:
            (folder / name).symlink_to(source / name)
    return folder


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="nope does not exist.*CIFAR10_DIR"):
        load_cifar10(tmp_path / "nope", progress=False)


def test_folder_missing_a_batch(tmp_path, cifar10_dir):
    folder = link_batches(tmp_path / "cifar", cifar10_dir, skip=["data_batch_3"])
    with pytest.raises(DataError, match="has no data_batch_3.*CIFAR10_DIR"):
        load_cifar10(folder, progress=False)


def test_parent_folder_gets_a_hint(tmp_path, cifar10_dir):
    link_batches(tmp_path / "cifar-10-batches-py", cifar10_dir)
    with pytest.raises(DataError, match="did you mean .*cifar-10-batches-py"):
        find_data_dir(tmp_path)


def test_truncated_batch_via_load_cifar10(tmp_path, cifar10_dir):
    folder = link_batches(tmp_path / "cifar", cifar10_dir, skip=["data_batch_2"])
    (folder / "data_batch_2").write_bytes((cifar10_dir / "data_batch_2").read_bytes()[:1_000_000])
    with pytest.raises(DataError, match="data_batch_2 cannot be read, it is truncated or corrupt"):
        load_cifar10(folder, progress=False)


@pytest.mark.parametrize("keep", [0, 100, 20_000, 1_000_000, -1])
def test_truncated_batch(tmp_path, cifar10_dir, keep):
    content = (cifar10_dir / "data_batch_1").read_bytes()
    path = tmp_path / "data_batch_1"
    path.write_bytes(content[:keep])
    with pytest.raises(DataError, match="truncated or corrupt.*Replace it with an intact copy"):
        load_batch(path)


def test_missing_batch_file(tmp_path):
    with pytest.raises(DataError, match="data_batch_1 not found"):
        load_batch(tmp_path / "data_batch_1")


GOOD_DATA = np.zeros((10000, 3072), np.uint8)
GOOD_LABELS = [i % 10 for i in range(10000)]


def bad(data=GOOD_DATA, labels=GOOD_LABELS):
    return {b"data": data, b"labels": labels}


@pytest.mark.parametrize("content, message", [
    pytest.param([GOOD_DATA, GOOD_LABELS], "not a dict", id="list"),
    pytest.param({b"labels": GOOD_LABELS}, "keys b'data' and b'labels'", id="no-data"),
    pytest.param({"data": GOOD_DATA, "labels": GOOD_LABELS}, "keys b'data'", id="str-keys"),
    pytest.param(bad(data=[[0] * 3072]), "expected a numpy array", id="data-list"),
    pytest.param(bad(data=GOOD_DATA[:10]), r"uint8 \(10, 3072\), expected uint8", id="rows"),
    pytest.param(bad(data=GOOD_DATA[:10].astype(np.float32)), "float32", id="float"),
    pytest.param(bad(data=GOOD_DATA.reshape(-1, 32, 32, 3)), r"32, 3\), expected", id="4d"),
    pytest.param(bad(labels=GOOD_LABELS[:9999]), "expected 10000 integers", id="9999-labels"),
    pytest.param(bad(labels=[str(i) for i in GOOD_LABELS]), "10000 integers", id="str-labels"),
    pytest.param(bad(labels=[10] + GOOD_LABELS[1:]), r"in 0\.\.10, expected 0\.\.9", id="10"),
    pytest.param(bad(labels=[-1] + GOOD_LABELS[1:]), r"labels in -1\.\.9", id="-1"),
])
def test_wrong_content(tmp_path, content, message):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(content, protocol=2))
    with pytest.raises(DataError, match="data_batch_1 .*" + message):
        load_batch(path)


def test_valid_fake_batch_of_any_pickle_protocol(tmp_path):
    path = tmp_path / "data_batch_1"
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        path.write_bytes(pickle.dumps({b"data": GOOD_DATA, b"labels": GOOD_LABELS}, protocol))
        batch_data, labels = load_batch(path)
        assert batch_data.shape == (10000, 3072) and labels.dtype == np.int64


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


@pytest.mark.parametrize("n_val", [0, -1, 50000, 60000, 2.5, True, "5000", None])
def test_bad_n_val(tmp_path, n_val):
    with pytest.raises(ValueError, match="n_val .* 0 < n_val < 50000"):
        load_cifar10(tmp_path / "nope", n_val=n_val)  # checked before looking for the data


@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.uint8, "nonsense", complex])
def test_bad_dtype(tmp_path, dtype):
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        load_cifar10(tmp_path / "nope", dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Where the data is looked for


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """An empty XDG cache home, with CIFAR10_DIR unset."""
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_default_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data.default_cache_dir() == tmp_path / "assignment3"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for xdg in ("", "relative/path"):
        monkeypatch.setenv("XDG_CACHE_HOME", xdg)
        assert data.default_cache_dir() == tmp_path / "home" / ".cache" / "assignment3"


def test_cifar10_dir_empty_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR10_DIR", str(tmp_path))
    with pytest.raises(DataError, match="CIFAR10_DIR folder .* has no data_batch_1, .*test_batch"):
        find_data_dir()


def test_cache_without_download(cache_home):
    folder = cache_home / "assignment3" / "cifar-10-batches-py"
    with pytest.raises(DataError, match=f"{folder} and download=False.*download=True.*CIFAR10_DIR"):
        find_data_dir(download=False)
    assert not cache_home.exists()


def test_incomplete_cache(cache_home):
    folder = cache_home / "assignment3" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    (folder / "data_batch_1").write_bytes(b"")
    with pytest.raises(DataError, match=f"incomplete .*no data_batch_2.*delete {folder}"):
        find_data_dir()


def test_cache_is_downloaded_when_missing(cache_home, http_server, monkeypatch):
    archive = make_archive(batch_entries())
    url = http_server.serve("/cifar.tar.gz", archive)
    real_download = data.download_cifar10
    monkeypatch.setattr(data, "download_cifar10", functools.partial(
        real_download, url=url, md5=hashlib.md5(archive).hexdigest()))
    folder = cache_home / "assignment3" / "cifar-10-batches-py"
    assert find_data_dir(progress=False) == folder
    assert {p.name for p in folder.iterdir()} == {*ALL_FILES, "batches.meta", "readme.html"}
    assert find_data_dir(download=False) == folder  # found in the cache from now on


# ---------------------------------------------------------------------------------------------
# Downloads over real HTTP (a local server)


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.routes: path -> (body, announced Content-Length); 404 otherwise."""

    def do_GET(self):
        if self.path not in self.server.routes:
            self.send_error(404)
            return
        body, length = self.server.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)  # then HTTP/1.0 closes the connection

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    routes: dict

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def serve(self, path: str, body: bytes, length: int | None = None) -> str:
        """URL of path, which sends body and announces length (default: its true length)."""
        self.routes[path] = (body, len(body) if length is None else length)
        return self.url(path)


@pytest.fixture
def http_server():
    server = Server(("127.0.0.1", 0), Handler)
    server.routes = {}
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def batch_entries() -> dict[str, bytes]:
    """Archive members like the official ones (tiny fake contents); a trailing / marks a folder."""
    entries = {"cifar-10-batches-py/": b""}
    for name in (*ALL_FILES, "batches.meta", "readme.html"):
        entries[f"cifar-10-batches-py/{name}"] = f"fake {name}".encode()
    return entries


def make_archive(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    """A tar.gz of entries (name -> content) plus symbolic links (name -> target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in entries.items():
            info = tarfile.TarInfo(name.rstrip("/"))
            if name.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            else:
                info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


@pytest.fixture
def root(tmp_path):
    """The download folder, inside tmp_path so that escapes from it can be seen."""
    root = tmp_path / "root"
    root.mkdir()
    return root


def test_download_good_archive(http_server, root, capsys):
    archive = make_archive(batch_entries())
    url = http_server.serve("/cifar.tar.gz", archive)
    folder = download_cifar10(root, url=url, md5=hashlib.md5(archive).hexdigest())
    assert folder == root / "cifar-10-batches-py"
    assert sorted(p.name for p in root.iterdir()) == [
        "cifar-10-batches-py", "cifar-10-python.tar.gz"]
    assert (root / "cifar-10-python.tar.gz").read_bytes() == archive
    for name in ALL_FILES:
        assert (folder / name).read_bytes() == f"fake {name}".encode()
    err = capsys.readouterr().err
    assert url in err and "100.0%" in err and "MB" in err


def test_download_refuses_existing_folder(root):
    (root / "cifar-10-batches-py").mkdir()
    with pytest.raises(DataError, match="already exists: delete it"):
        download_cifar10(root, url="http://127.0.0.1:1/unused", progress=False)
    assert [p.name for p in root.iterdir()] == ["cifar-10-batches-py"]


def test_download_wrong_md5(http_server, root):
    url = http_server.serve("/cifar.tar.gz", make_archive(batch_entries()))
    with pytest.raises(DataError, match="corrupt .*expected 0123456789abcdef.*try again"):
        download_cifar10(root, url=url, md5="0123456789abcdef", progress=False)
    assert list(root.iterdir()) == []


def test_download_truncated_transfer(http_server, root):
    archive = make_archive(batch_entries())
    url = http_server.serve("/cifar.tar.gz", archive[:100], length=len(archive))
    with pytest.raises(DataError, match=f"cut short \\(100 of {len(archive)} bytes\\)"):
        download_cifar10(root, url=url, md5=hashlib.md5(archive).hexdigest(), progress=False)
    assert list(root.iterdir()) == []


def test_download_http_error(http_server, root):
    with pytest.raises(DataError, match="could not download .*404"):
        download_cifar10(root, url=http_server.url("/missing.tar.gz"), progress=False)
    assert list(root.iterdir()) == []


def test_download_connection_refused(root):
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DataError, match="could not download .*network connection"):
        download_cifar10(root, url=f"http://127.0.0.1:{port}/x.tar.gz", progress=False)
    assert list(root.iterdir()) == []


# The explicit member check must hold on its own: tarfile's "data" filter is not in every 3.11.
tar_filter_or_none = pytest.mark.parametrize(
    "tar_filter", [data._TAR_FILTER, {}], ids=["tar-filter", "no-tar-filter"])


@tar_filter_or_none
@pytest.mark.parametrize("evil, reason", [
    ("../evil", "'..' path component"),
    ("cifar-10-batches-py/../../evil", "'..' path component"),
    ("{tmp_path}/evil", "absolute path"),
])
def test_download_unsafe_member(http_server, root, tmp_path, monkeypatch, tar_filter, evil,
                                reason):
    monkeypatch.setattr(data, "_TAR_FILTER", tar_filter)
    evil = evil.format(tmp_path=tmp_path)
    archive = make_archive({**batch_entries(), evil: b"evil"})
    url = http_server.serve("/cifar.tar.gz", archive)
    with pytest.raises(DataError, match=f"refusing to extract '{re.escape(evil)}' .*{reason}"):
        download_cifar10(root, url=url, md5=hashlib.md5(archive).hexdigest(), progress=False)
    assert list(root.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir()] == ["root"]  # nothing written outside root


@tar_filter_or_none
def test_download_link_member(http_server, root, tmp_path, monkeypatch, tar_filter):
    monkeypatch.setattr(data, "_TAR_FILTER", tar_filter)
    archive = make_archive(batch_entries(), links={"cifar-10-batches-py/link": str(tmp_path)})
    url = http_server.serve("/cifar.tar.gz", archive)
    with pytest.raises(DataError, match="'cifar-10-batches-py/link' .*link or special file"):
        download_cifar10(root, url=url, md5=hashlib.md5(archive).hexdigest(), progress=False)
    assert list(root.iterdir()) == []


def test_download_not_a_tar(http_server, root):
    body = b"<html>not an archive</html>"
    url = http_server.serve("/cifar.tar.gz", body)
    with pytest.raises(DataError, match="could not extract .*cifar-10-python.tar.gz"):
        download_cifar10(root, url=url, md5=hashlib.md5(body).hexdigest(), progress=False)
    assert list(root.iterdir()) == []


def test_download_archive_without_batches(http_server, root):
    archive = make_archive({"other/": b"", "other/data_batch_1": b"x"})
    url = http_server.serve("/cifar.tar.gz", archive)
    with pytest.raises(DataError, match="has no cifar-10-batches-py/data_batch_1, .*not the CIFAR"):
        download_cifar10(root, url=url, md5=hashlib.md5(archive).hexdigest(), progress=False)
    assert list(root.iterdir()) == []
