"""What report section 6 shows of the stored runs of `beyond`: where and by what they were made,
and its tables (the ablation path, the alternatives, the screening, the leave-one-out at full
budget, part three, the published fully connected nets)."""
import json
from typing import Any

import numpy as np

from ..store.provenance import describe, short_version
from .plans import BUDGET_FLOP, layers

Record = dict[str, Any]
Rows = list[dict[str, Any]]

#: Plain fully connected nets on CIFAR-10 in the literature: (source, net, training, test %).
PUBLISHED = (
    ("Mocanu et al. 2018 (SET), dense baseline", "3072-4000-1000-4000-10 MLP",
     "1000 epochs, augmentation", 70.9),
    ("Mocanu et al. 2018, SET", "the same net, sparse evolving connections",
     "1000 epochs, augmentation", 73.9),
    ("Urban et al. 2017", "MLPs distilled from a CNN ensemble", "distillation", "below 75"),
    ("Lin, Memisevic and Konda 2015", "4000-1000-4000 net with a linear bottleneck",
     "PCA whitening, layer-wise pre-training, thousands of augmented passes", 78.6),
)

#: Columns of part three's table by field of a run's record: the accuracies of its averaged weights.
SWA_COLUMNS = {"swa_test_accuracy": "test acc., SWA (%)", "swa_val_accuracy": "val. acc., SWA (%)"}


def provenance(record: Record) -> str:
    """Markdown lines, one per part of `record`: how many runs, the code versions that made them,
    the machines they ran on and the float32 matmul rates measured around them."""
    lines = []
    for title, keys in (("Part one", ("ablation", "alternatives", "part_one")),
                        ("Screening", ("screening",)),
                        ("Part two", ("part_two_best", "leave_one_out")),
                        ("Part three", ("part_three", "best")),
                        ("Part four", ("part_four_screening", "part_four"))):
        runs = list({run.get("run") or id(run): run
                     for key in keys for run in record.get(key, [])}.values())  # each run once
        if not runs:
            continue
        machines = sorted({describe(run.get("machine") or record["machine"]) for run in runs})
        rates = [rate for run in runs for rate in run.get("matmul_gflops", [])]
        versions = ", ".join(f"`{short_version(v)}`" if short_version(v) != v else v  # a hash
                             for v in sorted({run["code_version"] for run in runs}))
        lines.append(
            f"- {title}: {len(runs)} runs, code version {versions}; "
            f"machine: {'; '.join(machines)}"
            f"; float32 matmul rate (`provenance.matmul_rate`, with the runs' BLAS threads) "
            f"{min(rates):.0f} to {max(rates):.0f} GFLOP/s around the runs.")
    return "\n".join(lines)


def ablation_table(record: Record) -> Rows:
    """One row per step of the path: change, epochs, test accuracy (seed 0; for part one's net
    also the mean over its seeds, plain and flip-averaged), training minutes, parameters."""
    rows = [{"change": run["change"], "epochs": run["epochs"],
             "test acc. (%)": 100 * run["test_accuracy"], "mean over seeds (%)": "",
             "flip-averaged, mean (%)": "", "training minutes": run["minutes"],
             "parameters": run["parameters"]} for run in record["ablation"]]
    acc = [100 * r["test_accuracy"] for r in record["part_one"]]
    rows[-1] |= {"change": f"{rows[-1]['change']} ({len(acc)} seeds: "
                           f"{', '.join(f'{a:.2f}%' for a in acc)})",
                 "mean over seeds (%)": float(np.mean(acc)),
                 "flip-averaged, mean (%)": float(np.mean(
                     [100 * r["test_accuracy_flip_averaged"] for r in record["part_one"]]))}
    return rows


def alternatives_table(record: Record) -> Rows:
    """One row per alternative tried, beside the path's last short step that it modifies (same
    epochs and seed)."""
    ref = record["ablation"][-2]
    return [{"change": run["change"], "to the step": ref["change"],
             "test acc. (%)": 100 * run["test_accuracy"],
             "test acc. of the step (%)": 100 * ref["test_accuracy"],
             "training minutes": run["minutes"]} for run in record["alternatives"]]


def screening_table(record: Record) -> Rows:
    """One row per screening run: change, epochs, test accuracy and its difference to the run of
    part one's net of the same length (the first of that length), validation accuracy, minutes."""
    # by length, the first run's test accuracy (reversed: the first of a length is set last)
    base = {run["epochs"]: run["test_accuracy"] for run in reversed(record["screening"])}
    return [{"run": run["change"], "epochs": run["epochs"],
             "test acc. (%)": 100 * run["test_accuracy"],
             "to part one's net (points)": 100 * (run["test_accuracy"] - base[run["epochs"]]),
             "val. acc. (%)": 100 * run["val_accuracy"], "training minutes": run["minutes"]}
            for run in record["screening"]]


def leave_one_out_table(record: Record) -> Rows:
    """Part two at full budget: the candidate and the candidate without each of its ingredients
    (seed 0), part two's best net and part one's net (means of their seeds): test
    accuracy and its difference to the candidate's, validation and flip-averaged test accuracy,
    training compute (TFLOP), minutes and the machine's matmul rate (mean of the rates measured
    before and after each run)."""
    reference = record["leave_one_out"][0]["test_accuracy"]
    named = [(run["change"], [run]) for run in record["leave_one_out"]] + [
        ("part two's best net", record["part_two_best"]),
        (f"part one's net ({record['part_one'][0]['epochs']:g} epochs, no MixUp, no label "
         "smoothing)", record["part_one"])]
    return [long_run_row(name, runs, reference, "to the candidate (points)")
            for name, runs in named]


