"""Trained runs kept on disk: `save_run` writes a `training.Result` to one file in the run format
(`runfile`: arrays in .npz, everything else JSON, never unpickled), and `read_run` gives it back
exactly: the same arrays, history, scores and configuration."""
from . import runfile
from .runfile import RunFileError
from .training import MATH_VERSION, Result, config_dict, config_from_dict

#: The fields of a run's JSON that hold its `Result`'s scalars.
SCALARS = ("steps", "epochs", "seconds", "val_accuracy", "test_accuracy")


def save_run(path, result, notes=None, version=None, machine=None):
    """Write `result` to the file `path` (by convention `.npz`), with `notes` (a JSON-ready dict
    kept with it, e.g. what the run shows), the code version that trained it and the machine it
    ran on (default: this code's and this machine)."""
    meta = {"kind": "run", "math_version": MATH_VERSION, "config": config_dict(result.config),
            "history": result.history, **{key: getattr(result, key) for key in SCALARS},
            "code_version": version or runfile.code_version(),
            "machine": machine or runfile.machine(), "notes": notes or {}}
    runfile.write(path, runfile.param_arrays(result.params, result.stats), meta)


def read_run(path):
    """(Result, meta) of a file written by `save_run`; meta is its JSON (code_version, machine,
    math_version, notes, ...). Raises RunFileError if it is not such a file."""
    arrays, meta = runfile.read(path)
    if meta.get("kind") != "run":
        raise RunFileError(path, f"is a {meta.get('kind')}, not a saved run: finish its training "
                                 "(train ... --checkpoint PATH) with --save to keep the run")
    try:
        config = config_from_dict(meta["config"])
        scalars = {key: meta[key] for key in SCALARS}
        history = meta["history"]
    except (KeyError, TypeError, ValueError) as err:
        raise RunFileError(path, f"its JSON does not describe a run ({err})") from None
    params, stats = runfile.params_from(arrays, len(config.hidden) + 1,
                                        len(config.hidden) if config.batch_norm else 0, path)
    return Result(config=config, params=params, stats=stats, history=history, **scalars), meta


def load_run(path):
    """The `Result` saved in `path` (see `read_run`)."""
    return read_run(path)[0]
