"""The assignment's maths, numpy only: the k-layer network with BN (`network`: forward and
backward passes), its cost and evaluation (`cost`), the gradient check (`gradcheck`), the
optimiser (`optim`: schedules, flat parameters, the update rules), input transforms
(`augment`) and the checks of inputs (`checks`). Nothing here imports from the rest of the
package."""
from .cost import compute_accuracy, compute_cost, evaluate
from .gradcheck import check_gradients, numerical_gradients, relative_error
from .network import (
    BN_EPS,
    PARAM_NAMES,
    Net,
    backward,
    compute_gradients,
    dropout_masks,
    forward,
    init_params,
    softmax,
)
from .optim import SGD, DivergenceError, cyclic_lr, one_cycle_lr

__all__ = ["BN_EPS", "PARAM_NAMES", "SGD", "DivergenceError", "Net", "backward", "check_gradients",
           "compute_accuracy", "compute_cost", "compute_gradients", "cyclic_lr", "dropout_masks",
           "evaluate", "forward", "init_params", "numerical_gradients", "one_cycle_lr",
           "relative_error", "softmax"]
