"""The on-disk format of a run (docs/runs.md, "The run-file format"): one `.npz` file of the
arrays and a member `meta` of JSON text, written whole (`outputs.write_atomic`) and read
defensively (`RunFile`: the JSON first, each field checked before use by `fields`; then only the
network's arrays, each .npy header and declared size checked first; nothing unpickled)."""
import contextlib
import io
import json
import math
import os
import re
import stat
import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from ..config import MAX_PARAMETERS
from ..errors import Error
from ..nn.checks import PARAM_NAMES, is_int
from ..nn.types import Array, Params, Stats
from .outputs import MAX_META_BYTES, special_file, write_atomic

#: Version of the file layout; a file of another version is refused.
FORMAT_VERSION = 1

#: The member holding the JSON text.
META = "meta"

#: Names of the BN moving averages of a layer: (mean, variance).
STAT_NAMES = ("mu", "v")

#: A compressed array member may declare at most MAX_INFLATION times its compressed bytes, plus
#: SMALL_MEMBER (docs/runs.md); a member of zeros deflates about 1000-fold (a zip bomb).
MAX_INFLATION = 16
SMALL_MEMBER = 1 << 20
#: The same for the JSON member (UTF-32 text, of which a run's compresses about 6-fold, and far
#: more where it repeats itself); it is at most `outputs.MAX_META_BYTES` in any case.
MAX_META_INFLATION = 64

#: The largest .npy header read (numpy's limit is 10,000 characters, but numpy reads a header of
#: any declared length before it checks it), and how the .npy versions write a header's length.
MAX_NPY_HEADER = 10_000 + 64
NPY_HEADER_LENGTH = {(1, 0): "<H", (2, 0): "<I"}

Shape = tuple[int, ...]

#: The prefix of the arrays of a run's averaged weights (`training.Averaged`).
AVERAGED = "swa_"

#: The names of the arrays of a network (`param_arrays`): (prefix, name)_l.
NETWORK_ARRAY = re.compile(rf"((?:{AVERAGED})?)(?:{'|'.join((*PARAM_NAMES, *STAT_NAMES))})_\d+")

#: What the arrays of `read_network` are part of, as a refusal names it.
NETWORK = "its configuration's network"

#: The refusal of a file without a JSON member.
NO_META = f"has no {META!r} member with JSON text; not a run file"


class RunFileError(Error, ValueError):
    """A run or checkpoint file that cannot be used; the message names the file and says why."""
    path: Path

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        super().__init__("{where}: {problem}", where=str(path), path=Path(path), problem=problem)


def write(path: str | os.PathLike[str], arrays: dict[str, Array], meta: dict[str, Any]) -> None:
    """Write `arrays` (name -> ndarray) and `meta` (a JSON-ready dict, "kind": "run" or
    "checkpoint") to the file `path` by `outputs.write_atomic` (OutputError if it may not)."""
    if META in arrays:
        raise ValueError(f"{META!r} is the name of the JSON member; give the array another name")
    text = json.dumps({"format": FORMAT_VERSION, **meta})     # fails before anything is written
    # numpy's stub lets a ** dict fill savez's allow_pickle (a bool): our member names never do
    write_atomic(path, meta["kind"],
                 lambda f: np.savez(f, **arrays, **{META: np.array(text)}))  # type: ignore[arg-type]


def read(path: str | os.PathLike[str]) -> tuple[dict[str, Array], dict[str, Any]]:
    """(arrays, meta) of a file written by `write`: every array member (name -> ndarray), each
    read as its header declares (a tool's view; runs and checkpoints read only their network's
    arrays). RunFileError as `RunFile` and `RunFile.array` raise it."""
    with RunFile(path) as f:
        return {name: f.array(name) for name in f.names()}, f.meta


