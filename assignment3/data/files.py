"""Where the CIFAR-10 batch files are: the folder given, $CIFAR10_DIR, or the per-user cache,
which is the only place ever downloaded into. The download is checked (length, md5), extracted
safely (no links, no paths outside the folder) and moved into place in one rename; every partial
file is removed on any failure or stop. Every problem the user can fix raises `DataError`, saying
what is wrong and what to do."""
import contextlib
import fcntl
import hashlib
import http.client
import os
import sys
import tarfile
import tempfile
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PureWindowsPath
from typing import IO, Any

from tqdm.auto import tqdm

from .. import env
from ..errors import Error
from ..signals import signals_raise

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
#: The folder of the batch files, in the archive and in the cache.
FOLDER = "cifar-10-batches-py"
#: What to do when the data is not where it is looked for ({0}: the setting of the folder, `path`
#: of the library's functions, the command line's --data).
HINT = "set CIFAR10_DIR (or give {0}) to the folder holding data_batch_1..5 and test_batch"

_ARCHIVE = "cifar-10-python.tar.gz"
_PART_PREFIX = f".{_ARCHIVE}.part-"  # partial downloads, in the folder the archive goes to
_TAR_FILTER: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
#: Members that could write outside the folder they are extracted into: (test, what it is). They
#: are refused before extraction, as tarfile's "data" filter would, which not every 3.11 has.
_UNSAFE_MEMBERS: tuple[tuple[Callable[[tarfile.TarInfo], object], str], ...] = (
    (lambda member: not (member.isfile() or member.isdir()), "is a link or special file"),
    (lambda member: member.name.startswith(("/", "\\")) or PureWindowsPath(member.name).drive,
     "has an absolute path"),
    (lambda member: ".." in member.name.replace("\\", "/").split("/"),
     "has a '..' path component"),
)


class DataError(Error, RuntimeError):
    """The data is missing, incomplete or damaged, or could not be downloaded."""


