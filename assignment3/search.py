"""Coarse-to-fine search for the regularisation strength lam, by validation accuracy."""
import numpy as np

from .parallel import train_many


def lambda_values(lo, hi, n, *, random=False, seed=None):
    """n values of lam in [lo, hi]: log-spaced, or drawn log-uniformly (sorted) if `random`."""
    if not 0 < lo < hi or n < 1:
        raise ValueError(f"need 0 < lo < hi and n >= 1, got lo={lo}, hi={hi}, n={n}")
    if random:
        exps = np.sort(np.random.default_rng(seed).uniform(np.log10(lo), np.log10(hi), n))
    else:
        exps = np.linspace(np.log10(lo), np.log10(hi), n)
    return [float(v) for v in 10.0 ** exps]


def evaluate_lambdas(data, config, lams, n_jobs=None):
    """Train `config` once per lam. Returns one trial per lam: {"lam", "val_accuracy",
    "test_accuracy", "result"}, in the order of `lams`."""
    results = train_many(data, [config.with_(lam=lam) for lam in lams], n_jobs=n_jobs)
    return [{"lam": lam, "val_accuracy": r.val_accuracy, "test_accuracy": r.test_accuracy,
             "result": r} for lam, r in zip(lams, results)]


def best_trial(trials):
    """The trial with the highest validation accuracy (the test set plays no part)."""
    return max(trials, key=lambda trial: trial["val_accuracy"])


def coarse_to_fine(data, config, *, coarse=(1e-5, 1e-1), n_coarse=8, n_fine=8, random=False,
                   seed=None, n_jobs=None):
    """Coarse search over n_coarse values in `coarse`, then a fine one over n_fine new values
    strictly between the best coarse value's neighbours (one coarse step either side, in log
    scale; the neighbours themselves were trained in the coarse stage, and with an even n_fine
    so was none of the fine values).
    Returns {"coarse": trials, "fine": trials, "best": the best trial of both stages}."""
    coarse_lams = lambda_values(*coarse, n_coarse, random=random, seed=seed)
    coarse_trials = evaluate_lambdas(data, config, coarse_lams, n_jobs)
    i = coarse_lams.index(best_trial(coarse_trials)["lam"])
    step = (np.log10(coarse[1]) - np.log10(coarse[0])) / max(n_coarse - 1, 1)
    centre = np.log10(coarse_lams[i])
    if random:
        fine_lams = lambda_values(10 ** (centre - step), 10 ** (centre + step), n_fine,
                                  random=True, seed=None if seed is None else seed + 1)
    else:   # n_fine + 2 log-spaced points without the two ends
        fine_lams = lambda_values(10 ** (centre - step), 10 ** (centre + step), n_fine + 2)[1:-1]
    fine_trials = evaluate_lambdas(data, config, fine_lams, n_jobs)
    return {"coarse": coarse_trials, "fine": fine_trials,
            "best": best_trial(coarse_trials + fine_trials)}
