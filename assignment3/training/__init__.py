"""Training one network: the loop (`loop`: `train`, its `Result`, the schedules), its input stream
of mini-batches (`inputs`), and the run in progress (`harness`: its state and what a checkpoint
keeps of it, and what runs beside the steps: the evaluations in the background, BLAS threads,
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
