"""Every file the package writes goes through here: `check_output` says, before any work, whether
a path may receive an output of a kind (a saved run, a checkpoint, a search record, a figure, a
PDF, a record of runs), `write_atomic` writes it whole or not at all, and `hold` keeps a path to
one run. The policy, the same for every output, and its refusals (each an `OutputError`, one line
naming the path): docs/runs.md, "Where outputs may go"."""
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import stat
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from ..errors import Error

#: The kinds of output, as a reader is told what a path holds.
KINDS = {"run": "a saved run", "checkpoint": "a checkpoint", "search": "a lambda search record",
         "figure": "a figure", "pdf": "a PDF", "record": "a record of runs (runs.json)"}

#: The first bytes of the figure formats matplotlib writes (pgf, raw and rgba have none).
FIGURE_MAGIC = (b"\x89PNG", b"%PDF", b"%!PS", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*",
                b"<?xml", b"<svg", b"\x1f\x8b", b"%% Creator: Matplotlib", b"GIF8", b"RIFF")

#: What a path is that is not a regular file, by its st_mode (a link: by lstat's).
SPECIAL_FILES = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"),
                 (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
                 (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))

#: What a file is that this package did not write.
OTHER = "a file that assignment3 did not write"

#: A file that starts as a zip archive, as run files do, but does not open as one.
DAMAGED = "a damaged run file"

#: The start of the names of the temporary and lock files next to an output.
PARTIAL_PREFIX = ".assignment3-"

#: The length of a temporary file's name: the prefix, 16 hex digits of the target's name's hash,
#: "-", 8 random ones and ".partial"; the lock file's name is shorter.
TEMPORARY_NAME_BYTES = len(PARTIAL_PREFIX) + 16 + 1 + 8 + len(".partial")

#: How long a hold waits for another process's hold of the same path to end, in seconds.
LOCK_WAIT = 2.0

#: The largest JSON member of a run file read to tell its kind.
MAX_META_BYTES = 64 << 20


class OutputError(Error, ValueError):
    """An output path that may not receive the output, or a write that failed; the message is
    one line naming the path."""


def check_output(path: str | os.PathLike[str], kind: str) -> Path:
    """`path` as a Path, if an output of `kind` (one of KINDS) may be written there; else
    OutputError saying why and what to do. The name and the path must fit the folder's file
    system (NAME_MAX, PATH_MAX), with the temporary file's name too."""
    path = Path(path)
    folder = path.absolute().parent
    try:
        if not stat.S_ISDIR(os.stat(folder).st_mode):
            raise OutputError(f"{path}: the folder {folder} is not a folder; create it first")
        name_max, path_max = (os.pathconf(folder, n) for n in ("PC_NAME_MAX", "PC_PATH_MAX"))
    except OSError as err:
        raise OutputError(f"{path}: the folder {folder} " + (
            "does not exist; create it first" if err.errno == errno.ENOENT else
            f"cannot be used ({err.strerror}); give a path in another folder")) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: the folder {folder} is not writable; give a path in a "
                          f"folder you can write to")
    longest = max(len(os.fsencode(path.name)), TEMPORARY_NAME_BYTES)
    if longest > name_max or len(os.fsencode(folder)) + 1 + longest >= path_max:
        raise OutputError(f"{path}: the name is {len(os.fsencode(path.name))} bytes and the path "
                          f"{len(os.fsencode(path.absolute()))}; this folder's file system takes "
                          f"names of at most {name_max} bytes and paths of less than {path_max}: "
                          "give a shorter one")
    found = kind_of(path)
    if found in (None, "empty", kind) or (found == DAMAGED and kind in ("run", "checkpoint")):
        return path                    # a damaged run file: its reader says what is wrong
    raise OutputError(f"{path} is {KINDS.get(found, found)}, not {KINDS[kind]}: give another path"
                      + (", or delete the file" if found in KINDS else ""))


def kind_of(path: Path) -> str | None:
    """What is at `path`: None (nothing), "empty", one of KINDS, or what else it is (a
    `special_file`, "a CIFAR-10 data batch", OTHER, ...). Reads at most the first bytes of a file,
    a run file's JSON member (its `run` kind), and a JSON object of MAX_META_BYTES (a record)."""
    try:
        if special := special_file(path.lstat().st_mode):
            return special
        with path.open("rb") as f:
            head = f.read(1 << 16)
        try:        # a zip archive with a JSON member: "run", "checkpoint" or OTHER, else None
            with zipfile.ZipFile(path) as z:
                info = z.getinfo("meta.npy")
                text = "" if info.file_size > MAX_META_BYTES else \
                    z.read(info).decode("utf-32-le", errors="ignore")
            run = next((k for k in ("run", "checkpoint") if f'"kind": "{k}"' in text), OTHER)
        except (KeyError, OSError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError):
            run = None
        whole = path.read_bytes() if head.lstrip().startswith(b"{") and \
            path.stat().st_size <= MAX_META_BYTES else b""
    except FileNotFoundError:
        return None
    except OSError as err:
        return f"not readable ({err.strerror})"
    told = ((not head, "empty"), (head.startswith(b"PK\x03\x04"), run or DAMAGED),
            (head.startswith(b"%PDF"), "pdf"),
            (head.startswith(FIGURE_MAGIC) or head[4:12] == b"ftypavif", "figure"),
            (head.startswith(b"\x80") and b"batch_label" in head, "a CIFAR-10 data batch"),
            (set(_json_object(head.split(b"\n", 1)[0])) == {"search"}, "search"),
            ({"ablation", "best", "machine"} <= set(_json_object(whole)), "record"),  # runs.json
            (run is not None, DAMAGED))        # a run file whose first bytes are damaged
    return next((kind for test, kind in told if test), OTHER)


