"""Independent training runs (seeds, lambda values, the sigma grid) in parallel processes."""
import os

from joblib import Parallel, delayed

from .training import train


def default_jobs():
    """Worker processes: $ASSIGNMENT3_JOBS if set, else one per core."""
    return int(os.environ.get("ASSIGNMENT3_JOBS", os.cpu_count() or 1))


def train_many(data, configs, n_jobs=None):
    """Train every `Config` in `configs` on `data`; returns the `Result`s in the same order.

    With n_jobs > 1 the runs go to joblib's loky worker processes, each limited to one BLAS
    thread; the data arrays reach them memory-mapped, not copied. Each run is as repeatable as
    in the main process: its seed fixes everything."""
    n_jobs = min(n_jobs or default_jobs(), len(configs))
    if n_jobs <= 1:
        return [train(data, config) for config in configs]
    return Parallel(n_jobs=n_jobs, backend="loky", inner_max_num_threads=1)(
        delayed(train)(data, config) for config in configs)
