"""Fixtures of the tests of nn/."""
import numpy as np
import pytest

from assignment3.data import one_hot


@pytest.fixture
def batch():
    """A mini-batch of 8 random samples of d = 20: (X 20 x 8, one-hot Y 10 x 8, labels y)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 8))
    y = rng.integers(0, 10, 8)
    return X, one_hot(y), y
