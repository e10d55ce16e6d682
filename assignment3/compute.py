"""What a run costs and what it ran on: parameters, the FLOP of a training step, a run's training
compute counted as 6 x weights x samples seen (the count of the compute budget of report section
6), the machine's float32 matmul rate and a one-line description of the machine."""
import time

import numpy as np
from threadpoolctl import threadpool_limits

from .data import D, K


def dims(config, d=D, K=K):
    """Layer sizes [d, m_1, ..., m_(k-1), K] of a configuration's network."""
    return [d, *config.hidden, K]


def n_weights(config, d=D, K=K):
    """Entries of the weight matrices W_1, ..., W_k (the multiply-adds per sample of a forward
    pass)."""
    sizes = dims(config, d, K)
    return sum(m_in * m_out for m_in, m_out in zip(sizes[:-1], sizes[1:]))


def n_parameters(config, d=D, K=K):
    """Trainable parameters (W, b, gamma, beta) of a configuration's network."""
    biases = sum(config.hidden) + K
    return n_weights(config, d, K) + biases + (2 * sum(config.hidden) if config.batch_norm else 0)


def step_gflop(config, d=D, K=K):
    """GFLOP of the matrix products of one training step: per layer W H forward, G H^T for dW
    and (except the first layer) W^T G, each 2 m_in m_out n_batch FLOP."""
    sizes = dims(config, d, K)
    products = sum((2 if l == 0 else 3) * m_in * m_out
                   for l, (m_in, m_out) in enumerate(zip(sizes[:-1], sizes[1:])))
    return 2 * products * config.n_batch / 1e9


def training_flop(config, steps, d=D, K=K):
    """Training compute of a run of `steps` mini-batches, counted as in the literature on
    scaling: 6 FLOP per weight per sample seen (2 forward, 4 backward)."""
    return 6 * n_weights(config, d, K) * steps * config.n_batch


def matmul_rate(config, d=D, repeats=20):
    """GFLOP/s of this machine's float32 product of `config`'s first layer, W_1 (m_1 x d) times a
    mini-batch (d x n_batch), with its BLAS threads; median of `repeats`. It bounds the speed of
    the training steps, so it tells how fast the machine was when a run was timed."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((config.hidden[0], d), dtype=np.float32)
    X = rng.standard_normal((d, config.n_batch), dtype=np.float32)
    times = []
    with threadpool_limits(config.blas_threads, user_api="blas"):
        for _ in range(repeats + 1):                   # the first product warms up
            start = time.perf_counter()
            W @ X
            times.append(time.perf_counter() - start)
    return 2 * W.size * config.n_batch / np.median(times[1:]) / 1e9


def describe(machine_info):
    """One line for a `runfile.machine()` dict (or "not recorded" for None)."""
    if not machine_info:
        return "not recorded"
    return "{cpu}, {cores} cores, numpy {numpy}, BLAS {blas}".format(**machine_info)
