"""SPAM: Adam with spike-aware clipping and periodic momentum reset.

Huang et al., "SPAM: Spike-Aware Adam with Momentum Reset for Stable LLM
Training", ICLR 2025 (arXiv:2501.06842), Algorithm 1 (dense, density 1). Per
step t (counted from 1):

    at t = 1 and every t = multiple of DeltaT: m = v = 0, and a cosine warmup
    of the step restarts: s = 1 - 0.99 * (1 + cos(pi * (k + 1) / (N + 1))) / 2
    for the k = 0..N-1 steps after the reset, s = 1 otherwise
    when t >= 20 and t mod DeltaT >= 20 (``grad_accu_steps``), clip spikes:
        where g^2 > theta * v:  g = sign(g) * sqrt(theta * v)
    m = b1 * m + (1 - b1) * g            v = b2 * v + (1 - b2) * g^2
    p -= s * lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
    p *= 1 - lr * wd

Implemented by ``pytorch_optimizer.SPAM`` (pytorch-optimizer 4.1.0), a port of
the authors' code (TianjinYellow/SPAM-Optimizer); tests/test_optimizers_packaged.py
checks both of its code paths against the equations above, resets included.
As in the authors' code the bias corrections use the global step t (they are
not restarted with the moments; the cosine warmup covers the restart), eps sits
on the uncorrected root, and there is no warmup at t = 1. Departures: the
weight decay (decoupled, on weights only; the paper's LLM runs use none) so
that it compares with adamw. Defaults: the paper's lr 1e-3, betas (0.9, 0.999),
theta 5000, DeltaT 500, warmup N 150, eps 1e-6.
"""

from pytorch_optimizer import SPAM

from harness.params import decay_groups
from harness.schedules import warmup_cosine

KIND = "optimizer"
DESCRIPTION = "SPAM (Adam with spike clipping and momentum reset), decoupled weight decay, warmup + cosine"
PAPER = "Huang et al., SPAM: Spike-Aware Adam with Momentum Reset for Stable LLM Training, ICLR 2025, arXiv:2501.06842"
DEFAULTS = {
    "lr": 1e-3,
    "one_minus_beta1": 0.1,  # beta1 = 0.9
    "beta2": 0.999,
    "eps": 1e-6,
    "weight_decay": 0.05,
    "threshold": 5000,
    "reset_interval": 500,
    "reset_warmup_steps": 150,
    "warmup_fraction": 0.05,
}
SEARCH_SPACE = {
    "lr": {"min": 1e-4, "max": 1e-2, "scaling": "log"},
    "one_minus_beta1": {"min": 2e-2, "max": 0.5, "scaling": "log"},
    "beta2": {"feasible_points": [0.99, 0.999]},
    "weight_decay": {"min": 5e-3, "max": 1.0, "scaling": "log"},
    "reset_interval": {"feasible_points": [250, 500, 1000]},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}


def make_optimizer(params, hp, step_hint):
    return SPAM(
        decay_groups(params, hp.weight_decay),  # no decay on norms and biases
        lr=hp.lr,
        betas=(1.0 - hp.one_minus_beta1, hp.beta2),
        eps=hp.eps,
        density=1.0,  # the dense SPAM of the paper's main results
        threshold=hp.threshold,
        update_proj_gap=hp.reset_interval,  # DeltaT: steps between momentum resets
        warmup_epoch=hp.reset_warmup_steps,  # N: cosine warmup after each reset
        grad_accu_steps=20,
    )


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
