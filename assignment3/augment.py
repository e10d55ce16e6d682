"""Input transforms beyond the assignment: ZCA whitening and on-the-fly augmentation.

Images are columns of X (d x n, d = 3072 = 3 colour planes of 32 x 32, row-major), as in
`assignment3.data`. Augmentation works on a mini-batch given as rows (n x d, i.e. `X.T[idx]`):
every flip and shift is a fixed permutation of the 3072 pixel positions, so a whole mini-batch is
transformed by one gather, and the training set itself is never copied.
"""
from dataclasses import replace

import numpy as np

SIDE, CHANNELS = 32, 3

#: eps of the ZCA whitening, as a fraction of the covariance's mean eigenvalue.
ZCA_EPS_SCALE = 0.1


def fit_zca(X, eps_scale=ZCA_EPS_SCALE, chunk=5000):
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


def apply_zca(W_zca, X, chunk=10_000):
    """W_zca @ X for X (d x n), in X's dtype, stored like X (X.T C-contiguous)."""
    W = W_zca.astype(X.dtype)
    out = np.empty((X.shape[1], X.shape[0]), X.dtype)  # n x d rows; returned transposed
    for i in range(0, X.shape[1], chunk):
        np.matmul(X[:, i:i + chunk].T, W.T, out=out[i:i + chunk])
    return out.T


def zca_whiten(data, eps_scale=ZCA_EPS_SCALE):
    """A copy of `data` (a `CIFAR10`) with every split whitened by the ZCA matrix fitted on the
    training split only."""
    W = fit_zca(data.train.X, eps_scale)
    return replace(data, **{name: replace(split, X=apply_zca(W, split.X))
                            for name, split in (("train", data.train), ("val", data.val),
                                                ("test", data.test))})


def pixel_maps(max_shift=3, flip=True):
    """Index maps (M x d, int) of every transform: horizontal flip (if `flip`) combined with
    shifts dy, dx in [-max_shift, max_shift]. Output pixel j of a transformed row x is x[map[j]],
    where index d stands for a pixel shifted in from outside the image (filled with 0, the
    data's mean)."""
    c, i, j = np.meshgrid(np.arange(CHANNELS), np.arange(SIDE), np.arange(SIDE), indexing="ij")
    d = CHANNELS * SIDE * SIDE
    maps = []
    for flipped in ((False, True) if flip else (False,)):
        for dy in range(-max_shift, max_shift + 1):
            for dx in range(-max_shift, max_shift + 1):
                src_i, src_j = i - dy, j - dx
                if flipped:
                    src_j = SIDE - 1 - src_j
                inside = (src_i >= 0) & (src_i < SIDE) & (src_j >= 0) & (src_j < SIDE)
                src = c * SIDE * SIDE + np.clip(src_i, 0, SIDE - 1) * SIDE + np.clip(src_j, 0, SIDE - 1)
                maps.append(np.where(inside, src, d).ravel())
    return np.stack(maps)


def augment_rows(rows, maps, rng):
    """A random transform from `maps` applied to each row of `rows` (n x d); returns a new
    n x d array."""
    n, d = rows.shape
    padded = np.empty((n, d + 1), rows.dtype)
    padded[:, :d] = rows
    padded[:, d] = 0
    chosen = maps[rng.integers(0, len(maps), n)]
    return np.take_along_axis(padded, chosen, axis=1)
