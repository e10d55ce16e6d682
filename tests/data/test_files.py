"""assignment3.data.files: where the CIFAR-10 batch files are looked for (a folder given,
$CIFAR10_DIR, the per-user cache), and the download into the cache over real HTTP (a server on
127.0.0.1): checked, extracted safely, every partial file removed on failure, on a stop by a real
signal, and when left by a download that was killed."""
import fcntl
import functools
import hashlib
import http.server
import io
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from assignment3.data import files
from assignment3.data.files import (
    FOLDER,
    TEST_FILE,
    TRAIN_FILES,
    DataError,
    download_cifar10,
    find_data_dir,
    missing_files,
)

ALL_FILES = (*TRAIN_FILES, TEST_FILE)


def fake_batches(folder: Path, skip=()) -> Path:
    """folder with (empty) files of the batch names, except those in skip: where the data is
    looked for only the names count."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ALL_FILES:
        if name not in skip:
            (folder / name).write_bytes(b"")
    return folder



# ---------------------------------------------------------------------------------------------
# Where the data is looked for


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """An empty XDG cache home, with CIFAR10_DIR unset."""
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_missing_files(tmp_path):
    """The batch files a folder lacks, by the names of the official archive (a folder of that
    name is not the file)."""
    (tmp_path / "data_batch_2").mkdir()
    assert missing_files(tmp_path) == ["data_batch_1", "data_batch_2", "data_batch_3",
                                       "data_batch_4", "data_batch_5", "test_batch"]
    folder = fake_batches(tmp_path / "cifar", skip=["data_batch_2", "test_batch"])
    assert missing_files(folder) == ["data_batch_2", "test_batch"]
    (folder / "data_batch_2").mkdir()
    assert missing_files(folder) == ["data_batch_2", "test_batch"]


def test_a_folder_given_comes_first(tmp_path, monkeypatch):
    given = fake_batches(tmp_path / "given")
    monkeypatch.setenv("CIFAR10_DIR", str(fake_batches(tmp_path / "env")))
    assert find_data_dir(given, download=False) == given
    assert find_data_dir(str(given), download=False) == given
    monkeypatch.setenv("HOME", str(tmp_path))
    assert find_data_dir("~/given", download=False) == given


def test_find_data_dir_uses_cifar10_dir(tmp_path, monkeypatch):
    folder = fake_batches(tmp_path / "cifar")
    monkeypatch.setenv("CIFAR10_DIR", str(folder))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert find_data_dir(download=False) == folder
    assert not (tmp_path / "cache").exists()
    monkeypatch.setenv("CIFAR10_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()                          # never downloaded into
    with pytest.raises(DataError, match="^the CIFAR10_DIR folder .*cache has no data_batch_1, "
                                        ".*test_batch: set CIFAR10_DIR"):
        find_data_dir()
    assert list((tmp_path / "cache").iterdir()) == []


@pytest.mark.slow
def test_find_data_dir_uses_cifar10_dir_of_the_real_data(cifar10_dir, monkeypatch):
    monkeypatch.setenv("CIFAR10_DIR", str(cifar10_dir))
    assert find_data_dir(download=False) == cifar10_dir


def test_missing_folder(tmp_path):
    for problem in ("does not exist", "is not a folder"):
        with pytest.raises(DataError, match=f"^the CIFAR-10 folder {tmp_path / 'nope'} {problem}: "
                                            "set CIFAR10_DIR"):
            find_data_dir(tmp_path / "nope")
        (tmp_path / "nope").write_text("x")


def test_folder_missing_a_batch(tmp_path):
    folder = fake_batches(tmp_path / "cifar", skip=["data_batch_3"])
    with pytest.raises(DataError, match="has no data_batch_3: set CIFAR10_DIR"):
        find_data_dir(folder)


def test_parent_folder_gets_a_hint(tmp_path):
    fake_batches(tmp_path / "cifar-10-batches-py")
    with pytest.raises(DataError, match="did you mean .*cifar-10-batches-py"):
        find_data_dir(tmp_path)


def test_cache_without_download(cache_home):
    folder = cache_home / "assignment3" / "cifar-10-batches-py"
    with pytest.raises(DataError, match=f"{folder} and download=False.*download=True.*CIFAR10_DIR"):
        find_data_dir(download=False)
    assert not cache_home.exists()


def test_unwritable_cache_is_one_clear_error(tmp_path, monkeypatch):
    """XDG_CACHE_HOME below a file (as a read-only home of a cluster node: nothing can be made
    there), CIFAR10_DIR unset: a DataError naming both variables, before any download."""
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file" / "cache"))
    with pytest.raises(DataError, match=r"cannot download CIFAR-10 into .*file/cache/assignment3 "
                                        r"\(Not a directory\): set CIFAR10_DIR .*XDG_CACHE_HOME"):
        find_data_dir()


def test_incomplete_cache(cache_home):
    folder = cache_home / "assignment3" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    (folder / "data_batch_1").write_bytes(b"")
    with pytest.raises(DataError, match=f"incomplete .*no data_batch_2.*delete {folder}"):
        find_data_dir()


def test_cache_is_downloaded_when_missing(cache_home, http_server, monkeypatch):
    archive = make_archive(batch_entries())
    url = http_server.serve("/cifar.tar.gz", archive)
    # the real download, from the local server instead of the official address
    monkeypatch.setattr(files, "download_cifar10", functools.partial(
        download_cifar10, url=url, md5=hashlib.md5(archive).hexdigest()))
    folder = cache_home / "assignment3" / "cifar-10-batches-py"
    assert find_data_dir(progress=False) == folder
    assert {p.name for p in folder.iterdir()} == {*ALL_FILES, "batches.meta", "readme.html"}
    assert find_data_dir(download=False) == folder  # found in the cache from now on


# ---------------------------------------------------------------------------------------------
# Downloads over real HTTP (a local server)


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.routes: path -> (body, announced Content-Length, what to do first or None);
    404 otherwise."""

    def do_GET(self):
        if self.path not in self.server.routes:
            self.send_error(404)
            return
        body, length, first = self.server.routes[self.path]
        if first:
            first()
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

    def serve(self, path: str, body: bytes, length: int | None = None, first=None) -> str:
        """URL of path, which sends body and announces length (default: its true length), after
        calling first() if given."""
        self.routes[path] = (body, len(body) if length is None else length, first)
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
    assert url in err and "100%" in err and f"{len(archive)}/{len(archive)}" in err


