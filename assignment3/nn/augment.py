"""Input transforms beyond the assignment: ZCA whitening (fitted on a data set by
`data.zca_whiten`) and on-the-fly augmentation.

Images are columns of X (d x n, d = 3072 = 3 colour planes of 32 x 32, row-major), as in
`assignment3.data`. Augmentation works on a mini-batch given as rows (n x d, i.e. `X.T[idx]`),
so the training set itself is never copied.
"""
import numpy as np
from numpy.typing import NDArray

from .types import Array

SIDE, CHANNELS = 32, 3

#: eps of the ZCA whitening, as a fraction of the covariance's mean eigenvalue.
ZCA_EPS_SCALE = 0.1


def fit_zca(X: Array, eps_scale: float = ZCA_EPS_SCALE, chunk: int = 5000) -> NDArray[np.float64]:
    """ZCA whitening matrix (d x d, float64) of the training data X (d x n, centred per dimension,
    as `load_cifar10` returns it): W = U diag((lam + eps)^-1/2) U^T for the eigen-decomposition
    U diag(lam) U^T of the covariance, with eps = eps_scale * mean(lam)."""
    d, n = X.shape
    C = np.zeros((d, d))
    for i in range(0, n, chunk):                       # X X^T / n without a float64 copy of X
        part = X[:, i:i + chunk]
        C += (part @ part.T).astype(np.float64)
    C /= n
    lam, U = np.linalg.eigh(C)
    lam = np.maximum(lam, 0.0)
    eps = eps_scale * lam.mean()
    return (U * (1.0 / np.sqrt(lam + eps))) @ U.T


def apply_zca(W_zca: Array, X: Array, chunk: int = 10_000) -> Array:
    """W_zca @ X for X (d x n), in X's dtype, stored like X (X.T C-contiguous)."""
    W = W_zca.astype(X.dtype)
    out = np.empty((X.shape[1], X.shape[0]), X.dtype)  # n x d rows; returned transposed
    for i in range(0, X.shape[1], chunk):
        np.matmul(X[:, i:i + chunk].T, W.T, out=out[i:i + chunk])
    return out.T


def flipped(X: Array) -> Array:
    """The images of X (d x n, one per column) flipped left-right, stored like X (X.T
    C-contiguous)."""
    n = X.shape[1]
    return np.ascontiguousarray(X.T.reshape(n, CHANNELS, SIDE, SIDE)[..., ::-1]).reshape(n, -1).T


def augment_rows(rows: Array, rng: np.random.Generator, flip: bool = True,
                 max_shift: int = 3) -> Array:
    """Each row of `rows` (n x d, one image per row) flipped left-right with probability 1/2 (if
    `flip`) and shifted by dy, dx drawn uniformly from [-max_shift, max_shift]; pixels shifted in
    from outside are 0 (the data's mean). Returns a new n x d array; `rows` is not modified.

    By index arithmetic, without a loop over images: every image is written once into a frame
    of zeros max_shift pixels wide, and its output is a 32 x 32 window of that frame, taken for
    the whole batch in one gather from a strided view of all windows."""
    n, s = rows.shape[0], max_shift
    images = rows.reshape(n, CHANNELS, SIDE, SIDE)
    framed = np.zeros((n, CHANNELS, SIDE + 2 * s, SIDE + 2 * s), rows.dtype)
    inner = framed[:, :, s:s + SIDE, s:s + SIDE]
    inner[...] = images
    if flip:
        mirrored = rng.random(n) < 0.5
        inner[mirrored] = images[mirrored, :, :, ::-1]
    top, left = rng.integers(0, 2 * s + 1, (2, n))          # window corner: shift s - top, s - left
    # windows[i, 0, y, x] is the whole 1 x C x 32 x 32 window of the frames at corner (y, x)
    windows = np.lib.stride_tricks.sliding_window_view(framed, (1, CHANNELS, SIDE, SIDE))
    return windows[np.arange(n), 0, top, left].reshape(n, -1)


def smooth_labels(Y: Array, eps: float) -> Array:
    """Label smoothing of the one-hot targets Y (K x n): (1 - eps) Y + eps / K."""
    return (1 - eps) * Y + eps / Y.shape[0]


def mixup(X: Array, Y: Array, rng: np.random.Generator, alpha: float) -> tuple[Array, Array]:
    """MixUp of a mini-batch X (d x n) with targets Y (K x n): every column becomes
    lam x_i + (1 - lam) x_j, and its target lam y_i + (1 - lam) y_j, for one lam ~ Beta(alpha,
    alpha) per mini-batch and a random pairing j of the batch's columns (Zhang et al. 2018).
    Returns new arrays laid out like X and Y."""
    lam = X.dtype.type(rng.beta(alpha, alpha))
    j = rng.permutation(X.shape[1])
    return lam * X + (1 - lam) * X[:, j], lam * Y + (1 - lam) * Y[:, j]
