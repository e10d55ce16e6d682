"""The on-disk format of a run: one `.npz` file holding the arrays (parameters, BN moving
averages, and in a checkpoint the momentum velocity) and one member, `meta`, holding JSON text
(configuration, history, scores, code version, machine, format version) as a numpy str array.

A file is written to `<name>.partial` beside it and renamed over `<name>`, so the name always
holds a whole file, the old one or the new one, even if the writer is killed half-way. It is read
with `np.load(..., allow_pickle=False)`: reading never unpickles anything, and a file holding an
object array (one that would have to be unpickled) is refused."""
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..nn.checks import PARAM_NAMES
from ..nn.types import Array, Params, Stats

#: Version of the file layout; a file of another version is refused.
FORMAT_VERSION = 1

#: The member holding the JSON text.
META = "meta"

#: Names of the BN moving averages of a layer: (mean, variance).
STAT_NAMES = ("mu", "v")


class RunFileError(ValueError):
    """A run or checkpoint file that cannot be used; the message names the file and says why."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        super().__init__(f"{path}: {problem}")


def write(path: str | os.PathLike[str], arrays: dict[str, Array], meta: dict[str, Any]) -> None:
    """Write `arrays` (name -> ndarray) and `meta` (a JSON-ready dict) to the file `path`
    (`write_atomic`)."""
    if META in arrays:
        raise ValueError(f"{META!r} is the name of the JSON member; give the array another name")
    text = json.dumps({"format": FORMAT_VERSION, **meta})     # fails before anything is written
    # numpy's stub lets a ** dict fill savez's allow_pickle (a bool): our member names never do
    write_atomic(path, lambda f: np.savez(f, **arrays, **{META: np.array(text)}))  # type: ignore[arg-type]


def write_atomic(path: str | os.PathLike[str], write_to: Callable[[IO[bytes]], object]) -> None:
    """Call `write_to(f)` on the binary file `<path>.partial`, flush it to disk and rename it
    over `path`: `path` holds the old file or the whole new one, never a part. On an error the
    partial file is removed."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb") as f:
            write_to(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def read(path: str | os.PathLike[str]) -> tuple[dict[str, Array], dict[str, Any]]:
    """(arrays, meta) of a file written by `write`. Raises RunFileError if the file is missing,
    truncated, corrupt, of another format version, or holds an object array."""
    path = Path(path)
    if not path.is_file():
        raise RunFileError(path, "no such file")
    with path.open("rb") as f:         # np.load takes a file not starting so for a pickle
        zip_start = f.read(4) == b"PK\x03\x04"
    if not zip_start or not zipfile.is_zipfile(path):
        raise RunFileError(path, "not a readable run file (not an .npz archive); it may be "
                                 "truncated or corrupt, or another kind of file")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {key: f[key] for key in f.files}
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise RunFileError(path, "holds a pickled object array, which loading would have to "
                                     "unpickle (that can run arbitrary code); refused") from None
        raise RunFileError(path, f"not a readable run file ({err}); it may be truncated or "
                                 "corrupt") from None
    except Exception as err:                # zipfile, zlib, EOF, OS errors of a damaged file
        raise RunFileError(path, f"not a readable run file ({type(err).__name__}: {err}); it "
                                 "may be truncated or corrupt") from None
    text = arrays.pop(META, None)
    if text is None or text.dtype.kind != "U" or text.shape != ():
        raise RunFileError(path, f"has no {META!r} member with JSON text; not a run file")
    try:
        meta = json.loads(str(text))
    except json.JSONDecodeError as err:
        raise RunFileError(path, f"its JSON member is damaged ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise RunFileError(path, f"is in run format {found}, this code reads format "
                                 f"{FORMAT_VERSION}")
    return arrays, meta


def param_arrays(params: Params, stats: Stats) -> dict[str, Array]:
    """The arrays of `params` and the BN moving averages `stats` ([(mu, v)] per BN layer) as
    one flat dict: W_0, ..., b_0, ..., gamma_0, ..., beta_0, ..., mu_0, v_0, ..."""
    arrays = {f"{name}_{l}": P for name in PARAM_NAMES for l, P in enumerate(params[name])}
    arrays.update({f"{key}_{l}": a for l, stat in enumerate(stats)
                   for key, a in zip(STAT_NAMES, stat)})
    return arrays


def params_from(arrays: dict[str, Array], layers: int, bn_layers: int,
                path: str | os.PathLike[str]) -> tuple[Params, Stats]:
    """(params, stats) from the dict of `param_arrays`, for a net of `layers` layers with
    `bn_layers` BN layers; RunFileError (naming `path`) if an array is missing."""
    counts = {"W": layers, "b": layers, "gamma": bn_layers, "beta": bn_layers}
    try:
        params = {name: [arrays[f"{name}_{l}"] for l in range(counts[name])]
                  for name in PARAM_NAMES}
        stats = [(arrays[f"mu_{l}"], arrays[f"v_{l}"]) for l in range(bn_layers)]
    except KeyError as err:
        raise RunFileError(path, f"misses the array {err.args[0]} of its configuration's "
                                 "network") from None
    return params, stats