def test_download_creates_its_folder_and_takes_an_upper_case_md5(http_server, tmp_path, capsys):
    archive = make_archive(batch_entries())
    url = http_server.serve("/cifar.tar.gz", archive)
    root = tmp_path / "new" / "root"
    folder = download_cifar10(str(root), url=url, md5=hashlib.md5(archive).hexdigest().upper(),
                              progress=False)
    assert folder == root / FOLDER and missing_files(folder) == []
    assert capsys.readouterr().err == ""                      # progress=False: silent


def test_download_refuses_existing_folder(root):
    (root / "cifar-10-batches-py").mkdir()
    with pytest.raises(DataError, match="already exists: delete it"):
        download_cifar10(root, url="http://127.0.0.1:1/unused", progress=False)
    assert [p.name for p in root.iterdir()] == ["cifar-10-batches-py"]


def refusal(download, *args, **kwargs):
    """The message of the DataError of download(*args, **kwargs) (None if it raises none)."""
    try:
        download(*args, **kwargs)
    except DataError as err:
        return str(err)
    return None


def test_failed_download_leaves_nothing(http_server, root):
    """A wrong md5, a transfer cut short, an HTTP error, nothing listening, a body that is no
    tar archive, an archive without the batches: DataError saying what and what to do, and
    nothing left in the folder."""
    archive = make_archive(batch_entries())
    body = b"<html>not an archive</html>"
    other = make_archive({"other/": b"", "other/data_batch_1": b"x"})
    with socket.socket() as sock:                   # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cases = [
        (http_server.serve("/a.tar.gz", archive), "0123456789abcdef",
         "corrupt .*expected 0123456789abcdef.*try again"),
        (http_server.serve("/cut.tar.gz", archive[:100], length=len(archive)),
         hashlib.md5(archive).hexdigest(), f"cut short \\(100 of {len(archive)} bytes\\)"),
        (http_server.url("/missing.tar.gz"), "", "could not download .*404"),
        (f"http://127.0.0.1:{port}/x.tar.gz", "", "could not download .*network connection"),
        (http_server.serve("/html.tar.gz", body), hashlib.md5(body).hexdigest(),
         "could not extract .*cifar-10-python.tar.gz"),
        (http_server.serve("/other.tar.gz", other), hashlib.md5(other).hexdigest(),
         "has no cifar-10-batches-py/data_batch_1, .*not the CIFAR")]
    wrong = []
    for url, md5, message in cases:
        said = refusal(download_cifar10, root, url=url, md5=md5, progress=False)
        if not re.search(message, str(said)) or list(root.iterdir()):
            wrong.append((url, said, list(root.iterdir())))
    assert wrong == [], "(url, refusal, left in the folder) not as expected"


