"""The report's experiments: each function runs one section's trainings (or gradient checks: of
the assignment's network in section 1, of the options section 6 adds in `gradient_checks`) and
returns plain results (and `Result` objects with their histories) for a notebook to show."""
from typing import Any

import numpy as np

from ..config import Config
from ..data import CIFAR10, one_hot
from ..nn.augment import mixup, smooth_labels
from ..nn.gradcheck import check_gradients
from ..nn.network import BN_ORDERS, Net, dropout_masks, init_params
from ..scale.parallel import train_many
from ..scale.search import coarse_to_fine
from ..training import Result

THREE_LAYER = (50, 50)
NINE_LAYER = (50, 30, 20, 20, 10, 10, 10, 10)
GRADCHECK_HIDDEN = ((50,), (50, 50), (50, 30, 20), (50, 30, 20, 20))
SIGMAS = (1e-1, 1e-3, 1e-4)

#: The student report's test accuracies (%), from ../shared/SPEC.md, for side-by-side tables.
STUDENT = {
    "gradient_check": "about 1e-10",
    "three_layer": {"no BN": 53.06, "BN": 54.03},
    "nine_layer": {"no BN": 42.03, "BN": 51.42},
    "lambda_search": {"best lam": 0.0071, "test (3 cycles)": 53.72},
    "init_sensitivity": {"no BN, small sigma": "about 10", "BN": "above 50"},
}
#: The course's references (%), from ../shared/SPEC.md: its own implementation's test accuracies
#: and the best fully connected result it cites (Lin, Memisevic and Konda 2015).
COURSE = {
    "three_layer": {"no BN": "about 52", "BN": "about 53.5"},
    "beyond": {"best fully connected net": 78.0},
}


def gradient_check(data: CIFAR10, hidden_lists: tuple[tuple[int, ...], ...] = GRADCHECK_HIDDEN,
                   n: int = 3, d: int = 20, lams: tuple[float, ...] = (0.0, 0.005),
                   seed: int = 0) -> list[dict[str, Any]]:
    """Worst relative error per parameter array for networks with the given hidden layers, with
    and without BN, on the first n training images and their first d dimensions (float64).
    Returns one row per (network, BN, lam, param, layer)."""
    X = np.ascontiguousarray(data.train.X[:d, :n], dtype=np.float64)
    Y = one_hot(data.train.y[:n], dtype=np.float64)
    rows = []
    for hidden in hidden_lists:
        for bn in (False, True):
            params = init_params([d, *hidden, Y.shape[0]], batch_norm=bn, seed=seed)
            for lam in lams:
                rows += [{"hidden layers": len(hidden), "BN": bn, "lam": lam, **row}
                         for row in check_gradients(params, X, Y, lam)]
    return rows


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
            "BN": f"{net.bn_order} ReLU",
            "ReLU": "not layer 1 (linear)" if net.linear else "every layer",
            "dropout": f"{dropout}, fixed masks" if drop else "none",
            "targets": (f"MixUp {mixup_alpha:g}, smoothing {label_smoothing:g}"
                        if soft else "one-hot"),
            "worst rel. error": max(r["max_rel_error"] for r in errors),
            "median rel. error": float(np.median([r["median_rel_error"] for r in errors]))})
    return rows


def bn_comparison(data: CIFAR10, hidden: tuple[int, ...], seeds: tuple[int, ...] = (0, 1, 2),
                  n_jobs: int | None = None, **config: Any) -> dict[str, list[Result]]:
    """Train `hidden` with and without BN for every seed. Returns {"no BN": [Result per seed],
    "BN": [...]}."""
    configs = [Config(hidden=tuple(hidden), batch_norm=bn, seed=s, **config)
               for bn in (False, True) for s in seeds]
    results = train_many(data, configs, n_jobs=n_jobs)
    return {"no BN": results[:len(seeds)], "BN": results[len(seeds):]}


def accuracy_stats(results: list[Result]) -> dict[str, Any]:
    """Mean and standard deviation (ddof 1) of the test accuracy of several runs, in %."""
    acc = 100 * np.array([r.test_accuracy for r in results])
    return {"mean": float(acc.mean()), "std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "runs": [float(a) for a in acc]}


def lambda_search(data: CIFAR10, n_jobs: int | None = None, final_cycles: float = 3,
                  **search: Any) -> dict[str, Any]:
    """Coarse-to-fine search over lam for the 3-layer BN net, then the best lam trained for
    `final_cycles` cycles. Returns the search dict plus "final": the final run's Result."""
    base = Config(hidden=THREE_LAYER, batch_norm=True)
    out = coarse_to_fine(data, base, n_jobs=n_jobs, **search)
    out["final"] = train_many(data, [base.with_(lam=out["best"]["lam"], cycles=final_cycles)],
                              n_jobs=1)[0]
    return out


def init_sensitivity(data: CIFAR10, sigmas: tuple[float, ...] = SIGMAS, seed: int = 0,
                     n_jobs: int | None = None) -> dict[tuple[int, bool, float], Result]:
    """Every weight N(0, sigma^2), for the 3- and 9-layer nets, with and without BN. Returns
    {(depth, bn, sigma): Result} with depth 3 or 9."""
    keys = [(depth, bn, sigma) for depth in (3, 9) for bn in (False, True) for sigma in sigmas]
    configs = [Config(hidden=THREE_LAYER if depth == 3 else NINE_LAYER, batch_norm=bn,
                      init=sigma, seed=seed) for depth, bn, sigma in keys]
    return dict(zip(keys, train_many(data, configs, n_jobs=n_jobs)))


def gradient_check_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The worst relative error per network (hidden layers, BN), parameter and layer, over the
    lam values checked: one row per (network, parameter), one column per layer."""
    table: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        key = (r["hidden layers"], r["BN"], r["param"])
        entry = table.setdefault(key, {"hidden layers": r["hidden layers"],
                                       "BN": "yes" if r["BN"] else "no", "param": r["param"]})
        col = f"layer {r['layer']}"
        entry[col] = max(entry.get(col, 0.0), r["max_rel_error"])
    return list(table.values())


def bn_table(runs: dict[str, list[Result]],
             student: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Test accuracy (%) per setting: seed 0, mean and std over the seeds, and the student
    report's number if given (a dict setting -> %)."""
    rows = []
    for setting, results in runs.items():
        stats = accuracy_stats(results)
        rows.append({"setting": setting, "test acc. seed 0 (%)": 100 * results[0].test_accuracy,
                     "mean (%)": stats["mean"], "std (%)": stats["std"],
                     "seeds": len(results),
                     "student report (%)": (student or {}).get(setting, "")})
    return rows
