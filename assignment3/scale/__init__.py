"""Many runs at once: in local worker processes (`parallel`: `train_many`, `train_each`), on a
Dask cluster (`cluster`), and the coarse-to-fine search over lambda built on them (`search`)."""
from .parallel import train_each, train_many
from .search import coarse_to_fine

__all__ = ["coarse_to_fine", "train_each", "train_many"]