def part_three_table(record: Record) -> Rows:
    """Part three at full budget: part two's best net (seed 0) and each of part three's runs:
    the columns of `leave_one_out_table`, the difference to part two's best net, and the
    validation and test accuracy of the averaged weights (SWA) where a run has them."""
    reference = record["part_two_best"][0]
    named = [("part two's best net", reference)] + [(run["change"], run)
                                                    for run in record.get("part_three", [])]
    return [{**long_run_row(name, [run], reference["test_accuracy"],
                            "to part two's best (points)"),
             **{column: 100 * run[key] if key in run else ""
                for key, column in SWA_COLUMNS.items()}}
            for name, run in named]


def part_four_table(record: Record) -> Rows:
    """Part four at full budget: the best net and each configuration of part four's runs (the
    means of their seeds): the columns of `part_three_table`, and the differences to the best
    net by raw weights and by averaged weights (SWA)."""
    configs: dict[str, list[dict[str, Any]]] = {}            # seeds of one configuration
    for run in record.get("part_four", []):
        configs.setdefault(json.dumps({**run["config"], "seed": 0}, sort_keys=True), []).append(run)
    named = [("the best net", record["best"])] + [(runs[0]["change"], runs)
                                                  for runs in configs.values()]
    raw, reference = (float(np.mean([run[key] for run in record["best"]]))
                      for key in ("test_accuracy", "swa_test_accuracy"))
    return [{**long_run_row(name, runs, raw, "to the best net (points)"),
             **{column: float(np.mean([100 * run.get(key, np.nan) for run in runs]))
                for key, column in SWA_COLUMNS.items()},
             "SWA to the best net (points)": float(np.mean(
                 [100 * (run.get("swa_test_accuracy", np.nan) - reference) for run in runs]))}
            for name, runs in named]


def screening_four_table(record: Record) -> Rows:
    """Part four's short runs: update rule, peak learning rate, AdamW's weight decay, test and
    validation accuracy, minutes."""
    def rule(config: dict[str, Any]) -> str:
        return ("AdamW" if config["optimizer"] == "adamw" else
                f"SGD, {'Nesterov ' if config['nesterov'] else ''}momentum {config['momentum']:g}, "
                f"L2 {config['lam']:g}")
    return [{"update rule": rule(run["config"]), "peak learning rate": run["config"]["eta_max"],
             "weight decay": run["config"]["weight_decay"] or "",
             "test acc. (%)": 100 * run["test_accuracy"],
             "val. acc. (%)": 100 * run["val_accuracy"], "training minutes": run["minutes"]}
            for run in record.get("part_four_screening", [])]


#: The 97.5% quantile of Student's t distribution by degrees of freedom, 1 to 9.
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262)


def mean_interval(values: list[float]) -> tuple[float, float, float, float]:
    """(mean, standard deviation, low, high) of `values` (2 to 10 runs): the 95% confidence
    interval of their mean by Student's t."""
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    half = T975[len(values) - 2] * sd / np.sqrt(len(values))
    return mean, sd, mean - half, mean + half


def long_run_row(name: str, runs: list[dict[str, Any]], reference: float,
                 to: str) -> dict[str, Any]:
    """A table row of long runs (their means): test accuracy, its difference to `reference`
    (column `to`), validation and flip-averaged test accuracy, training compute (TFLOP),
    minutes and the machine's matmul rate (mean of the rates measured before and after each
    run)."""
    def mean(key: str, scale: float = 1) -> float:
        return float(np.mean([scale * run[key] for run in runs]))
    rates = [r for run in runs for r in run.get("matmul_gflops", [])]
    return {"run": name, "seeds": ", ".join(str(run["config"]["seed"]) for run in runs),
            "test acc. (%)": mean("test_accuracy", 100),
            to: mean("test_accuracy", 100) - 100 * reference,
            "val. acc. (%)": mean("val_accuracy", 100),
            "flip-averaged (%)": mean("test_accuracy_flip_averaged", 100),
            "compute (TFLOP)": mean("training_flop", 1e-12),
            "training minutes": mean("minutes"),
            "matmul GFLOP/s": float(np.mean(rates)) if rates else float("nan")}


def accuracy(run: dict[str, Any], split: str) -> float:
    """A run's accuracy on `split` ("test" or "val") by the weights that score it: its averaged
    weights if it has them (a run with `Config.swa`, as the best net's), else its weights."""
    return float(run.get(f"swa_{split}_accuracy", run[f"{split}_accuracy"]))


def published_table(record: Record) -> Rows:
    """The plain fully connected nets of `PUBLISHED` and ours (mean test `accuracy` of the seeds
    of part one's net, part two's best net and the best net)."""
    def net(config: dict[str, Any]) -> str:
        return (f"{layers([3072, *config['hidden'], 10])}, BN, dropout"
                + (", averaged weights" if config.get("swa") else ""))
    ours = [(f"this report, part {part}", net(runs[0]["config"]),
             f"{runs[0]['epochs']:g} epochs, {100 * runs[0]['training_flop'] / BUDGET_FLOP:.0f}% "
             "of the budget", round(float(np.mean([100 * accuracy(r, "test") for r in runs])), 2))
            for part, runs in (("one", record["part_one"]), ("two", record["part_two_best"]),
                               ("three", record["best"]))]
    return [{"source": source, "net": net, "training": how, "test acc. (%)": acc}
            for source, net, how, acc in PUBLISHED + tuple(ours)]
