"""Checkpoints: the whole state of a training run, in the run format (`runfile`), written at
every evaluation and when a run is interrupted, so that `training.train` can resume the run and
finish it bit for bit as the run that was never interrupted. What a checkpoint holds (arrays,
and the optimiser's `nn.optim.FlatParams.vectors`) and what resumes it: docs/runs.md,
"Checkpoints and resuming"."""
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
from ..training.harness import State
from ..training.inputs import STREAMS
from .fields import CONFIG, OBJECT, STRING, check_history, fields, integer, list_of, number, shaped
from .outputs import OutputError
from .provenance import code_version, machine
from .runfile import RunFile, RunFileError, param_arrays, read_network, shown, write

#: Training images whose bytes enter the data fingerprint (with the sizes, mean and std).
FINGERPRINT_IMAGES = 100


def data_fingerprint(data: CIFAR10) -> dict[str, Any]:
    """What identifies the data a run trains on: the sizes of its splits and a CRC-32 of the
    training mean and std and of the first training images."""
    parts = (data.mean, data.std, data.train.X[:, :FINGERPRINT_IMAGES])
    return {"sizes": [int(s.X.shape[1]) for s in (data.train, data.val, data.test)],
            "crc32": zlib.crc32(b"".join(np.ascontiguousarray(a).tobytes() for a in parts))}


class Checkpoint:
    """The checkpoint file `path` of one run, for `training.train(..., checkpoint=...)`; what may
    resume it is taken at `load`, the code version and the machine once, here."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.identity: dict[str, Any] = {}
        self.provenance = {"code_version": code_version(), "machine": machine()}

    def load(self, config: Config, data: CIFAR10, like: Params,
             vectors_like: dict[str, Array]) -> State | None:
        """The `State` stored in the file for the run of `config` on `data`, or None if there
        is no file. `like`, `vectors_like`: the run's fresh params and state vectors, whose
        names, shapes and dtype the stored ones must have (only those are read). RunFileError
        naming the file and the field or array if the path is no file, the file is damaged or
        not of this run (`_check`), or not at a point this run can be at (a step outside 1..its
        total, a history other than its evaluations up to the step, ...); the file is kept."""
        self.identity = {"math_version": MATH_VERSION, "config": config_dict(config),
                         "data": data_fingerprint(data)}
        if not os.path.lexists(self.path):
            return None
        batches = data.train.n // config.n_batch
        total, eval_every, _ = schedule(config, batches)
        with RunFile(self.path) as f:
            self._check(f.meta)
            found = fields(self.path, f.meta, {
                "step": (integer(1, total), f"an integer in 1..{total} (the steps of this run; a "
                                            "checkpoint is written after a step)"),
                "position": ({"epoch": RANDOM_STATE,
                              "batch": (integer(1, batches), f"an integer in 1..{batches} (the "
                                                             "mini-batches of an epoch)"),
                              "streams": (dict.fromkeys(STREAMS, RANDOM_STATE), "an object with "
                                          f"the random states of {', '.join(STREAMS)}")},
                             'an object with "epoch", "batch" and "streams" (where the input '
                             "stream stands)"),
                "seconds": (number(0), "a number >= 0")})
            step = found["step"]
            evaluated = [*range(eval_every, step + 1, eval_every),        # and the last step's
                         *([total] if step == total and total % eval_every else [])]
            history = check_history(
                self.path, f.meta, lambda steps: steps == evaluated,
                f"the evaluations of this run up to step {step} (every {eval_every} "
                f"step{'s' * (eval_every > 1)} and at the last), {shown(evaluated)}")
            params, stats = read_network(f, [like["W"][0].shape[1],
                                             *(W.shape[0] for W in like["W"])],
                                         bool(like["gamma"]), like["W"][0].dtype)
            return State(step=step, params=params, stats=stats, history=history,
                         position=found["position"], seconds=float(found["seconds"]), vectors={
                             name: f.array(name, v.shape, v.dtype, "its configuration's optimiser")
                             for name, v in vectors_like.items()})

    def save(self, state: State) -> None:
        """Write `state` to the file (atomically: the previous checkpoint stays whole until the
        new one replaces it)."""
        try:
            write(self.path, {**param_arrays(state.params, state.stats), **state.vectors},
                  {"kind": "checkpoint", **self.identity, **self.provenance, "step": state.step,
                   "position": state.position, "history": state.history,
                   "seconds": state.seconds})
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
        found = fields(path, meta, IDENTITY_FIELDS)
        if found["math_version"] != mine["math_version"]:
            raise RunFileError(path, (
                f"was written by code whose maths differ (math version {found['math_version']}, "
                f"this code's is {mine['math_version']}, code version "
                f"{shown(found['code_version'], 40)}): resuming would mix two different runs. "
                "Delete it to start the run over, or use another checkpoint path"))
        # a field added to Config since the file was written: the older code did its default
        theirs = {**config_dict(Config()), **found["config"]}
        if theirs != mine["config"]:
            diff = "; ".join(f"{k}: {shown(theirs.get(k), 40)} there, {shown(v, 40)} here"
                             for k, v in {**theirs, **mine["config"]}.items()
                             if theirs.get(k) != mine["config"].get(k))
            raise RunFileError(path, f"was written for another configuration ({diff}). Use "
                                     "another checkpoint path for this run, or delete the file to "
                                     "start over")
        if found["data"] != mine["data"]:
            raise RunFileError(path, f"was written for other data ({shown(found['data'])}, this "
                                     f"run's: {shown(mine['data'])}). Use another checkpoint path "
                                     "for this run, or delete the file to start over")


#: Whether a value is the state of a PCG64 bit generator (numpy's default), as
#: `bit_generator.state` gives it (and as a position of `minibatches.inputs` holds it).
is_random_state = shaped(bit_generator=lambda v: v == "PCG64",
                         state=shaped(state=integer(0, (1 << 128) - 1),
                                      inc=integer(0, (1 << 128) - 1)),
                         has_uint32=integer(0, 1), uinteger=integer(0, (1 << 32) - 1))

#: A field of a random state (`fields.fields`).
RANDOM_STATE = (is_random_state, "a PCG64 random state")

#: The fields of a checkpoint's JSON that say which run it is of and which code wrote it, in the
#: order checked: a field of the wrong type is refused before a value that differs from this run's.
IDENTITY_FIELDS = {
    "kind": (lambda v: v == "checkpoint", '"checkpoint"'), "code_version": STRING,
    "machine": OBJECT, "math_version": (integer(0), "an integer >= 0"),
    "config": CONFIG,
    "data": (shaped(sizes=list_of(is_int, 3), crc32=is_int),
             'an object {"sizes": [3 integers], "crc32": an integer}')}
