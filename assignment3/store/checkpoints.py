"""Checkpoints: the whole state of a training run, in the run format (`runfile`), written at
every evaluation and when a run is interrupted, so that `training.train` can resume the run and
finish it bit for bit as the run that was never interrupted.

A checkpoint holds the parameters, the BN moving averages and the optimiser's state vectors (the
momentum velocity; `nn.optim.FlatParams.vectors`) as arrays, and as JSON: the step, the
position of the run's input stream (the random states of shuffling, augmentation and dropout,
the current epoch's shuffle and the place in it), the history of the evaluations done, the
seconds trained, and what it may be resumed by: the configuration, a fingerprint of the data
and the version of the maths."""
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config, config_dict
from ..data import CIFAR10
from ..nn.checks import is_int
from ..nn.types import Array, Params
from ..training import MATH_VERSION, schedule
from ..training.inputs import STREAMS, Position
from ..training.run import History, State
from .fields import check_history, field, integer, number
from .outputs import OutputError
from .provenance import code_version, machine
from .runfile import RunFile, RunFileError, param_arrays, read_network, shown, write

#: Training images whose bytes enter the data fingerprint (with the sizes, mean and std).
FINGERPRINT_IMAGES = 100


def data_fingerprint(data: CIFAR10) -> dict[str, Any]:
    """What identifies the data a run trains on: the sizes of its splits and a CRC-32 of the
    training mean and std and of the first training images."""
    parts = (data.mean, data.std, data.train.X[:, :FINGERPRINT_IMAGES])
    crc = 0
    for a in parts:
        crc = zlib.crc32(np.ascontiguousarray(a).tobytes(), crc)
    return {"sizes": [int(s.X.shape[1]) for s in (data.train, data.val, data.test)],
            "crc32": crc}


