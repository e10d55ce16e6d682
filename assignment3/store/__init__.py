"""Runs on disk: the file format (`runfile`: arrays in .npz and JSON, written atomically, read
without unpickling), saved runs (`runs`: `save_run`, `load_run`, `reevaluate`), checkpoints of
runs in progress (`checkpoints`), and where a result comes from (`provenance`: code version,
machine, matmul rate)."""
from .checkpoints import Checkpoint
from .runfile import RunFileError
from .runs import load_run, read_run, reevaluate, save_run

__all__ = ["Checkpoint", "RunFileError", "load_run", "read_run", "reevaluate", "save_run"]