class RunFile(contextlib.AbstractContextManager["RunFile"]):
    """A run file open for reading. On opening: RunFileError (naming the file) unless `path` is
    a regular file (`path_problem`; a FIFO is never opened in a way that could block), a zip
    archive (.npz) with a JSON member `META` of at most `outputs.MAX_META_BYTES` in run format
    FORMAT_VERSION; `meta` is that JSON. `array` then reads one member, after its checks."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if problem := path_problem(self.path):
            raise RunFileError(self.path, problem)
        try:         # O_NONBLOCK: a FIFO put there since the check does not block the open
            self._file = open(self.path, "rb",
                              opener=lambda p, flags: os.open(p, flags | os.O_NONBLOCK))
        except OSError as err:
            raise RunFileError(self.path, f"cannot be read ({err.strerror or err})") from None
        try:
            status = os.fstat(self._file.fileno())
            self._size, problem = status.st_size, path_problem(self.path, status.st_mode)
            if problem:
                raise RunFileError(self.path, problem)
            if not (start := self._file.read(4)):
                raise RunFileError(self.path, "is empty, not a run file")
            if start != b"PK\x03\x04" or not zipfile.is_zipfile(self._file):
                raise RunFileError(self.path, "not a readable run file (not an .npz archive); "
                                              "it may be truncated or corrupt, or another kind "
                                              "of file")
            try:                           # (it finds the directory from the file's end)
                self._zip = zipfile.ZipFile(self._file)
            except Exception as err:       # zipfile, struct, OS errors of a damaged directory
                raise unreadable(self.path, err) from None
            self.meta = self._read_meta()
        except BaseException:
            self._file.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self._file.close()          # (a zip archive read from a file it was given holds nothing)

    def _read_meta(self) -> dict[str, Any]:
        """The JSON of the member `META`: an object in run format FORMAT_VERSION."""
        info, shape, dtype = self.head(META)
        if dtype.kind != "U" or shape != ():
            raise RunFileError(self.path, NO_META)
        text = str(self._data(META, info))
        try:
            meta = json.loads(text)
        except (ValueError, RecursionError) as err:     # JSONDecodeError; too many digits
            raise RunFileError(self.path, "its JSON member is damaged ("
                               f"{'nested too deeply' if isinstance(err, RecursionError) else err})"
                               ) from None
        if not isinstance(meta, dict):
            raise RunFileError(self.path, f"its JSON member holds {shown(meta, 40)}, not an "
                                          "object; not a run file")
        if "format" not in meta:
            raise RunFileError(self.path, "field 'format': missing; not a run file")
        if not is_int(meta["format"]) or meta["format"] != FORMAT_VERSION:   # not true or 1.0
            raise RunFileError(self.path, f"is in run format {shown(meta['format'], 40)}, this "
                                          f"code reads format {FORMAT_VERSION}")
        return meta

    def names(self) -> list[str]:
        """The names of the array members (the .npy members but `meta`), in the file's order."""
        return [n[:-len(".npy")] for n in self._zip.namelist()
                if n.endswith(".npy") and n != f"{META}.npy"]

    def array(self, name: str, shape: Shape | None = None, dtype: DTypeLike | None = None,
              what: str = NETWORK) -> Array:
        """The array member `name` (one of `what`), checked by `head`, against `shape` and `dtype`
        (default: its header's), by `_data`, and to be finite; else RunFileError naming it."""
        info, got_shape, got_dtype = self.head(name, what)
        want = (got_shape if shape is None else tuple(shape),
                got_dtype if dtype is None else np.dtype(dtype))
        if (got_shape, got_dtype) != want:
            raise RunFileError(self.path, (
                f"array {name}: expected shape {want[0]} {want[1]} ({what}), got shape "
                f"{got_shape} {got_dtype}; the file is damaged or not of this run"))
        array = self._data(name, info)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise RunFileError(self.path, f"array {name}: holds NaN or infinite values; the file "
                                          "is damaged")
        return array

    def head(self, name: str, what: str = NETWORK
             ) -> tuple[zipfile.ZipInfo, Shape, np.dtype[Any]]:
        """(zip entry, shape, dtype) of the .npy member `name` (`META`, or an array of `what`),
        from its first bytes only. RunFileError if there is no such member, its entry reaches
        beyond the file, `META` declares over MAX_META_BYTES, its header is unreadable or of an
        object dtype (a pickle), or its entry does not declare the bytes its header needs."""
        label = member_kind(name)[0]
        try:
            info = self._zip.getinfo(f"{name}.npy")
        except KeyError:
            raise RunFileError(self.path, NO_META if name == META else
                               f"misses the array {name} of {what}") from None
        if info.header_offset + info.compress_size > self._size:
            raise RunFileError(self.path, (
                f"{label}: its member declares {info.compress_size:,} bytes, more than the "
                "file holds; the file is truncated"))
        if name == META and info.file_size > MAX_META_BYTES:
            raise RunFileError(self.path, (
                f"{label} declares {info.file_size:,} bytes, more than the "
                f"{MAX_META_BYTES:,} a run file's JSON may take; refused unread"))
        try:
            with self._zip.open(info) as f:        # magic, version, length, at most the header
                start = f.read(len(np.lib.format.MAGIC_PREFIX) + 6 + MAX_NPY_HEADER)
            version = np.lib.format.read_magic(header := io.BytesIO(start))
            if version not in NPY_HEADER_LENGTH:
                raise ValueError(f"npy format version {version}")
            n = struct.unpack_from(NPY_HEADER_LENGTH[version], start, header.tell())[0]
            if n > MAX_NPY_HEADER:    # numpy would read all of it before its own check
                raise ValueError(f"its .npy header declares {n:,} bytes, more than the "
                                 f"{MAX_NPY_HEADER:,} a header may take")
            shape, _, dtype = getattr(np.lib.format, f"read_array_header_{version[0]}_0")(header)
        except Exception as err:            # zipfile, zlib, npy header errors of a damaged file
            raise unreadable(self.path, err, name) from None
        if dtype.hasobject:
            raise RunFileError(self.path, (
                "holds a pickled object array, which loading would have to unpickle (that can "
                f"run arbitrary code): {label}; refused"))
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size != header.tell() + nbytes:
            raise RunFileError(self.path, (
                f"{label}: its member declares {info.file_size - header.tell():,} bytes of data, "
                f"its header's shape {tuple(shape)} {dtype} needs {nbytes:,}; the file is "
                "damaged"))
        return info, tuple(shape), dtype

    def _data(self, name: str, info: zipfile.ZipInfo) -> Array:
        """The array of the member `name` (zip entry `info`) whose `head` was checked; first,
        RunFileError if it would inflate more than it can (`member_kind`: a zip bomb)."""
        label, ratio, how = member_kind(name)
        if info.compress_type != zipfile.ZIP_STORED and \
                info.file_size > ratio * info.compress_size + SMALL_MEMBER:
            raise RunFileError(self.path, (
                f"{label}: {info.compress_size:,} compressed bytes declare {info.file_size:,} "
                f"bytes, more than {how} ({ratio}x); refused unread"))
        try:
            with self._zip.open(info) as f:
                return np.lib.format.read_array(f, allow_pickle=False)
        except Exception as err:            # zipfile, zlib, EOF, CRC errors of a damaged file
            raise unreadable(self.path, err, name) from None