class Checkpoint:
    """The checkpoint file `path` of one run, for `training.train(..., checkpoint=...)`. What it
    may be resumed by (the run's configuration, the `data_fingerprint` of its data and the
    `MATH_VERSION` of the code) is taken when the run loads it; the code version and the
    machine are looked up once, here, not at every write."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.identity: dict[str, Any] = {}
        self.provenance = {"code_version": code_version(), "machine": machine()}

    def load(self, config: Config, data: CIFAR10, like: Params,
             vectors_like: dict[str, Array]) -> State | None:
        """The `State` stored in the file for the run of `config` on `data`, or None if there
        is no file. `like`, `vectors_like`: the run's freshly initialised params and state
        vectors, whose names, shapes and dtype the stored ones must have (only those arrays
        are read, each after its header is checked). Raises RunFileError, naming the file and
        the field or array, if the path is no file, the file is damaged, was written for another
        configuration, other data or by code whose maths differ, or a field of its JSON is not
        one this run can be at (a step outside 1..its total, a position outside its epochs, a
        history other than its evaluations up to the step, ...); the file is left as it is."""
        self.identity = {"math_version": MATH_VERSION, "config": config_dict(config),
                         "data": data_fingerprint(data)}
        if not os.path.lexists(self.path):
            return None
        batches = data.train.n // config.n_batch
        total, eval_every, _ = schedule(config, batches)
        with RunFile(self.path) as f:
            self._check(f.meta)
            step, position, history, seconds = self._progress(f.meta, total, eval_every,
                                                              batches)
            dims = [like["W"][0].shape[1], *(W.shape[0] for W in like["W"])]
            params, stats = read_network(f, dims, bool(like["gamma"]), like["W"][0].dtype)
            vectors = {name: f.array(name, v.shape, v.dtype, "its configuration's optimiser")
                       for name, v in vectors_like.items()}
        return State(step=step, params=params, stats=stats, vectors=vectors, history=history,
                     position=position, seconds=seconds)

    def save(self, state: State) -> None:
        """Write `state` to the file (atomically: the previous checkpoint stays whole until the
        new one replaces it)."""
        arrays = {**param_arrays(state.params, state.stats), **state.vectors}
        try:
            write(self.path, arrays, {"kind": "checkpoint", **self.identity, **self.provenance,
                                      "step": state.step, "position": state.position,
                                      "history": state.history, "seconds": state.seconds})
        except OSError as err:
            raise OutputError(f"could not write the checkpoint {self.path} at step {state.step} "
                              f"({err.strerror or err}); a checkpoint written there before is "
                              f"intact: make room (or fix the folder) and run the same command "
                              f"to resume from it") from None

    def _check(self, meta: dict[str, Any]) -> None:
        """RunFileError unless the checkpoint `meta` can be resumed by this run: a checkpoint
        (its JSON fields of the right types) of this configuration, data and maths."""
        path, mine = self.path, self.identity
        if meta.get("kind") == "run":
            raise RunFileError(path, "is a saved run, not a checkpoint; give --checkpoint a path "
                                     "of its own")
        field(path, meta, "kind", lambda v: v == "checkpoint", '"checkpoint"')
        version = field(path, meta, "code_version", lambda v: isinstance(v, str), "a string")
        field(path, meta, "machine", lambda v: isinstance(v, dict), "an object")
        math_version = field(path, meta, "math_version", integer(0), "an integer >= 0")
        if math_version != mine["math_version"]:
            raise RunFileError(path, (
                f"was written by code whose maths differ (math version {math_version}, this "
                f"code's is {mine['math_version']}, code version {shown(version, 40)}): resuming "
                "would mix two different runs. Delete it to start the run over, or use another "
                "checkpoint path"))
        theirs = field(path, meta, "config", lambda v: isinstance(v, dict),
                       "an object (a configuration)")
        # a field added to Config since the checkpoint was written has its default there: the
        # older code did what the default does
        theirs = {**config_dict(Config()), **theirs}
        if theirs != mine["config"]:
            diff = "; ".join(f"{k}: {shown(theirs.get(k), 40)} there, {shown(v, 40)} here"
                             for k, v in {**theirs, **mine["config"]}.items()
                             if theirs.get(k) != mine["config"].get(k))
            raise RunFileError(path, f"was written for another configuration ({diff}). Use "
                                     "another checkpoint path for this run, or delete the file to "
                                     "start over")
        data = field(path, meta, "data", _is_fingerprint,
                     'an object {"sizes": [3 integers], "crc32": an integer}')
        if data != mine["data"]:
            raise RunFileError(path, f"was written for other data ({shown(data)}, this run's: "
                                     f"{shown(mine['data'])}). Use another checkpoint path for "
                                     "this run, or delete the file to start over")

    def _progress(self, meta: dict[str, Any], total: int, eval_every: int, batches: int
                  ) -> tuple[int, Position, History, float]:
        """(step, position, history, seconds) of the checkpoint `meta` of this run, whose
        `total` steps, with an evaluation every `eval_every` steps and at the last, go
        through `batches` mini-batches per epoch; RunFileError naming the field unless each is
        one this run can be at."""
        path = self.path
        step = field(path, meta, "step", integer(1, total),
                     f"an integer in 1..{total} (the steps of this run; a checkpoint is written "
                     "after a step)")
        position = field(path, meta, "position", lambda v: isinstance(v, dict) and
                         set(v) == {"epoch", "batch", "streams"},
                         'an object with "epoch", "batch" and "streams" (where the input stream '
                         "stands)")
        field(path, position, "epoch", is_random_state, "a PCG64 random state", "position")
        field(path, position, "batch", integer(1, batches),
              f"an integer in 1..{batches} (the mini-batches of an epoch)", "position")
        streams = field(path, position, "streams", lambda v: isinstance(v, dict) and
                        set(v) == set(STREAMS), "an object with the random states of "
                        + ", ".join(STREAMS), "position")
        for name in STREAMS:
            field(path, streams, name, is_random_state, "a PCG64 random state",
                  "position.streams")
        history = check_history(path, meta, step)
        evaluated = list(range(eval_every, step + 1, eval_every))
        if step == total and total % eval_every:
            evaluated.append(total)
        if history["step"] != evaluated:
            raise RunFileError(path, (
                f"field 'history.step': expected the evaluations of this run up to step {step} "
                f"(every {eval_every} step{'s' * (eval_every > 1)} and at the last), "
                f"{shown(evaluated)}, got "
                f"{shown(history['step'])}"))
        seconds = field(path, meta, "seconds", number(0), "a number >= 0")
        return step, position, history, float(seconds)


def _is_fingerprint(value: Any) -> bool:
    """Whether `value` has the form of a `data_fingerprint`."""
    return (isinstance(value, dict) and set(value) == {"sizes", "crc32"}
            and isinstance(value["sizes"], list) and len(value["sizes"]) == 3
            and all(is_int(n) for n in value["sizes"]) and is_int(value["crc32"]))


def is_random_state(value: Any) -> bool:
    """Whether `value` is the state of a PCG64 bit generator (numpy's default), as
    `bit_generator.state` gives it (and as a position of `minibatches.inputs` holds it)."""
    if not (isinstance(value, dict) and set(value) == {"bit_generator", "state", "has_uint32",
                                                        "uinteger"}):
        return False
    inner = value["state"]
    return bool(value["bit_generator"] == "PCG64" and isinstance(inner, dict)
            and set(inner) == {"state", "inc"}
            and all(is_int(v) and 0 <= v < 1 << 128 for v in inner.values())
            and is_int(value["has_uint32"]) and value["has_uint32"] in (0, 1)
            and is_int(value["uinteger"]) and 0 <= value["uinteger"] < 1 << 32)
