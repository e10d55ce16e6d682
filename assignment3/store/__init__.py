"""Runs on disk: saved runs (`runs`), checkpoints (`checkpoints`), their file format (`runfile`,
`fields`), the checked write of every output (`outputs`), and where a result comes from."""
from .checkpoints import Checkpoint
from .runfile import RunFileError
from .runs import load_run, read_run, reevaluate, save_run

__all__ = ["Checkpoint", "RunFileError", "load_run", "read_run", "reevaluate", "save_run"]
