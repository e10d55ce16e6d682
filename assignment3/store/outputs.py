"""Every file the package writes goes through here: `check_output` says, before any work, whether
a path may receive an output of a kind (a saved run, a checkpoint, a search record, a figure, a
PDF, a record of runs), and `write_atomic` writes it whole or not at all.

The policy, the same for every output: the folder must exist and be writable; the path must not
be a folder, a device, a FIFO, a socket or a symbolic link; and an existing file there may be
replaced only if it is one of ours of the same kind (a saved run by a saved run, a figure by a
figure, ...), or empty. A file of another kind, or one this package did not write (a data batch,
say), is refused. Each refusal is an `OutputError` with a one-line message naming the path."""
import contextlib
import json
import os
import stat
import zipfile
from collections.abc import Callable
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
        raise OutputError(f"{path}: the folder {folder} "
                          f"{'is not a folder' if folder.exists() else 'does not exist'}; "
                          "create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: the folder {folder} is not writable; give a path in a "
                          f"folder you can write to")
    found = kind_of(path)
    if found in (None, "empty", kind) or (found == DAMAGED and kind in ("run", "checkpoint")):
        return path                    # a damaged run file: its reader says what is wrong
    raise OutputError(f"{path} is {KINDS.get(found, found)}, not {KINDS[kind]}: give another path"
                      + (", or delete the file" if found in KINDS else ""))


def kind_of(path: Path) -> str | None:
    """What is at `path`: None (nothing), "empty", one of KINDS, or a description of anything
    else ("a folder", "a device", "a FIFO", "a symbolic link", "a CIFAR-10 data batch",
    OTHER). Reads at most the first bytes of a file, a run file's JSON member, and a JSON
    object of at most MAX_META_BYTES (a record)."""
    try:
        if special := special_file(path.lstat().st_mode):
            return special
        with path.open("rb") as f:
            head = f.read(1 << 16)
        run = _run_file_kind(path)
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


def _run_file_kind(path: Path) -> str | None:
    """"run" or "checkpoint" for a run file (`runfile`), OTHER for another zip archive with a
    run file's JSON member, None for any other file (or an archive that does not open)."""
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("meta.npy")
            text = "" if info.file_size > MAX_META_BYTES else \
                z.read(info).decode("utf-32-le", errors="ignore")
    except (KeyError, OSError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError):
        return None
    return next((kind for kind in ("run", "checkpoint") if f'"kind": "{kind}"' in text), OTHER)


def _json_object(text: bytes) -> dict[str, Any]:
    """The JSON object that `text` is, or {} if it is none."""
    try:
        return json.loads(text) if text.lstrip().startswith(b"{") else {}
    except (ValueError, RecursionError):       # not JSON (or not UTF-8), nested too deeply
        return {}


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
        with contextlib.suppress(OSError):  # e.g. a read-only file system: the write's error counts
            partial.unlink(missing_ok=True)
        raise