def member_kind(name: str) -> tuple[str, int, str]:
    """How a refusal names the member `name` (`META` or an array), the most it may inflate (as
    times its compressed bytes, plus SMALL_MEMBER), and what compresses no more."""
    return ((f"its JSON member {META!r}", MAX_META_INFLATION, "a run's JSON compresses")
            if name == META else (f"array {name}", MAX_INFLATION, "arrays of a network compress"))


def unreadable(path: Path, err: Exception, member: str = "") -> RunFileError:
    """The refusal of the file `path` whose zip directory (or `member`) failed with `err`."""
    return RunFileError(path, f"not a readable run file ({f'member {member}: ' if member else ''}"
                              f"{type(err).__name__}: {err}); it may be truncated or corrupt")


def path_problem(path: Path, mode: int | None = None) -> str | None:
    """None if `path` is a regular file (or a link to one), from its st_mode `mode` if given
    (else stat, which opens nothing); else what is wrong, to follow its name: "no such file",
    "is a folder, not a file", "is a FIFO (named pipe), not a file", ..."""
    try:
        mode = path.stat().st_mode if mode is None else mode
    except FileNotFoundError:
        return ("is a symbolic link to a file that does not exist" if path.is_symlink()
                else "no such file")
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    what = special_file(mode)
    return None if stat.S_ISREG(mode) else f"is {what}, not a file" if what else \
        "is not a regular file"


