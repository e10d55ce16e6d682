"""ZCA whitening and the pixel maps of flips and shifts."""
import numpy as np
import pytest

from assignment3.augment import apply_zca, augment_rows, fit_zca, pixel_maps


def image_rows(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3072)).astype(np.float32)


def as_images(rows):
    return rows.reshape(-1, 3, 32, 32)


def test_identity_flip_and_shift_maps():
    maps = pixel_maps(max_shift=3)
    assert maps.shape == (2 * 49, 3072)
    x = image_rows(1)
    padded = np.append(x[0], 0)
    identity = maps[24]                                  # no flip, dy = dx = 0
    assert (padded[identity] == x[0]).all()
    img = as_images(x)[0]
    flipped = as_images(padded[maps[49 + 24]][None])[0]
    assert (flipped == img[:, :, ::-1]).all()
    down_right = as_images(padded[maps[(1 + 3) * 7 + (2 + 3)]][None])[0]   # dy = 1, dx = 2
    assert (down_right[:, 1:, 2:] == img[:, :-1, :-2]).all()
    assert (down_right[:, 0, :] == 0).all() and (down_right[:, :, :2] == 0).all()


def test_augment_rows_applies_one_map_per_row():
    rows = image_rows(50, seed=1)
    before = rows.copy()
    maps = pixel_maps(max_shift=1)
    out = augment_rows(rows, maps, np.random.default_rng(0))
    assert out.shape == rows.shape and out.dtype == rows.dtype
    padded = np.hstack([rows, np.zeros((50, 1), rows.dtype)])
    for r in range(50):
        assert any((padded[r][m] == out[r]).all() for m in maps)
    assert not np.array_equal(out, rows)
    assert np.array_equal(rows, before)                   # the input rows are not modified
    again = augment_rows(rows, maps, np.random.default_rng(0))
    assert np.array_equal(out, again)


def test_zca_whitens_and_is_symmetric():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((20, 20))
    X = (A @ rng.standard_normal((20, 5000))).astype(np.float32)
    X -= X.mean(axis=1, keepdims=True)
    W = fit_zca(X, eps_scale=1e-6, chunk=777)
    assert np.allclose(W, W.T)
    Z = apply_zca(W, X, chunk=999)
    assert Z.shape == X.shape and Z.dtype == X.dtype and Z.T.flags.c_contiguous
    assert np.allclose(np.cov(Z, bias=True), np.eye(20), atol=1e-3)
    # eps_scale regularises: a larger eps shrinks the whitened variance below 1
    Z_reg = apply_zca(fit_zca(X, eps_scale=0.1), X)
    assert (np.var(Z_reg, axis=1) < 1).all()
