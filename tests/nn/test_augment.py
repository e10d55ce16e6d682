"""assignment3.nn.augment: ZCA whitening, the flips and shifts of mini-batches, label smoothing and
MixUp. (`data.zca_whiten`, which whitens a data set: tests/data/test_cifar10.py.)"""
import numpy as np
import pytest

from assignment3.nn.augment import apply_zca, augment_rows, fit_zca, flipped, mixup, smooth_labels


def image_rows(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3072)).astype(np.float32)


def as_images(rows):
    return rows.reshape(-1, 3, 32, 32)


def shifted(img, dy, dx):
    """img (3 x 32 x 32) moved down by dy and right by dx, zeros shifted in: out[y, x] = img[y -
    dy, x - dx]. Written with explicit slices, as an independent reference."""
    out = np.zeros_like(img)
    out[:, max(dy, 0):32 + min(dy, 0), max(dx, 0):32 + min(dx, 0)] = \
        img[:, max(-dy, 0):32 + min(-dy, 0), max(-dx, 0):32 + min(-dx, 0)]
    return out


def candidates(img, max_shift, flip):
    sources = [img, img[:, :, ::-1]] if flip else [img]
    return [shifted(src, dy, dx) for src in sources for dy in range(-max_shift, max_shift + 1)
            for dx in range(-max_shift, max_shift + 1)]


@pytest.mark.parametrize("max_shift, flip", [(3, True), (1, False), (0, True)])
def test_every_row_is_one_flip_and_shift_of_itself(max_shift, flip):
    rows = image_rows(60, seed=1)
    before = rows.copy()
    out = augment_rows(rows, np.random.default_rng(0), flip=flip, max_shift=max_shift)
    assert out.shape == rows.shape and out.dtype == rows.dtype
    chosen = []
    for x, y in zip(as_images(rows), as_images(out)):
        matches = [i for i, c in enumerate(candidates(x, max_shift, flip)) if (c == y).all()]
        assert len(matches) == 1
        chosen.append(matches[0])
    n_candidates = len(candidates(rows[:1].reshape(3, 32, 32), max_shift, flip))
    assert len(set(chosen)) > min(10, n_candidates) // 2
    assert np.array_equal(rows, before)                   # the input rows are not modified
    assert np.array_equal(out, augment_rows(rows, np.random.default_rng(0), flip, max_shift))


def test_no_flip_no_shift_is_the_identity():
    rows = image_rows(5)
    assert np.array_equal(augment_rows(rows, np.random.default_rng(0), False, 0), rows)


def test_a_known_shift_moves_the_image():
    """With max_shift 1 the windows are 9; find one down-right shift and check it by hand."""
    img = np.arange(1, 3073, dtype=np.float32)                  # no pixel is 0
    out = augment_rows(np.tile(img, (200, 1)), np.random.default_rng(0), False, 1)
    down_right = [y for y in as_images(out) if y[0, 0, 0] == 0 and y[0, 0, 1] == 0
                  and y[0, 1, 0] == 0 and y[0, 1, 1] != 0]
    assert down_right
    assert (down_right[0][:, 1:, 1:] == img.reshape(3, 32, 32)[:, :-1, :-1]).all()


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


def test_flipped_mirrors_every_image_and_keeps_the_layout():
    X = image_rows(4).T                                   # d x n, X.T C-contiguous
    F = flipped(X)
    assert F.shape == X.shape and F.T.flags.c_contiguous
    assert np.array_equal(as_images(F.T), as_images(X.T)[..., ::-1])
    assert np.array_equal(flipped(F), X)


def test_smooth_labels_keeps_distributions():
    Y = np.eye(10, dtype=np.float32)[:, [3, 1, 4, 1, 5]]
    S = smooth_labels(Y, 0.3)
    assert S.dtype == Y.dtype and np.allclose(S.sum(axis=0), 1)
    assert np.allclose(S[Y == 1], 0.7 + 0.03) and np.allclose(S[Y == 0], 0.03)
    assert (S.argmax(axis=0) == Y.argmax(axis=0)).all()


def test_mixup_mixes_pairs_of_columns_with_their_targets():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3072, 40)).astype(np.float32)
    Y = np.eye(10, dtype=np.float32)[:, rng.integers(0, 10, 40)]
    Xm, Ym = mixup(X, Y, np.random.default_rng(5), 0.4)
    assert Xm.dtype == X.dtype and Ym.shape == Y.shape and np.allclose(Ym.sum(axis=0), 1)
    # the same draws, made by hand: one lam, one pairing
    draw = np.random.default_rng(5)
    lam, j = draw.beta(0.4, 0.4), draw.permutation(40)
    assert np.allclose(Xm, lam * X + (1 - lam) * X[:, j], atol=1e-6)
    assert np.allclose(Ym, lam * Y + (1 - lam) * Y[:, j], atol=1e-6)
    assert not np.allclose(Xm, X)

