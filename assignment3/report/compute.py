"""What a run costs: parameters, the FLOP of a training step, and a run's training compute
counted as 6 x weights x samples seen (the count of the compute budget of report section 6)."""
from ..config import Config
from ..data import D, K


def dims(config: Config, d: int = D, K: int = K) -> list[int]:
    """Layer sizes [d, m_1, ..., m_(k-1), K] of a configuration's network."""
    return [d, *config.hidden, K]


def n_weights(config: Config, d: int = D, K: int = K) -> int:
    """Entries of the weight matrices W_1, ..., W_k (the multiply-adds per sample of a forward
    pass)."""
    sizes = dims(config, d, K)
    return sum(m_in * m_out for m_in, m_out in zip(sizes[:-1], sizes[1:]))


def n_parameters(config: Config, d: int = D, K: int = K) -> int:
    """Trainable parameters (W, b, gamma, beta) of a configuration's network."""
    biases = sum(config.hidden) + K
    return n_weights(config, d, K) + biases + (2 * sum(config.hidden) if config.batch_norm else 0)


def step_gflop(config: Config, d: int = D, K: int = K) -> float:
    """GFLOP of the matrix products of one training step: per layer W H forward, G H^T for dW
    and (except the first layer, d x m_1) W^T G, each 2 m_in m_out n_batch FLOP."""
    first = d * dims(config, d, K)[1]
    return 2 * (3 * n_weights(config, d, K) - first) * config.n_batch / 1e9


def training_flop(config: Config, steps: int, d: int = D, K: int = K) -> int:
    """Training compute of a run of `steps` mini-batches, counted as in the literature on
    scaling: 6 FLOP per weight per sample seen (2 forward, 4 backward)."""
    return 6 * n_weights(config, d, K) * steps * config.n_batch
