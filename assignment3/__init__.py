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

The public API is re-exported here.
"""
from .config import Config
from .data import load_cifar10
from .nn import backward, compute_gradients, evaluate, forward, init_params
from .store import Checkpoint, load_run, save_run
from .training import Result, train

__version__ = "0.2.0"

__all__ = ["Checkpoint", "Config", "Result", "backward", "compute_gradients", "evaluate",
           "forward", "init_params", "load_cifar10", "load_run", "save_run", "train"]
