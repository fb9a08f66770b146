"""AdamW: Adam with decoupled weight decay, warmup + cosine learning rate.

Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019
(arXiv:1711.05101). Each step shrinks the weights, ``p *= 1 - lr * wd``, then
takes the Adam step ``p -= lr * m_hat / (sqrt(v_hat) + eps)``. Implemented by
``torch.optim.AdamW``; weight decay skips norm and bias parameters.

This is the file to copy when writing a submission: literals first (optbench
reads them without importing the module), then ``make_optimizer`` and
``make_schedule``. Defaults lie inside the search space, which follows
AlgoPerf's AdamW baseline (reference_algorithms/paper_baselines/adamw).
"""

import torch

from harness.params import decay_groups
from harness.schedules import warmup_cosine

KIND = "optimizer"
DESCRIPTION = "AdamW (decoupled weight decay), linear warmup + cosine decay"
PAPER = "Loshchilov & Hutter, Decoupled Weight Decay Regularization, ICLR 2019, arXiv:1711.05101"
DEFAULTS = {
    "lr": 2e-3,
    "one_minus_beta1": 0.1,  # beta1 = 0.9
    "beta2": 0.999,
    "eps": 1e-8,
    "weight_decay": 0.05,
    "warmup_fraction": 0.05,
}
SEARCH_SPACE = {
    "lr": {"min": 1e-4, "max": 1e-2, "scaling": "log"},
    "one_minus_beta1": {"min": 2e-2, "max": 0.5, "scaling": "log"},
    "beta2": {"feasible_points": [0.999]},
    "weight_decay": {"min": 5e-3, "max": 1.0, "scaling": "log"},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}


def make_optimizer(params, hp, step_hint):
    return torch.optim.AdamW(
        decay_groups(params, hp.weight_decay),  # no decay on norms and biases
        lr=hp.lr,
        betas=(1.0 - hp.one_minus_beta1, hp.beta2),
        eps=hp.eps,
    )


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
