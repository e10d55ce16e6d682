"""The array types of the package's signatures, in the notation of the assignment: a sample is a
column, `X` is d x n, `Y` K x n, `y` holds n labels."""
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: A float array (float32 or float64; the gradient check also uses np.longdouble).
Array = NDArray[np.floating[Any]]
#: The parameter dict: {"W": [W_l], "b": [b_l], "gamma": [gamma_l], "beta": [beta_l]}.
Params = dict[str, list[Array]]
#: BN statistics: one (mu, v) pair of m_l x 1 arrays per BN layer.
Stats = list[tuple[Array, Array]]
#: Integer labels (n,).
Labels = NDArray[np.integer[Any]]
