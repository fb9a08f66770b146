"""LARS: momentum SGD with a layer-wise trust ratio.

You, Gitman & Ginsburg, "Large Batch Training of Convolutional Networks"
(arXiv:1708.03888), as specified in Nado et al., "A Large Batch Optimizer
Reality Check: Traditional, Generic Optimizers Suffice Across Batch Sizes"
(arXiv:2102.06356), Algorithm 1. For each weight tensor (ndim > 1):

    r = eta * |w| / (|g| + wd * |w|)       (1 if |w| = 0 or the denominator is 0)
    b = mu * b + r * (g + wd * w)
    w -= lr * b                             (Nesterov: lr * (r * (g + wd * w) + mu * b))

Biases and norm parameters skip the trust ratio and the decay (plain momentum
SGD), as in Nado et al. and the MLPerf reference. Implemented by
``pytorch_optimizer.LARS`` (pytorch-optimizer 4.1.0); tests/test_optimizers_packaged.py
checks both of its code paths against the equations. Departure: Nado et al.
(and MLPerf) keep the lr inside the momentum buffer, ``b = mu * b + lr * r *
(...); w -= b``; the package applies it outside, as torch.optim.SGD does,
which is identical at a constant lr and differs only while the schedule
changes it. Defaults: momentum 0.9 and weight decay 1e-4 (the paper's). The weights'
step is lr * eta * |w| per step, while biases and norms take plain momentum
SGD at lr, so the two are set separately for a small batch: lr 0.1 (the sgd
baseline's, for biases and norms) and eta 0.02, i.e. lr * eta = 2e-3 (the
paper's eta 0.001 goes with base rates of ~10-30 at batch 32k, which would
blow up the biases here). Measured on cifar tiny (seed 0): after 200 steps
train loss 2.34 -> 1.92, validation accuracy 0.23, i.e. it learns but slowly;
these defaults are a first guess, not a tuned point (a larger eta is likely
better).
"""

from pytorch_optimizer import LARS

from harness.params import decay_groups
from harness.schedules import warmup_cosine

KIND = "optimizer"
DESCRIPTION = "LARS (momentum SGD with layer-wise trust ratio), warmup + cosine"
PAPER = "You et al., Large Batch Training of Convolutional Networks, arXiv:1708.03888; Nado et al., A Large Batch Optimizer Reality Check, arXiv:2102.06356"
DEFAULTS = {
    "lr": 0.1,
    "momentum": 0.9,
    "nesterov": False,
    "trust_coefficient": 0.02,
    "weight_decay": 1e-4,
    "warmup_fraction": 0.05,
}
SEARCH_SPACE = {
    "lr": {"min": 1e-2, "max": 1.0, "scaling": "log"},
    "trust_coefficient": {"min": 2e-3, "max": 0.2, "scaling": "log"},
    "momentum": {"feasible_points": [0.9, 0.95]},
    "nesterov": {"feasible_points": [False, True]},
    "weight_decay": {"min": 1e-5, "max": 1e-3, "scaling": "log"},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}


def make_optimizer(params, hp, step_hint):
    return LARS(
        decay_groups(params, hp.weight_decay),  # no decay on norms and biases
        lr=hp.lr,
        momentum=hp.momentum,
        dampening=0.0,
        nesterov=hp.nesterov,
        trust_coefficient=hp.trust_coefficient,
    )


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
