"""SGD with Nesterov momentum, L2 weight decay, warmup + cosine learning rate.

Heavy-ball / Nesterov momentum as used in deep learning (Sutskever, Martens,
Dahl & Hinton, "On the importance of initialization and momentum in deep
learning", ICML 2013): ``b = mu * b + (g + wd * p)``, then ``p -= lr * (g + wd * p
+ mu * b)`` with Nesterov or ``p -= lr * b`` without. Implemented by
``torch.optim.SGD``. The weight decay is the classic coupled L2 term (added to
the gradient), applied to weights only, not to norms and biases. Defaults are
the Wide-ResNet CIFAR recipe (Zagoruyko & Komodakis 2016: lr 0.1, Nesterov
momentum 0.9, weight decay 5e-4); AlgoPerf's Nesterov baseline tunes the same
knobs but decays the rate linearly, where this uses warmup + cosine.
"""

import torch

from harness.params import decay_groups
from harness.schedules import warmup_cosine

KIND = "optimizer"
DESCRIPTION = "SGD with Nesterov momentum and L2 weight decay, linear warmup + cosine decay"
PAPER = "Sutskever et al., On the importance of initialization and momentum in deep learning, ICML 2013"
DEFAULTS = {
    "lr": 0.1,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
    "warmup_fraction": 0.05,
}
SEARCH_SPACE = {
    "lr": {"min": 1e-2, "max": 1.0, "scaling": "log"},
    "momentum": {"feasible_points": [0.8, 0.9, 0.95, 0.99]},
    "weight_decay": {"min": 1e-5, "max": 1e-3, "scaling": "log"},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}


def make_optimizer(params, hp, step_hint):
    return torch.optim.SGD(
        decay_groups(params, hp.weight_decay),  # no decay on norms and biases
        lr=hp.lr,
        momentum=hp.momentum,
        nesterov=hp.nesterov,
    )


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