def special_file(mode: int) -> str | None:
    """What a file of st_mode `mode` is ("a folder", "a FIFO (named pipe)", "a device", "a
    socket", or from lstat "a symbolic link"), or None for a regular file."""
    return next((what for test, what in SPECIAL_FILES if test(mode)), None)


def _json_object(text: bytes) -> dict[str, Any]:
    """The JSON object that `text` is, or {} if it is none."""
    try:
        return json.loads(text) if text.lstrip().startswith(b"{") else {}
    except (ValueError, RecursionError):       # not JSON (or not UTF-8), nested too deeply
        return {}


def write_atomic(path: str | os.PathLike[str], kind: str,
                 write_to: Callable[[IO[bytes]], object]) -> None:
    """Write an output of `kind` to `path` (`check_output`; refused while another process holds
    it, `hold`) whole or not at all: `write_to(f)` on a temporary file of its own beside it (its
    mode as the umask says), as docs/runs.md, "Where outputs may go", says. On an error that
    file is removed (if it can be: that never hides the error), and the error is raised."""
    with hold(path, kind, fcntl.LOCK_SH) as path:
        folder = path.absolute().parent
        fd = -1
        while fd < 0:                           # until a name is this call's alone (O_EXCL)
            partial = folder / f"{_names(path.absolute())[1]}{secrets.token_hex(4)}.partial"
            with contextlib.suppress(FileExistsError):
                fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            with open(fd, "wb") as f:
                write_to(f)
                f.flush()
                os.fsync(f.fileno())
            check_output(path, kind)            # not replaced by something else meanwhile
            os.replace(partial, path)
        except BaseException:
            with contextlib.suppress(OSError):  # a read-only file system: the write's error counts
                partial.unlink(missing_ok=True)
            raise
        with contextlib.suppress(OSError):      # the rename, to disk where the file system can
            folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(folder_fd)
            finally:
                os.close(folder_fd)


#: This process's holds: each path held, the descriptor of its lock file and how many holds.
_HELD: dict[Path, list[int]] = {}


@contextlib.contextmanager
def hold(path: str | os.PathLike[str], kind: str,
         how: int = fcntl.LOCK_EX) -> Iterator[Path]:
    """Hold `path` (yielded as `check_output` returns it) for an output of `kind` while the block
    runs (docs/runs.md, "One path, one run"): a run for its life (LOCK_EX), a write for its
    duration (LOCK_SH: writes may overlap); another process's hold refuses it (`_lock`), holds
    in one process nest. Holding it alone removes the temporary files killed writers left."""
    path = check_output(path, kind)
    key = path.absolute()
    if key in _HELD:
        _HELD[key][1] += 1
    else:
        _HELD[key] = [_lock(key, how), 1]
        if how == fcntl.LOCK_EX:
            _sweep(key)
    try:
        yield path
    finally:
        _HELD[key][1] -= 1
        if not _HELD[key][1]:
            fd = _HELD.pop(key)[0]
            try:                            # alone, remove killed writers' files and the lock
                with contextlib.suppress(BlockingIOError):  # else another holder removes them
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    _sweep(key)
                    with contextlib.suppress(OSError):
                        os.unlink(_names(key)[0])
            finally:
                os.close(fd)


def _names(path: Path) -> tuple[Path, str]:
    """`path`'s lock file and the start of the names of its temporary files: of a fixed length,
    whatever the length of its name."""
    digest = hashlib.sha256(os.fsencode(path.name)).hexdigest()[:16]
    return path.parent / f"{PARTIAL_PREFIX}{digest}.lock", f"{PARTIAL_PREFIX}{digest}-"


def _sweep(path: Path) -> None:
    """Remove the temporary files killed writers left of `path` (held by this process alone)."""
    for partial in path.parent.glob(f"{_names(path)[1]}*.partial"):
        with contextlib.suppress(OSError):
            partial.unlink()


def _lock(path: Path, how: int) -> int:
    """The descriptor of `path`'s lock file locked `how` (flock; again if its last holder removed
    it meanwhile); OutputError if another process still holds it after LOCK_WAIT seconds."""
    lock, deadline = _names(path)[0], time.monotonic() + LOCK_WAIT
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o666)
        try:
            fcntl.flock(fd, how | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() > deadline:
                raise OutputError(f"{path}: another run holds it (it is writing there); wait "
                                  "for that run to end, or give another path") from None
            time.sleep(0.01)
            continue
        with contextlib.suppress(FileNotFoundError):
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                return fd
        os.close(fd)