def test_download_racing_another_into_the_same_folder(http_server, root):
    """The batch folder appears while the download runs, as when another download into the same
    folder finishes first: its copy is used if complete (this archive kept); if not, DataError
    says to delete it, and this download leaves nothing."""
    archive = make_archive(batch_entries())
    md5 = hashlib.md5(archive).hexdigest()
    for skip in ((), ALL_FILES[1:]):
        url = http_server.serve("/cifar.tar.gz", archive,
                                first=lambda skip=skip: fake_batches(root / FOLDER, skip))
        if not skip:
            assert download_cifar10(root, url=url, md5=md5, progress=False) == root / FOLDER
            assert sorted(p.name for p in root.iterdir()) == [FOLDER, "cifar-10-python.tar.gz"]
            assert (root / FOLDER / "data_batch_1").read_bytes() == b""     # the other's copy
        else:
            with pytest.raises(DataError, match=f"^could not move the extracted data to "
                                                f"{root / FOLDER} .*: delete {root / FOLDER} and "
                                                "try again$"):
                download_cifar10(root, url=url, md5=md5, progress=False)
            assert [p.name for p in root.iterdir()] == [FOLDER]
        shutil.rmtree(root / FOLDER)
        (root / "cifar-10-python.tar.gz").unlink(missing_ok=True)


# The explicit member check must hold on its own: tarfile's "data" filter is not in every 3.11.
# Without it, as where it is missing ("fully_trusted" says so where it exists, without warnings).
NO_TAR_FILTER = {"filter": "fully_trusted"} if files._TAR_FILTER else {}


def test_download_refuses_unsafe_members(http_server, root, tmp_path, monkeypatch):
    """A member escaping the folder by '..' or an absolute path, and a symbolic link: refused
    before anything is extracted, with tarfile's "data" filter and without it; nothing written
    inside the folder or outside."""
    unsafe = {"cifar-10-batches-py/../../evil": ({"cifar-10-batches-py/../../evil": b"evil"}, {},
                                                 "has a '..' path component"),
              f"{tmp_path}/evil": ({f"{tmp_path}/evil": b"evil"}, {}, "has an absolute path"),
              "cifar-10-batches-py/link": ({}, {"cifar-10-batches-py/link": str(tmp_path)},
                                           "is a link or special file")}
    wrong = []
    for tar_filter in (files._TAR_FILTER, NO_TAR_FILTER):
        monkeypatch.setattr(files, "_TAR_FILTER", tar_filter)
        for name, (entries, links, problem) in unsafe.items():
            archive = make_archive({**batch_entries(), **entries}, links)
            url = http_server.serve("/cifar.tar.gz", archive)
            said = refusal(download_cifar10, root, url=url, md5=hashlib.md5(archive).hexdigest(),
                           progress=False)
            if not re.search(f"refusing to extract {re.escape(repr(name))} from .*: it {problem}. "
                             "This is not the official CIFAR-10 archive", str(said)) \
                    or list(root.iterdir()) or [p.name for p in tmp_path.iterdir()] != ["root"]:
                wrong.append((tar_filter, name, said))
    assert wrong == [], "(tar filter, member, refusal) not as expected"


# ---------------------------------------------------------------------------------------------
# Stops: a download stopped by a real signal, and the partial files of killed downloads


class StallingHandler(http.server.BaseHTTPRequestHandler):
    """Sends the headers of a large file and its first bytes, then waits (a slow download)."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(10**9))
        self.end_headers()
        self.wfile.write(b"x" * 1_000_000)          # more than one read of the download
        self.wfile.flush()
        self.server.release.wait(60)

    def log_message(self, *args):
        pass


@pytest.fixture
def stalling_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StallingHandler)
    server.release = threading.Event()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/cifar.tar.gz"
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_download_stopped_by_a_signal_leaves_no_part_file(stalling_server, tmp_path, sig,
                                                         wait_until):
    root = tmp_path / "cache"
    code = (f"from assignment3.data.files import download_cifar10; "
            f"download_cifar10({str(root)!r}, url={stalling_server!r}, progress=False)")
    child = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: any(p.stat().st_size > 0 for p in root.glob(".*part*")), 60,
                   "the download to start")
        child.send_signal(sig)
        status = child.wait(timeout=30)
    finally:
        child.kill()
        child.wait()
    assert status == -sig                             # ended by the signal, after cleaning up
    assert list(root.iterdir()) == []


def archive_with_batches():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ALL_FILES:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = 4
            tar.addfile(info, io.BytesIO(b"fake"))
    return buffer.getvalue()


def test_stale_part_files_are_removed_but_not_live_ones(http_server, tmp_path):
    archive = archive_with_batches()
    url = http_server.serve("/a.tar.gz", archive)
    root = tmp_path / "cache"
    root.mkdir()
    stale = root / ".cifar-10-python.tar.gz.part-killed1"
    stale.write_bytes(b"half an archive")
    live = root / ".cifar-10-python.tar.gz.part-running"
    with live.open("wb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)             # as a download in progress holds it
        download_cifar10(root, url=url, md5=hashlib.md5(archive).hexdigest(), progress=False)
        assert not stale.exists() and live.exists()
    assert sorted(p.name for p in root.iterdir()) == [
        ".cifar-10-python.tar.gz.part-running", "cifar-10-batches-py", "cifar-10-python.tar.gz"]
