"""Figures for the report: learning curves (by update step or by training compute) and the
lambda search."""
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..config import config_from_dict
from ..scale.search import trained
from ..training import Result
from .compute import training_flop

QUANTITIES = {"cost": "cost", "loss": "loss", "acc": "accuracy"}


#: Print sizes of the report's figures: the PDF sets them at 88% of the text width (16.6 cm), so
#: a figure 6.4 inches wide is placed at about 0.9 of its size, and 8-point text at about 7 pt.
PAPER_WIDTH = 6.4
PAPER_RC: dict[Any, Any] = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8,
                            "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 8}


def curve_panels(panels: list[tuple[str, dict[str, Result], str]], ncols: int,
                 height: float = 2.3) -> Figure:
    """One figure of learning curves in panels (a), (b), ...: each panel is (title, runs,
    quantity) as for `plot_curves`, `ncols` to a row, each `height` inches high. One legend,
    below the panels and outside their data: a colour per run label (those of the first panel)
    and the line styles of the training (solid) and validation (dashed) sets."""
    rows = -(-len(panels) // ncols)
    with plt.rc_context(PAPER_RC):
        fig, axes = plt.subplots(rows, ncols, figsize=(PAPER_WIDTH, height * rows + 0.5),
                                 layout="constrained", squeeze=False)
        for i, (ax, (title, runs, quantity)) in enumerate(zip(axes.flat, panels)):
            plot_curves(runs, quantity, ax=ax, title=f"({chr(ord('a') + i)}) {title}",
                        legend=False)
        for ax in axes.flat[len(panels):]:
            ax.set_visible(False)
        handles = [Line2D([], [], color=f"C{i}", label=label)
                   for i, label in enumerate(panels[0][1])] + [
            Line2D([], [], color="0.3", label="training"),
            Line2D([], [], color="0.3", linestyle="--", label="validation")]
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles),
                   frameon=False)
    return fig


def _axes(ax: Axes | None) -> Axes:
    """`ax`, or the axes of a new figure 6.4 x 3.6 inches."""
    return plt.subplots(figsize=(6.4, 3.6))[1] if ax is None else ax


def plot_curves(runs: dict[str, Result], quantity: str = "loss", ax: Axes | None = None,
                title: str | None = None, legend: bool = True) -> Axes:
    """Training (solid) and validation (dashed) `quantity` ("cost", "loss" or "acc") against the
    update step, one colour per run. `runs` maps a label to a `Result`; `legend` False leaves
    the legend to the caller (`curve_panels`)."""
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {sorted(QUANTITIES)}, not {quantity!r}")
    ax = _axes(ax)
    for i, (label, result) in enumerate(runs.items()):
        h, colour = result.history, f"C{i}"
        ax.plot(h["step"], h[f"{quantity}_train"], color=colour, label=f"{label}, training")
        ax.plot(h["step"], h[f"{quantity}_val"], color=colour, linestyle="--",
                label=f"{label}, validation")
    ax.set(xlabel="update step", ylabel=QUANTITIES[quantity], title=title or QUANTITIES[quantity])
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize="small")
    return ax


def plot_by_compute(runs: dict[str, dict[str, Any]], quantity: str = "acc",
                    ax: Axes | None = None, title: str | None = None,
                    budget: float | None = None) -> Axes:
    """Validation `quantity` against the training compute spent so far (TFLOP,
    `compute.training_flop`), one line per run, and a vertical line at `budget` FLOP if given.
    `runs` maps a label to a run's record: a dict with its "config" (`config.config_dict`)
    and "history", as `Result.summary()` plus the history, or a stored record."""
    ax = _axes(ax)
    for label, run in runs.items():
        config, h = config_from_dict(run["config"]), run["history"]
        ax.plot([training_flop(config, t) / 1e12 for t in h["step"]],
                [100 * v if quantity == "acc" else v for v in h[f"{quantity}_val"]],
                marker=".", label=label)
    if budget:
        ax.axvline(budget / 1e12, color="k", linestyle=":", label="budget")
    ax.set(xlabel="training compute (TFLOP)",
           ylabel=f"validation {QUANTITIES[quantity]}{' (%)' if quantity == 'acc' else ''}",
           title=title or f"Validation {QUANTITIES[quantity]} by compute")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=2,
              frameon=False)                     # below the axes: clear of the curves
    return ax


def plot_lambda_search(search: dict[str, Any], ax: Axes | None = None,
                       title: str = "Lambda search") -> Axes:
    """Validation accuracy against lam (log scale) for the coarse and fine stages of a search
    (`scale.search.coarse_to_fine`); a diverged trial has none and is left out (a cross on the
    lower edge marks its lam)."""
    ax = _axes(ax)
    for stage, marker in (("coarse", "o-"), ("fine", "s-")):
        trials = sorted(trained(search[stage]), key=lambda t: t["lam"])
        ax.plot([t["lam"] for t in trials], [100 * t["val_accuracy"] for t in trials], marker,
                label=f"{stage} search")
    diverged = [t["lam"] for stage in ("coarse", "fine") for t in search[stage]
                if t.get("diverged")]
    if diverged:
        ax.plot(diverged, [0] * len(diverged), "rx", clip_on=False,
                transform=ax.get_xaxis_transform(), label="diverged")
    best = search["best"]
    ax.plot(best["lam"], 100 * best["val_accuracy"], "k*", markersize=14,
            label=f"best: lam = {best['lam']:.2g}")
    ax.set(xscale="log", xlabel="lam", ylabel="validation accuracy (%)", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return ax
