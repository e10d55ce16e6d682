"""k-layer fully connected networks with batch normalization on CIFAR-10, in numpy (KTH DD2424
Assignment 3).

The package, from the bottom up (each layer imports only from the ones below it):

- `nn`: the assignment's maths, numpy only: the network's forward and backward passes with BN,
  the cost, the gradient check, the optimiser, augmentation.
- `data`, `config`, `training` (with `minibatches` and `harness`), `compute`, `env`,
  `signals`: CIFAR-10, one run's settings, the training loop and what runs beside it.
- `store`: runs on disk (saved runs, checkpoints, where a result comes from).
- `scale`: many runs at once, in local processes or on a Dask cluster, and the lambda search.
- `report`: the report's experiments, section 6, figures, tables and the PDF; and `cli`.

The public API is re-exported here, each name imported on first use, so that importing the
package is instant and `python -m assignment3` turns a Ctrl-C while its modules load into one
line (`__main__`).
"""
import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:                              # for type checkers: the names as re-exports
    from .config import Config as Config
    from .data import load_cifar10 as load_cifar10
    from .nn import backward as backward
    from .nn import compute_gradients as compute_gradients
    from .nn import evaluate as evaluate
    from .nn import forward as forward
    from .nn import init_params as init_params
    from .store import Checkpoint as Checkpoint
    from .store import load_run as load_run
    from .store import save_run as save_run
    from .training import Result as Result
    from .training import train as train

__version__ = "0.3.0"

#: Each public name and the module that defines it.
_HOME = {"Config": "config", "load_cifar10": "data", "backward": "nn",
         "compute_gradients": "nn", "evaluate": "nn", "forward": "nn", "init_params": "nn",
         "Checkpoint": "store", "load_run": "store", "save_run": "store", "Result": "training",
         "train": "training"}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value                   # imported once
    return value
