"""Every file the package writes goes through here: `check_output` says, before any work, whether
a path may receive an output of a kind (a saved run, a checkpoint, a search record, a figure, a
PDF, a record of runs), and `write_atomic` writes it whole or not at all.

The policy, the same for every output: the folder must exist and be writable; the path must not
be a folder, a device, a FIFO, a socket or a symbolic link; and an existing file there may be
replaced only if it is one of ours of the same kind (a saved run by a saved run, a figure by a
figure, ...), or empty. A file of another kind, or one this package did not write (a data batch,
say), is refused. Each refusal is an `OutputError` with a one-line message naming the path."""
import json
import os
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

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

#: The largest JSON member of a run file read to tell its kind.
MAX_META_BYTES = 64 << 20


class OutputError(Error, ValueError):
    """An output path that may not receive the output, or a write that failed; the message is
    one line naming the path."""


def check_output(path: str | os.PathLike[str], kind: str) -> Path:
    """`path` as a Path, if an output of `kind` (one of KINDS) may be written there; else
    OutputError saying why and what to do."""
    path = Path(path)
    folder = path.absolute().parent
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise OutputError(f"{path}: the folder {folder} {problem}; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: the folder {folder} is not writable; give a path in a "
                          f"folder you can write to")
    found = kind_of(path)
    if found in (None, "empty", kind) or (found == DAMAGED and kind in ("run", "checkpoint")):
        return path                    # a damaged run file: its reader says what is wrong
    what = KINDS.get(found, found)
    raise OutputError(f"{path} is {what}, not {KINDS[kind]}: give another path"
                      + (", or delete the file" if found in KINDS else ""))


def kind_of(path: Path) -> str | None:
    """What is at `path`: None (nothing), "empty", one of KINDS, or a description of anything
    else ("a folder", "a device", "a FIFO", "a symbolic link", "a CIFAR-10 data batch",
    OTHER). Reads at most the first bytes of a file and a run file's JSON member."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    except OSError as err:
        return f"not readable ({err.strerror})"
    special = special_file(mode)
    if special:
        return special
    try:
        with path.open("rb") as f:
            head = f.read(1 << 16)
    except OSError as err:
        return f"not readable ({err.strerror})"
    if not head:
        return "empty"
    if head.startswith(b"PK\x03\x04"):
        return _run_file_kind(path)
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith(FIGURE_MAGIC) or head[4:12] == b"ftypavif":
        return "figure"
    if head.startswith(b"\x80") and b"batch_label" in head:
        return "a CIFAR-10 data batch"
    first = head.split(b"\n", 1)[0]
    try:
        line = json.loads(first) if first.lstrip().startswith(b"{") else None
    except ValueError:
        line = None
    if isinstance(line, dict) and set(line) == {"search"}:
        return "search"
    if _is_record(path, head):
        return "record"
    if _has_run_directory(path):       # a run file whose first bytes are damaged
        return DAMAGED
    return OTHER


def _has_run_directory(path: Path) -> bool:
    """Whether the file ends in the directory of a zip archive naming a run file's JSON."""
    try:
        with zipfile.ZipFile(path) as z:
            return "meta.npy" in z.namelist()
    except (OSError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError):
        return False


def special_file(mode: int) -> str | None:
    """What a file of st_mode `mode` is ("a folder", "a FIFO (named pipe)", "a device", "a
    socket", or from lstat "a symbolic link"), or None for a regular file."""
    return next((what for test, what in SPECIAL_FILES if test(mode)), None)


def _run_file_kind(path: Path) -> str:
    """"run" or "checkpoint" for a run file (`runfile`), DAMAGED for an archive that does not
    open, else OTHER."""
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("meta.npy")
            if info.file_size > MAX_META_BYTES:
                return OTHER
            text = z.read(info).decode("utf-32-le", errors="ignore")
    except (KeyError, OSError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError):
        return DAMAGED
    for kind in ("run", "checkpoint"):
        if f'"kind": "{kind}"' in text:
            return kind
    return OTHER


def _is_record(path: Path, head: bytes) -> bool:
    """Whether the file is a record of runs (`report.beyond.RECORD`): a JSON object with the
    lists of runs."""
    if not head.lstrip().startswith(b"{") or path.stat().st_size > MAX_META_BYTES:
        return False
    try:
        record = json.loads(path.read_bytes())
    except (ValueError, OSError):
        return False
    return isinstance(record, dict) and {"ablation", "best", "machine"} <= set(record)


def write_atomic(path: str | os.PathLike[str], kind: str,
                 write_to: Callable[[IO[bytes]], object]) -> None:
    """Write an output of `kind` to `path` (`check_output`): `write_to(f)` on the binary file
    `<path>.partial`, flushed to disk and renamed over `path`, so that `path` holds the old file
    or the whole new one, never a part. On an error the partial file is removed (if it can be:
    a failure to remove it never hides the error of the write) and the error is raised."""
    path = check_output(path, kind)
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb") as f:
            write_to(f)
            f.flush()
            os.fsync(f.fileno())
        check_output(path, kind)                # not replaced by something else meanwhile
        os.replace(partial, path)
    except BaseException:
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass                       # e.g. a read-only file system: the write's error counts
        raise