def not_found(problem: str) -> DataError:
    """DataError: `problem`, then what to do (`HINT`), naming the folder's setting as `path`."""
    return DataError("{problem}" + HINT, "path", problem=problem)


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/assignment3, or ~/.cache/assignment3 when that is unset or relative."""
    return env.cache_home() / "assignment3"


def find_data_dir(path: str | os.PathLike[str] | None = None, *, download: bool = True,
                  progress: bool = True) -> Path:
    """The folder holding the batch files: path, else $CIFAR10_DIR, else the download cache.

    Only the cache folder is ever downloaded into (when it is missing and download is true).
    """
    folder = Path(path).expanduser() if path is not None else env.data_dir()
    if folder is None:
        folder = default_cache_dir() / FOLDER
        if not folder.exists():
            if not download:
                raise not_found(
                    f"CIFAR-10 is not in the cache folder {folder} and download=False: call with "
                    f"download=True to download it from {CIFAR10_URL} (163 MB), or "
                )
            return download_cifar10(folder.parent, progress=progress)
        if missing := missing_files(folder):
            raise not_found(
                f"the cached CIFAR-10 folder {folder} is incomplete (no {', '.join(missing)}): "
                f"delete {folder} so it is downloaded again, or "
            )
        return folder
    # a folder the user gave: it must hold the batch files (it is never downloaded into)
    source = "the CIFAR-10 folder" if path is not None else f"the {env.DATA_DIR} folder"
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise not_found(f"{source} {folder} {problem}: ")
    if missing := missing_files(folder):
        nested = folder / FOLDER
        guess = f" (did you mean {nested}?)" if nested.is_dir() else ""
        raise not_found(f"{source} {folder} has no {', '.join(missing)}{guess}: ")
    return folder


def missing_files(folder: Path) -> list[str]:
    return [name for name in (*TRAIN_FILES, TEST_FILE) if not (folder / name).is_file()]


def download_cifar10(root: str | os.PathLike[str], *, url: str = CIFAR10_URL,
                     md5: str = CIFAR10_MD5, progress: bool = True) -> Path:
    """Download, verify and safely extract the CIFAR-10 archive into root.

    Returns root/cifar-10-batches-py and keeps the verified archive next to it. On any failure
    every partial file and folder is removed again and DataError is raised; so they are when
    the download is stopped by Ctrl-C, SIGTERM or SIGHUP (`signals.signals_raise`), and the
    partial files of earlier downloads that were killed outright are removed first.
    """
    root = Path(root)
    target = root / FOLDER
    if target.exists():
        raise DataError(f"{target} already exists: delete it to download CIFAR-10 again")
    with signals_raise():
        try:  # whether root can be written to is found by writing there
            root.mkdir(parents=True, exist_ok=True)
            _remove_stale_parts(root)
            fd, name = tempfile.mkstemp(dir=root, prefix=_PART_PREFIX)
        except OSError as err:
            raise DataError(f"cannot download CIFAR-10 into {root} ({err.strerror or err}): set "
                            f"{env.DATA_DIR} to a copy of cifar-10-batches-py, or "
                            f"{env.CACHE_HOME} to a folder you can write to") from None
        if progress:
            print(f"Downloading {url} to {root}", file=sys.stderr)
        part, archive = Path(name), root / _ARCHIVE
        try:
            with os.fdopen(fd, "wb") as out:
                _fetch(url, md5, out, progress)
                os.replace(part, archive)  # still locked: never taken for a stale part
            _extract(archive, target, progress)
        except BaseException:
            # the partial file, or once it is verified and renamed the archive
            (part if part.exists() else archive).unlink(missing_ok=True)
            raise
    return target


def _fetch(url: str, md5: str, out: IO[bytes], progress: bool) -> None:
    """Stream url into out (a new partial file). A transfer shorter than its Content-Length, or
    whose md5 hex digest is not `md5`, is refused."""
    digest = hashlib.md5(usedforsecurity=False)
    try:
        fcntl.flock(out, fcntl.LOCK_EX)  # held while the file is written: it is not stale
        with urllib.request.urlopen(url, timeout=60) as response:
            length = response.headers.get("Content-Length", "")
            expected = int(length) if length.isdigit() else None
            with tqdm(total=expected, unit="B", unit_scale=True, disable=not progress) as bar:
                while chunk := response.read(1 << 18):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (OSError, http.client.HTTPException) as exc:
        raise not_found(
            f"could not download {url} ({exc}): check the network connection and try "
            f"again, or download and extract it by hand and "
        ) from exc
    if expected is not None and out.tell() != expected:
        raise DataError(
            f"the download from {url} was cut short ({out.tell()} of {expected} bytes): "
            "try again"
        )
    if digest.hexdigest() != md5.lower():
        raise DataError(f"the file downloaded from {url} is corrupt (md5 {digest.hexdigest()}, "
                        f"expected {md5}): try again")


def _remove_stale_parts(root: Path) -> None:
    """Remove the partial files of downloads into root that no process is writing any more
    (killed outright, e.g. by SIGKILL): a live download holds a lock on its file."""
    for part in root.glob(f"{_PART_PREFIX}*"):
        # skipped if being written by another download, or already removed
        with contextlib.suppress(BlockingIOError, FileNotFoundError), part.open("rb") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            part.unlink()


def _extract(archive: Path, target: Path, progress: bool) -> None:
    """Extract archive into a temporary folder next to target, then rename its batch folder to
    target (one atomic step) once it is complete. The temporary folder is always removed."""
    if progress:
        print(f"Extracting {archive}", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".cifar-10-extract-",
                                     ignore_cleanup_errors=True) as tmp:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(tmp, members=_safe_members(tar), **_TAR_FILTER)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise DataError(f"could not extract {archive} ({exc}): download it again") from exc
        extracted = Path(tmp) / FOLDER
        if missing := missing_files(extracted):
            raise DataError(
                f"{archive} has no {FOLDER}/{', '.join(missing)}: it is not the CIFAR-10 python "
                f"archive; download it again from {CIFAR10_URL}"
            )
        try:
            os.rename(extracted, target)
        except OSError as exc:
            if missing_files(target):  # else a concurrent download finished first: use its copy
                raise DataError(
                    f"could not move the extracted data to {target} ({exc}): delete {target} "
                    "and try again"
                ) from exc


def _safe_members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Yield the members of tar, raising DataError at the first one that is unsafe to extract."""
    for member in tar:
        for unsafe, problem in _UNSAFE_MEMBERS:
            if unsafe(member):
                raise DataError(
                    f"refusing to extract {member.name!r} from {tar.name!s}: it {problem}. This is "
                    f"not the official CIFAR-10 archive; download it again from {CIFAR10_URL}"
                )
        yield member
