"""Training one network: the loop (`loop`: `train`, its `Result`, the schedules), the state of a
run and what a checkpoint keeps of it (`run`), its input stream of mini-batches (`inputs`), and
what runs beside the steps (`harness`: the evaluations in the background, BLAS threads,
prefetching, stop signals, progress)."""
from .loop import (
    MATH_VERSION,
    Averaged,
    Diverged,
    Result,
    check_run,
    schedule,
    scored_average,
    train,
    train_or_diverged,
)

__all__ = ["MATH_VERSION", "Averaged", "Diverged", "Result", "check_run", "schedule",
           "scored_average", "train", "train_or_diverged"]
