"""Trained runs kept on disk: `save_run` writes a `training.Result` to one file in the run format
(`runfile`: arrays in .npz, everything else JSON, never unpickled), `read_run` gives it back
exactly (the same arrays, history, scores and configuration), and `reevaluate` scores it again
on the data."""
import os
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from ..config import Config, config_dict
from ..data import CIFAR10, DataError, zca_whiten
from ..nn.augment import flipped
from ..nn.cost import evaluate, test_scores
from ..nn.network import softmax
from ..training import MATH_VERSION, Averaged, Result
from . import provenance, runfile
from .fields import check_history, config_field, field, integer, number
from .runfile import RunFileError

Path_ = str | os.PathLike[str]

#: The fields of a run's JSON that hold its `Result`'s scalars.
SCALARS = ("steps", "epochs", "seconds", "val_accuracy", "test_accuracy")


def save_run(path: Path_, result: Result, notes: dict[str, Any] | None = None,
             version: str | None = None, machine: dict[str, Any] | None = None) -> None:
    """Write `result` to the file `path` (by convention `.npz`), with `notes` (a JSON-ready dict
    kept with it, e.g. what the run shows), the code version that trained it and the machine it
    ran on (default: this code's and this machine). The averaged weights of a run with SWA are
    kept beside its weights (arrays named after `runfile.AVERAGED`), their scores in "swa"."""
    arrays = runfile.param_arrays(result.params, result.stats)
    swa = {}
    if result.averaged is not None:
        averaged = result.averaged
        arrays.update(runfile.param_arrays(averaged.params, averaged.stats, runfile.AVERAGED))
        swa = {"swa": {"val_accuracy": averaged.val_accuracy,
                       "test_accuracy": averaged.test_accuracy}}
    meta = {"kind": "run", "math_version": MATH_VERSION, "config": config_dict(result.config),
            "history": result.history, **{key: getattr(result, key) for key in SCALARS},
            "code_version": version or provenance.code_version(),
            "machine": machine or provenance.machine(), "notes": notes or {}, **swa}
    runfile.write(path, arrays, meta)


def read_run(path: Path_) -> tuple[Result, dict[str, Any]]:
    """(Result, meta) of a file written by `save_run`; meta is its JSON (code_version, machine,
    math_version, notes, ...). Raises RunFileError, naming the file and what is wrong with it,
    if it is not such a file: every field of its JSON is checked before use, and only the
    arrays of its configuration's network are read, each checked against it (`runfile`)."""
    with runfile.RunFile(path) as f:
        meta = f.meta
        if meta.get("kind") == "checkpoint":
            raise RunFileError(path, "is a checkpoint, not a saved run: finish its training "
                                     "(train ... --checkpoint PATH) with --save to keep the run")
        field(path, meta, "kind", lambda v: v == "run", '"run" (a saved run)')
        config = config_field(path, meta)
        steps = field(path, meta, "steps", integer(1), "an integer >= 1")
        scalars = {"steps": steps,
                   "epochs": field(path, meta, "epochs", number(0), "a number >= 0"),
                   "seconds": field(path, meta, "seconds", number(0), "a number >= 0"),
                   **{key: field(path, meta, key, number(0, 1), "a number in [0, 1]")
                      for key in ("val_accuracy", "test_accuracy")}}
        history = check_history(path, meta, steps)
        field(path, meta, "math_version", integer(0), "an integer >= 0")
        field(path, meta, "code_version", lambda v: isinstance(v, str), "a string")
        for key in ("machine", "notes"):
            field(path, meta, key, lambda v: isinstance(v, dict), "an object")
        dims = runfile.network_dims(f, config.hidden)
        params, stats = runfile.read_network(f, dims, config.batch_norm, config.dtype)
        averaged = _averaged(f, dims, config) if config.swa else None
    return Result(config=config, params=params, stats=stats, history=history, **scalars,
                  averaged=averaged), meta


def _averaged(f: runfile.RunFile, dims: list[int], config: Config) -> Averaged:
    """The averaged weights stored in `f` by a run of `config`, with their scores."""
    scores = field(f.path, f.meta, "swa", lambda v: isinstance(v, dict)
                   and all(number(0, 1)(v.get(key)) for key in ("val_accuracy", "test_accuracy")),
                   'an object of "val_accuracy" and "test_accuracy", numbers in [0, 1]')
    params, stats = runfile.read_network(f, dims, config.batch_norm, config.dtype,
                                         runfile.AVERAGED)
    return Averaged(params, stats, scores["val_accuracy"], scores["test_accuracy"])


def load_run(path: Path_) -> Result:
    """The `Result` saved in `path` (see `read_run`)."""
    return read_run(path)[0]


def reevaluate(data: CIFAR10, result: Result, flip_average: bool = True) -> dict[str, float]:
    """Validation and test accuracy of a stored run, recomputed from its parameters (with the
    ZCA whitening refitted on the training split if the run used it, and the run's BLAS
    threads, so that they are the run's own numbers), and with `flip_average` the test
    accuracy with flip averaging: the mean of the probabilities of each test image and its
    mirror image (a test-time augmentation; the training is the same). A run with averaged
    weights also gets their scores, "val, averaged" and "test, averaged". DataError if the
    run's network does not fit the data (another input size or number of classes)."""
    d, K = result.params["W"][0].shape[1], result.params["W"][-1].shape[0]
    if (data.train.X.shape[0], data.train.Y.shape[0]) != (d, K):
        raise DataError(f"the run's network takes {d} inputs and {K} classes, the data has "
                        f"{data.train.X.shape[0]} and {data.train.Y.shape[0]}: evaluate it on "
                        f"the data it was trained on")
    if result.config.zca:
        data = zca_whiten(data)
    params, stats, config = result.params, result.stats, result.config
    net = config.net
    splits = (("val", data.val), ("test", data.test))
    with threadpool_limits(config.blas_threads, user_api="blas"):
        scores = {name: evaluate(params, split.X, split.y, 0.0, stats, net=net)["accuracy"]
                  for name, split in splits}
        if result.averaged is not None:
            avg = result.averaged
            scores.update({f"{name}, averaged": evaluate(avg.params, split.X, split.y, 0.0,
                                                         avg.stats, net=net)["accuracy"]
                           for name, split in splits})
        if flip_average:
            P = (softmax(test_scores(params, data.test.X, stats, net=net))
                 + softmax(test_scores(params, flipped(data.test.X), stats, net=net)))
            scores["test, flip-averaged"] = float(np.mean(P.argmax(axis=0) == data.test.y))
    return scores
