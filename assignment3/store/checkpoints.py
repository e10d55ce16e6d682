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
from ..harness import State
from ..nn.types import Array, Params
from ..training import MATH_VERSION
from .provenance import code_version, machine
from .runfile import RunFileError, param_arrays, params_from, read, write

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
        vectors, whose names, shapes and dtype the stored ones must have. Raises RunFileError
        if the file is damaged or was written for another configuration, other data or by code
        whose maths differ; the file is left as it is."""
        self.identity = {"math_version": MATH_VERSION, "config": config_dict(config),
                         "data": data_fingerprint(data)}
        if not self.path.exists():
            return None
        arrays, meta = read(self.path)
        self._check(meta)
        vectors = {name: arrays.pop(name) for name in vectors_like if name in arrays}
        params, stats = params_from(arrays, len(like["W"]), len(like["gamma"]), self.path)

        def layout(params: Params, vectors: dict[str, Array]) -> object:
            return ([(P.shape, P.dtype) for arrays_ in params.values() for P in arrays_],
                    {name: (v.shape, v.dtype) for name, v in vectors.items()})
        if layout(params, vectors) != layout(like, vectors_like):
            raise RunFileError(self.path, "its arrays do not have the shapes and dtype of this "
                                          "configuration's network; the file is damaged")
        return State(step=meta["step"], params=params, stats=stats, vectors=vectors,
                     history=meta["history"], position=meta["position"],
                     seconds=meta["seconds"])

    def save(self, state: State) -> None:
        """Write `state` to the file (atomically: the previous checkpoint stays whole until the
        new one replaces it)."""
        arrays = {**param_arrays(state.params, state.stats), **state.vectors}
        write(self.path, arrays, {"kind": "checkpoint", **self.identity, **self.provenance,
                                  "step": state.step, "position": state.position,
                                  "history": state.history, "seconds": state.seconds})

    def _check(self, meta: dict[str, Any]) -> None:
        """RunFileError unless the checkpoint `meta` can be resumed by this run."""
        if meta.get("kind") != "checkpoint":
            raise RunFileError(self.path, "is a saved run, not a checkpoint; give --checkpoint "
                                          "a path of its own")
        mine, theirs = self.identity, {key: meta.get(key) for key in self.identity}
        if theirs["math_version"] != mine["math_version"]:
            raise RunFileError(self.path, (
                f"was written by code whose maths differ (math version {theirs['math_version']}, "
                f"this code's is {mine['math_version']}, code version "
                f"{meta.get('code_version')}): resuming would mix two different runs. Delete it "
                "to start the run over, or use another checkpoint path"))
        if theirs["config"] != mine["config"]:
            fields = sorted(set(mine["config"]) | set(theirs["config"] or {}))
            diff = "; ".join(f"{k}: {(theirs['config'] or {}).get(k)!r} there, "
                             f"{mine['config'].get(k)!r} here" for k in fields
                             if (theirs["config"] or {}).get(k) != mine["config"].get(k))
            raise RunFileError(self.path, f"was written for another configuration ({diff}). "
                                          "Use another checkpoint path for this run, or delete "
                                          "the file to start over")
        if theirs["data"] != mine["data"]:
            raise RunFileError(self.path, f"was written for other data ({theirs['data']}, this "
                                          f"run's: {mine['data']}). Use another checkpoint path "
                                          "for this run, or delete the file to start over")