def param_arrays(params: Params, stats: Stats, prefix: str = "") -> dict[str, Array]:
    """`params` and the BN moving averages `stats` ([(mu, v)] per BN layer) as one flat dict:
    W_0, ..., b_0, ..., gamma_0, ..., beta_0, ..., mu_0, v_0, ..., named after `prefix`."""
    return {**{f"{prefix}{name}_{l}": P for name in PARAM_NAMES
               for l, P in enumerate(params[name])},
            **{f"{prefix}{key}_{l}": a for l, stat in enumerate(stats)
               for key, a in zip(STAT_NAMES, stat)}}


def network_dims(f: RunFile, hidden: Sequence[int]) -> list[int]:
    """[d, *hidden, K] of the network stored in `f` by a run of hidden layers `hidden`, d and K
    from the headers of the first and the last W. RunFileError if those do not fit `hidden`, or
    the network would have more parameters than a `Config` allows (MAX_PARAMETERS)."""
    found = []
    for l, axis, fixed in ((0, 0, hidden[0]), (len(hidden), 1, hidden[-1])):
        shape = f.head(f"W_{l}")[1]
        if len(shape) != 2 or shape[axis] != fixed or min(shape) < 1:
            raise RunFileError(f.path, (
                f"array W_{l}: expected shape {f'({fixed}, d)' if axis == 0 else f'(K, {fixed})'}"
                f" (hidden {list(hidden)} of its configuration), got shape {shape}"))
        found.append(shape[1 - axis])
    dims = [found[0], *hidden, found[1]]
    n = sum((m_in + 1) * m_out for m_in, m_out in zip(dims[:-1], dims[1:]))
    if n > MAX_PARAMETERS:
        raise RunFileError(f.path, (
            f"arrays W_0 and W_{len(hidden)}: a network of {n:,} parameters ({dims[0]:,} inputs, "
            f"{dims[-1]:,} classes), more than a configuration allows ({MAX_PARAMETERS:,}); "
            "refused unread"))
    return dims


def read_network(f: RunFile, dims: Sequence[int], batch_norm: bool, dtype: DTypeLike,
                 prefix: str = "") -> tuple[Params, Stats]:
    """(params, stats) of the network of layer sizes dims = [d, m_1, ..., K] stored in `f` (named
    as `param_arrays` names them after `prefix`), only those read, each by `RunFile.array` as
    `dtype`: W_l m_(l+1) x m_l, b_l m_(l+1) x 1, with batch norm gamma_l, beta_l, mu_l, v_l
    (positive) m_(l+1) x 1 for the hidden layers. RunFileError if one is missing, or `f` holds
    arrays of another network (a layer more, or batch norm where `batch_norm` is False)."""
    layers = len(dims) - 1
    counts = {"W": layers, "b": layers, **dict.fromkeys(("gamma", "beta", *STAT_NAMES),
                                                         layers - 1 if batch_norm else 0)}
    shapes = {(name, l): (dims[l + 1], dims[l] if name == "W" else 1)
              for name, n in counts.items() for l in range(n)}
    ours = {f"{prefix}{name}_{l}" for name, l in shapes}
    extra = [name for name in f.names() if (match := NETWORK_ARRAY.fullmatch(name))
             and match.group(1) == prefix and name not in ours]
    if extra:
        raise RunFileError(f.path, (
            f"array {extra[0]}: not part of the network of its configuration ({layers} layers"
            f"{', with' if batch_norm else ', no'} batch norm); the file is damaged or not of "
            "this run"))
    got = {name: [f.array(f"{prefix}{name}_{l}", shapes[name, l], dtype) for l in range(n)]
           for name, n in counts.items()}
    for l, v in enumerate(got["v"]):
        if (v <= 0).any():
            raise RunFileError(f.path, f"array {prefix}v_{l}: a BN variance is not positive; the "
                                       "file is damaged")
    return {name: got[name] for name in PARAM_NAMES}, list(zip(got["mu"], got["v"]))


def shown(value: Any, limit: int = 60) -> str:
    """`value` (read from JSON, or written as JSON: every caller's) as a message shows it: as
    JSON, cut to `limit` characters."""
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
