"""Section 6's gradient check of the options it adds to the network (`gradient_checks`): BN
after the ReLU, dropout with fixed masks, the soft targets of MixUp and label smoothing, and a
linear first hidden layer, each against centred differences in float64 as in section 1."""
from typing import Any

import numpy as np

from ..data import CIFAR10, one_hot
from ..nn.augment import mixup, smooth_labels
from ..nn.gradcheck import check_gradients
from ..nn.network import BN_ORDERS, Net, dropout_masks, init_params


def gradient_checks(data: CIFAR10, hidden: tuple[int, ...] = (50, 30), n: int = 3, d: int = 20,
                    dropout: float = 0.2, lam: float = 0.005, seed: int = 0,
                    mixup_alpha: float = 0.2,
                    label_smoothing: float = 0.1) -> list[dict[str, Any]]:
    """Worst relative error of the analytic gradients of the new network options (BN before or
    after the ReLU, without and with fixed dropout masks, one-hot or soft targets: MixUp with
    `mixup_alpha` and label smoothing) against centred differences, float64, on the first n
    training images and their first d dimensions. One row per option triple, with a ReLU in
    every hidden layer; then, for each BN placement, one row of a linear first hidden layer
    (`Config.linear`) with dropout and soft targets."""
    X = np.ascontiguousarray(data.train.X[:d, :n], dtype=np.float64)
    Y = one_hot(data.train.y[:n], dtype=np.float64)
    rng = np.random.default_rng(seed)
    X_mixed, Y_soft = mixup(X, smooth_labels(Y, label_smoothing), rng, mixup_alpha)
    params = init_params([d, *hidden, Y.shape[0]], batch_norm=True, seed=seed)
    masks = dropout_masks(params, n, dropout, rng)
    cases = [(Net(bn_order), drop, soft) for bn_order in BN_ORDERS
             for drop in (None, masks) for soft in (False, True)]
    cases += [(Net(bn_order, linear=1), masks, True) for bn_order in BN_ORDERS]
    rows = []
    for net, drop, soft in cases:
        X_in, Y_in = (X_mixed, Y_soft) if soft else (X, Y)
        errors = check_gradients(params, X_in, Y_in, lam, net=net, masks=drop)
        rows.append({
            "BN": net.bn_order + " the ReLU",
            "ReLU": "not in layer 1 (linear)" if net.linear else "every hidden layer",
            "dropout": f"{dropout} (fixed masks)" if drop else "none",
            "targets": (f"MixUp {mixup_alpha:g} + label smoothing {label_smoothing:g}"
                        if soft else "one-hot"),
            "worst relative error": max(r["max_rel_error"] for r in errors),
            "median relative error": float(np.median([r["median_rel_error"] for r in errors]))})
    return rows
