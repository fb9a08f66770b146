"""Lion: sign of an interpolated momentum, decoupled weight decay, warmup + cosine.

Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023
(arXiv:2302.06675), Algorithm 2. Per step:

    c  = b1 * m + (1 - b1) * g
    p -= lr * (sign(c) + wd * p)
    m  = b2 * m + (1 - b2) * g

Implemented by ``pytorch_optimizer.Lion`` (pytorch-optimizer 4.1.0), called with
``weight_decouple=True, fixed_decay=False`` (decay scaled by the scheduled lr, as
in the paper) and none of its extras (``use_gc``, ``adanorm``, ``cautious`` stay
unset, ``maximize=False``); both its per-parameter and foreach paths then run the
paper's update unchanged (tests/test_submissions_basic.py checks this). It
applies the decay as ``p *= 1 - lr * wd`` before the sign step, which is the
same arithmetic. Only departure from the paper's setup: no weight decay on
norms and biases. The paper advises an lr 3-10x smaller and a weight decay
3-10x larger than AdamW's, keeping lr * wd about the same; the defaults are
AdamW's (2e-3, 0.05) scaled that way, with the paper's b1 = 0.9, b2 = 0.99.
"""

from pytorch_optimizer import Lion

from harness.params import decay_groups
from harness.schedules import warmup_cosine

KIND = "optimizer"
DESCRIPTION = "Lion (sign momentum, decoupled weight decay), linear warmup + cosine decay"
PAPER = "Chen et al., Symbolic Discovery of Optimization Algorithms, NeurIPS 2023, arXiv:2302.06675"
DEFAULTS = {
    "lr": 3e-4,
    "beta1": 0.9,
    "beta2": 0.99,
    "weight_decay": 0.3,
    "warmup_fraction": 0.05,
}
SEARCH_SPACE = {
    "lr": {"min": 1e-5, "max": 1e-3, "scaling": "log"},
    "beta1": {"feasible_points": [0.9, 0.95]},
    "beta2": {"feasible_points": [0.98, 0.99]},
    "weight_decay": {"min": 3e-2, "max": 3.0, "scaling": "log"},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}


def make_optimizer(params, hp, step_hint):
    return Lion(
        decay_groups(params, hp.weight_decay),  # no decay on norms and biases
        lr=hp.lr,
        betas=(hp.beta1, hp.beta2),
        weight_decouple=True,  # p *= 1 - lr * wd (the paper's decoupled decay)
        fixed_decay=False,  # decay scales with the scheduled lr, as in the paper
    )


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
