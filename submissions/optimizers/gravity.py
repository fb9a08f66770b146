"""Gravity: a kinematics-inspired step bounded by the gradient's largest entry.

Bahrami & Zadeh, "Gravity Optimizer: a Kinematic Approach on Optimization in
Deep Learning", arXiv:2101.09192, Algorithm 1. With V_0 ~ N(0, (alpha / lr)^2)
and step t counted from 1:

    m = 1 / max|g|;   zeta = g / (1 + (g / m)^2)
    beta_t = (beta * t + 1) / (t + 2)
    V = beta_t * V + (1 - beta_t) * zeta
    p -= lr * V

Implemented by ``pytorch_optimizer.Gravity`` (pytorch-optimizer 4.1.0), which
runs exactly these equations (tests/test_optimizers_packaged.py checks both of
its code paths); V_0 is drawn from torch's generator, which the runner seeds,
so runs are reproducible. Departure: the paper has no weight decay; optbench
adds decoupled decay ``p *= 1 - lr * wd`` before each step, on weights only
(small by default), so it can be tuned like the others; ``weight_decay`` near
0 is the paper's algorithm. The schedule is cosine decay without warmup by
default (the paper's runs have none; note V_0 is scaled by the lr of the first
step, so a warmup would inflate it). Defaults: the paper's lr 0.1, alpha 0.01, beta 0.9.
"""

import torch
from pytorch_optimizer import Gravity

from harness.params import decay_groups
from harness.schedules import warmup_cosine

KIND = "optimizer"
DESCRIPTION = "Gravity (kinematic step bounded by max |g|), decoupled weight decay, cosine decay"
PAPER = "Bahrami & Zadeh, Gravity Optimizer: a Kinematic Approach on Optimization in Deep Learning, arXiv:2101.09192"
DEFAULTS = {
    "lr": 0.1,
    "alpha": 0.01,
    "beta": 0.9,
    "weight_decay": 5e-4,
    "warmup_fraction": 0.0,  # the paper warms nothing up; V_0's scale is alpha / (first lr)
}
SEARCH_SPACE = {
    "lr": {"min": 1e-2, "max": 1.0, "scaling": "log"},
    "alpha": {"feasible_points": [0.001, 0.01, 0.1]},
    "beta": {"feasible_points": [0.9, 0.95, 0.99]},
    "weight_decay": {"min": 1e-5, "max": 1e-2, "scaling": "log"},
    "warmup_fraction": {"feasible_points": [0.0, 0.02, 0.05]},
}


class DecayedGravity(Gravity):
    """Gravity with decoupled weight decay applied before its step."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            if group["weight_decay"]:
                params = [p for p in group["params"] if p.grad is not None]
                torch._foreach_mul_(params, 1.0 - group["lr"] * group["weight_decay"])
        return super().step(closure)


def make_optimizer(params, hp, step_hint):
    return DecayedGravity(
        decay_groups(params, hp.weight_decay),  # no decay on norms and biases
        lr=hp.lr,
        alpha=hp.alpha,
        beta=hp.beta,
    )


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
