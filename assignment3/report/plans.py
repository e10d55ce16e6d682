"""What each part of report section 6 trains: the compute budget, and each part's runs as
(change, Config) or (file, change, Config). Part one: the path from the assignment's net to 72%
in 20 minutes (`ablation_path`, to `presets.PART_ONE`) and the alternatives beside it. Part two:
within twice that net's training compute (`BUDGET_FLOP`), the `screening` of its regularisers and
what each ingredient of a candidate gives at the full budget (`leave_one_out`). Part three: other
ways of spending the same budget (`part_three`), each with its weights averaged as well (SWA).
Part four: AdamW's short runs (`adamw_screening`) and changes to the best net (`part_four`).
`beyond` trains and stores them."""
from collections.abc import Sequence

from ..config import Config
from .compute import training_flop
from .presets import BEST, CANDIDATE, PART_ONE, PART_TWO_BEST

#: The fields in which `CANDIDATE` differs from `PART_ONE`: its ingredients, which
#: `leave_one_out` takes away one at a time.
INGREDIENTS = ("mixup", "label_smoothing", "epochs")

#: Training images of CIFAR-10's training split as this module uses it (the rest is validation).
N_TRAIN = 45_000



def budget(part_one: Config) -> int:
    """The compute budget of part two for part one's net `part_one`: twice its training compute
    (FLOP, `compute.training_flop`) on the N_TRAIN training images."""
    assert part_one.epochs is not None              # a one-cycle run has its length in epochs
    return 2 * training_flop(part_one, int(part_one.epochs) * (N_TRAIN // part_one.n_batch))


#: The compute budget of parts two and three: twice the training compute of part one's net.
BUDGET_FLOP = budget(PART_ONE)

#: Length of the short runs of the ablation path.
ABLATION_EPOCHS = 20

#: Lengths of the screening runs of part two's regularisers (`screening`).
SCREENING_EPOCHS = (30, 60)

#: The last part of a run over which part three's runs average their weights (`Config.swa`).
SWA = 0.25

#: Part four's constant learning rate over the averaged part of the run (`Config.swa_lr`): a
#: tenth of the peak, the lowest that Izmailov et al. 2018 used on CIFAR (0.01 to 0.05, with
#: SGD and momentum 0.9 as here, from initial rates of 0.05 to 0.1).
SWA_LR = 0.01

#: Part four's short AdamW runs: their length in epochs, and the (peak learning rate, decoupled
#: weight decay) pairs tried (`adamw_screening`).
ADAMW_SCREENING_EPOCHS = 20
ADAMW_GRID = ((1e-3, 0.05), (3e-3, 0.05), (1e-3, 0.5), (3e-3, 0.5))

#: The pair of ADAMW_GRID whose short run scored best on validation, which part four trains at
#: the full budget.
ADAMW_CHOICE = (3e-3, 0.5)

#: Part three's linear bottleneck between the image and the first hidden layer has 1/BOTTLENECK
#: of that layer's units.
BOTTLENECK = 4

def layers(hidden: Sequence[int]) -> str:
    """Layer sizes as the report writes them: (1024, 512, 256) as "1024-512-256"."""
    return "-".join(map(str, hidden))


def ablation_path(epochs: float = ABLATION_EPOCHS,
                  best: Config = PART_ONE) -> list[tuple[str, Config]]:
    """[(change, Config)]: from the assignment's 3-layer BN net to the `best` configuration, each
    step adding one change to the step before, all but the last trained for `epochs` epochs (the
    assignment's two cycles are 20 epochs)."""
    assignment = Config()
    wide = assignment.with_(hidden=best.hidden, blas_threads=best.blas_threads)
    sgd = wide.with_(n_batch=best.n_batch, lam=best.lam, schedule="one_cycle", epochs=epochs,
                     eta_max=best.eta_max, warmup=best.warmup, momentum=best.momentum,
                     nesterov=best.nesterov)
    dropout = sgd.with_(dropout=best.dropout)
    augmented = dropout.with_(flip=best.flip, max_shift=best.max_shift)
    zca = augmented.with_(zca=best.zca)
    bn_order = zca.with_(bn_order=best.bn_order)
    steps = [("the assignment's net: 50-50, BN, cyclical learning rate", assignment),
             (f"wider and deeper: {layers(best.hidden)}", wide),
             (f"Nesterov momentum {best.momentum}, batch {best.n_batch}, one-cycle schedule, "
              f"weight decay {2 * best.lam:g}", sgd),
             (f"dropout {best.dropout}", dropout),
             (f"random flips and shifts of up to {best.max_shift} pixels", augmented),
             ("ZCA whitening", zca),
             ("BN after the ReLU", bn_order),
             (f"longer training: {best.epochs:g} epochs (part one's net)", best)]
    # keep only the steps that change something (e.g. no BN-order step if BN stays before)
    return [steps[0]] + [step for prev, step in zip(steps, steps[1:]) if step[1] != prev[1]]


def alternatives(epochs: float = ABLATION_EPOCHS,
                 best: Config = PART_ONE) -> list[tuple[str, Config]]:
    """[(change, Config)]: changes tried beside the path, each against the path's last short
    step: for now the other BN placement."""
    last = ablation_path(epochs, best)[-2][1]
    other = "after" if last.bn_order == "before" else "before"
    return [(f"BN {other} the ReLU instead of {last.bn_order}", last.with_(bn_order=other))]


def leave_one_out(candidate: Config = CANDIDATE,
                  part_one: Config = PART_ONE) -> list[tuple[str, Config]]:
    """[(ingredient, Config)]: `candidate` without each of its `INGREDIENTS`, one at a time (that
    field set back to `part_one`'s value)."""
    names = {"mixup": f"MixUp {candidate.mixup:g}",
             "label_smoothing": f"label smoothing {candidate.label_smoothing:g}",
             "epochs": f"the longer training ({candidate.epochs:g} instead of "
                       f"{part_one.epochs:g} epochs)"}
    return [(names[field], candidate.with_(**{field: getattr(part_one, field)}))
            for field in INGREDIENTS]


def epochs_within(config: Config, budget: float = BUDGET_FLOP) -> int:
    """The most whole epochs of `config`'s net on the N_TRAIN training images within `budget`
    FLOP of training compute."""
    return int(budget // training_flop(config, N_TRAIN // config.n_batch))


def part_three(best: Config = PART_TWO_BEST, swa: float = SWA,
               budget: float = BUDGET_FLOP) -> list[tuple[str, str, Config]]:
    """[(file, change, Config)]: part three's runs at the full `budget` (seed 0), each with its
    weights averaged over the last `swa` of the run: part two's `best` itself, then one change to
    it each: random crops of the image padded by one pixel more (a shift with zero fill is such a
    crop); a first hidden layer half as wide; a linear bottleneck before it, 1/BOTTLENECK as
    wide (Lin, Memisevic and Konda 2015); shallower and wider (two hidden layers as wide as the
    first); deeper (each hidden layer after the first twice); all but the first two for as many
    epochs as the budget buys. Last, the shallower and wider net again with seed 1: its averaged
    weights beat `best` on validation, and a second seed is what tells whether they beat it on
    test (they did: it is `config.BEST`)."""
    first, rest = best.hidden[0], best.hidden[1:]
    narrow = best.with_(hidden=(first // 2, *rest))
    bottleneck = best.with_(hidden=(first // BOTTLENECK, *best.hidden), linear=1)
    shallow = best.with_(hidden=(first, first))
    deep = best.with_(hidden=(first, *[width for width in rest for _ in range(2)]))
    narrow, bottleneck, shallow, deep = (config.with_(epochs=epochs_within(config, budget))
                                         for config in (narrow, bottleneck, shallow, deep))
    shallow_change = (f"shallower and wider: hidden layers {layers(shallow.hidden)}, "
                      f"{shallow.epochs:g} epochs")
    return [("swa-seed-0.npz", "part two's best net, trained again", best.with_(swa=swa)),
            ("crops-seed-0.npz", f"random crops with padding {best.max_shift + 1} instead of "
             f"{best.max_shift}", best.with_(max_shift=best.max_shift + 1, swa=swa)),
            ("narrow-seed-0.npz", f"first layer {narrow.hidden[0]} wide, {narrow.epochs:g} "
             "epochs", narrow.with_(swa=swa)),
            ("bottleneck-seed-0.npz", f"a linear bottleneck of {bottleneck.hidden[0]} units "
             f"before the first layer, {bottleneck.epochs:g} epochs", bottleneck.with_(swa=swa)),
            ("shallow-seed-0.npz", shallow_change, shallow.with_(swa=swa)),
            ("deep-seed-0.npz", f"deeper: hidden layers {layers(deep.hidden)}, "
             f"{deep.epochs:g} epochs", deep.with_(swa=swa)),
            ("shallow-seed-1.npz", f"{shallow_change}, seed 1", shallow.with_(swa=swa, seed=1))]


def adamw(config: Config, eta_max: float, weight_decay: float) -> Config:
    """`config` trained with AdamW instead of SGD: no momentum and no L2 term (the decoupled
    `weight_decay` instead), peak learning rate `eta_max` on the same schedule."""
    return config.with_(optimizer="adamw", momentum=0.0, nesterov=False, lam=0.0,
                        eta_max=eta_max, weight_decay=weight_decay)


def adamw_screening(best: Config = BEST, epochs: float = ADAMW_SCREENING_EPOCHS,
                    grid: Sequence[tuple[float, float]] = ADAMW_GRID
                    ) -> list[tuple[str, str, Config]]:
    """[(file, change, Config)]: part four's short runs (seed 0, no weight averaging) of `best`
    for `epochs` epochs, with SGD as it is and with AdamW at each (peak learning rate, weight
    decay) of `grid`."""
    short = best.with_(epochs=epochs, swa=0.0)
    return [("screen-sgd-seed-0.npz", f"SGD (the best net's), {epochs:g} epochs", short)] + [
        (f"screen-adamw-{eta:g}-{decay:g}-seed-0.npz",
         f"AdamW, peak learning rate {eta:g}, weight decay {decay:g}, {epochs:g} epochs",
         adamw(short, eta, decay)) for eta, decay in grid]


def part_four(best: Config = BEST, swa_lr: float = SWA_LR,
              adamw_choice: tuple[float, float] = ADAMW_CHOICE) -> list[tuple[str, str, Config]]:
    """[(file, change, Config)]: part four's runs at the full budget (seed 0 unless said), each
    one change to the `best` net: SWA's own schedule (the learning rate held at `swa_lr` over
    the averaged part); AdamW with the `adamw_choice` of its screening; SWA's schedule again with
    seeds 1 to 3 (its seed 0 beat the best net on validation); the averaged part twice as long,
    at `swa_lr`."""
    eta, decay = adamw_choice
    swa_schedule = (f"SWA's schedule: the learning rate held at {swa_lr:g} over the averaged "
                    f"last {best.swa:.0%}", best.with_(swa_lr=swa_lr))
    return [("swa-lr-seed-0.npz", *swa_schedule),
            ("adamw-seed-0.npz", f"AdamW, peak learning rate {eta:g}, weight decay {decay:g}",
             adamw(best, eta, decay))] + [
            (f"swa-lr-seed-{seed}.npz", f"{swa_schedule[0]}, seed {seed}",
             swa_schedule[1].with_(seed=seed)) for seed in (1, 2, 3)] + [
            ("swa-half-seed-0.npz", f"SWA's schedule over the last {2 * best.swa:.0%}",
             best.with_(swa=2 * best.swa, swa_lr=swa_lr))]


def screening(candidate: Config = CANDIDATE, part_one: Config = PART_ONE,
              lengths: tuple[float, float] = SCREENING_EPOCHS) -> list[tuple[str, Config]]:
    """[(change, Config)]: short runs of part one's net, at `lengths[0]` epochs as it is, with
    each of `candidate`'s regularisers (label smoothing, MixUp) and with both, at `lengths[1]` as
    it is and with both."""
    ls, mix = {"label_smoothing": candidate.label_smoothing}, {"mixup": candidate.mixup}
    runs = [("part one's net", {}), (f"with label smoothing {candidate.label_smoothing:g}", ls),
            (f"with MixUp {candidate.mixup:g}", mix), ("with both", {**ls, **mix})]
    short, longer = lengths
    return [(f"{change}, {e:g} epochs", part_one.with_(epochs=e, **changes))
            for e, (change, changes) in [(short, run) for run in runs] +
            [(longer, runs[0]), (longer, runs[-1])]]
