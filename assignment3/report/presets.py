"""The configurations of the report's section 6, each chosen by the runs the notebook tables
(results/beyond), and the presets the command line starts from (`--preset`)."""
from ..config import Config

#: Hidden layers of the wide net of report section 6.
WIDE = (1024, 512, 256)

#: The best configuration of section 6, part one: 72% within a 20-minute budget on the report's
#: 2-core machine (its runs, with their minutes and the machine's matmul rate around them, are
#: stored in results/beyond and tabled in notebook 06).
PART_ONE = Config(hidden=WIDE, bn_order="before", dropout=0.2, flip=True, max_shift=3, zca=True,
                  schedule="one_cycle", epochs=180, eta_max=0.1, momentum=0.9, nesterov=True,
                  lam=2.5e-4, n_batch=256, blas_threads=2)

#: The candidate of part two, fixed before any full-budget run: part one's net trained twice as
#: long (all the compute budget), with MixUp and label smoothing.
assert PART_ONE.epochs is not None                  # a one-cycle run has its length in epochs
CANDIDATE = PART_ONE.with_(epochs=2 * PART_ONE.epochs, mixup=0.2, label_smoothing=0.1)

#: The best configuration of part two: the best of the candidate's leave-one-out by validation
#: accuracy (seed 0), the candidate without MixUp.
PART_TWO_BEST = CANDIDATE.with_(mixup=0.0)

#: The best configuration, from part three: part two's best net made shallower and wider (two
#: hidden layers as wide as its first), trained for as many epochs as part two's budget buys
#: (`report.plans.epochs_within`), with its weights averaged over the last quarter of the run
#: (SWA), which score it. Chosen on validation among part three's runs (seed 0), and ahead of
#: part two's best net on test as the mean of two seeds.
BEST = PART_TWO_BEST.with_(hidden=(WIDE[0], WIDE[0]), epochs=325, swa=0.25)

#: Configurations the command line starts from (`--preset`).
PRESETS = {"assignment": Config(), "best": BEST}
