"""Trained runs kept on disk: `save_run` writes a `training.Result` to one file in the run format
(`runfile`: arrays in .npz, everything else JSON, never unpickled), `read_run` gives it back
exactly (the same arrays, history, scores and configuration), and `reevaluate` scores it again
on the data."""
import os
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from ..config import config_dict
from ..data import CIFAR10, DataError, zca_whiten
from ..nn.augment import flipped
from ..nn.cost import evaluate, test_scores
from ..nn.network import softmax
from ..training import MATH_VERSION, Averaged, Result
from . import fields, provenance, runfile
from .fields import OBJECT, STRING, field, integer, number

Path_ = str | os.PathLike[str]

#: The scores of a run, and of its averaged weights (in the field "swa").
ACCURACIES = ("val_accuracy", "test_accuracy")

#: The fields of a run's JSON that hold its `Result`'s scalars (`fields.fields`), and those that
#: say where it comes from.
SCALAR_FIELDS = {"steps": (integer(1), "an integer >= 1"), "epochs": (number(0), "a number >= 0"),
                 "seconds": (number(0), "a number >= 0"),
                 **dict.fromkeys(ACCURACIES, (number(0, 1), "a number in [0, 1]"))}
PROVENANCE_FIELDS = {"math_version": (integer(0), "an integer >= 0"), "code_version": STRING,
                     "machine": OBJECT, "notes": OBJECT}


def weights(result: Result) -> list[tuple[str, Result | Averaged]]:
    """The weights of `result`, each with the prefix of its arrays and scores: its own (""), and
    its averaged weights (`runfile.AVERAGED`) if it has them; each has params and stats."""
    return [(prefix, w) for prefix, w in (("", result), (runfile.AVERAGED, result.averaged))
            if w is not None]


def save_run(path: Path_, result: Result, notes: dict[str, Any] | None = None,
             version: str | None = None, machine: dict[str, Any] | None = None) -> None:
    """Write `result` to the file `path` (by convention `.npz`), with `notes` (a JSON-ready dict,
    e.g. what the run shows), the code version and the machine (default: this code's and this
    machine); a run with SWA with its averaged weights (`runfile.AVERAGED`), scores in "swa"."""
    arrays = {name: a for prefix, w in weights(result)
              for name, a in runfile.param_arrays(w.params, w.stats, prefix).items()}
    swa = {} if (averaged := result.averaged) is None else \
        {"swa": {key: getattr(averaged, key) for key in ACCURACIES}}
    runfile.write(path, arrays, {
        "kind": "run", "math_version": MATH_VERSION, "config": config_dict(result.config),
        "history": result.history, **{key: getattr(result, key) for key in SCALAR_FIELDS},
        "code_version": version or provenance.code_version(),
        "machine": machine or provenance.machine(), "notes": notes or {}, **swa})


def read_run(path: Path_) -> tuple[Result, dict[str, Any]]:
    """(Result, meta) of a file written by `save_run`; meta is its JSON (code_version, machine,
    math_version, notes, ...). RunFileError, naming the file and what is wrong with it, if it is
    not such a file (every field and array checked before use: `runfile`)."""
    with runfile.RunFile(path) as f:
        meta = f.meta
        if meta.get("kind") == "checkpoint":
            raise runfile.RunFileError(path, "is a checkpoint, not a saved run: finish its "
                                             "training (train ... --checkpoint PATH) with --save "
                                             "to keep the run")
        field(path, meta, "kind", lambda v: v == "run", '"run" (a saved run)')
        config = fields.config_field(path, meta)
        scalars = fields.fields(path, meta, SCALAR_FIELDS)
        history = fields.check_history(path, meta, fields.increasing(scalars["steps"]),
                                       f"increasing steps in 1..{scalars['steps']}")
        fields.fields(path, meta, PROVENANCE_FIELDS)
        dims = runfile.network_dims(f, config.hidden)
        params, stats = runfile.read_network(f, dims, config.batch_norm, config.dtype)
        averaged = None
        if config.swa:                      # the averaged weights, with their scores
            scores = field(path, meta, "swa", lambda v: fields.is_object(v)
                           and all(number(0, 1)(v.get(key)) for key in ACCURACIES),
                           'an object of "val_accuracy" and "test_accuracy", numbers in [0, 1]')
            averaged = Averaged(*runfile.read_network(f, dims, config.batch_norm, config.dtype,
                                                      runfile.AVERAGED),
                                *(scores[key] for key in ACCURACIES))
    return Result(config=config, params=params, stats=stats, history=history, **scalars,
                  averaged=averaged), meta


def load_run(path: Path_) -> Result:
    """The `Result` saved in `path` (see `read_run`)."""
    return read_run(path)[0]


def reevaluate(data: CIFAR10, result: Result, flip_average: bool = True) -> dict[str, float]:
    """The accuracies of a stored run, recomputed from its parameters (its ZCA whitening, if any,
    refitted on the training split; its BLAS threads), named as in `Result.summary`: val_accuracy,
    test_accuracy (swa_... for averaged weights), and with `flip_average` the mean probabilities
    of each test image and its mirror image's, test_accuracy_flip_averaged. DataError if the
    run's network does not fit the data (another input size or number of classes)."""
    d, K = result.params["W"][0].shape[1], result.params["W"][-1].shape[0]
    if (data.train.X.shape[0], data.train.Y.shape[0]) != (d, K):
        raise DataError(f"the run's network takes {d} inputs and {K} classes, the data has "
                        f"{data.train.X.shape[0]} and {data.train.Y.shape[0]}: evaluate it on "
                        f"the data it was trained on")
    if result.config.zca:
        data = zca_whiten(data)
    net = result.config.net
    with threadpool_limits(result.config.blas_threads, user_api="blas"):
        scores = {f"{which}{name}_accuracy":
                  evaluate(w.params, split.X, split.y, 0.0, w.stats, net=net)["accuracy"]
                  for which, w in weights(result)
                  for name, split in (("val", data.val), ("test", data.test))}
        if flip_average:
            P = (softmax(test_scores(result.params, data.test.X, result.stats, net=net))
                 + softmax(test_scores(result.params, flipped(data.test.X), result.stats,
                                       net=net)))
            scores["test_accuracy_flip_averaged"] = float(np.mean(P.argmax(axis=0) == data.test.y))
    return scores
