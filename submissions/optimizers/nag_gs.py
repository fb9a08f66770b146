"""NAG-GS: Nesterov accelerated gradient flow, semi-implicit Gauss-Seidel discretization.

Leplat, Merkulov, Katrutsa, Bershatsky, Tsymboi & Oseledets, "NAG-GS:
Semi-Implicit, Accelerated and Robust Stochastic Optimizer", arXiv:2209.14937,
Algorithm 1 (NAG-GS with the gamma update), as in the authors' reference code
(github.com/skolai/nag-gs, ``NAGGS``). State per parameter: v (starts at x_0)
and the scalar gamma (starts at gamma_0). With alpha the (scheduled) step size
and g = grad f(x_k), per step:

    b     = alpha * mu / (alpha * mu + gamma_k)
    v     = (1 - b) * v + b * (x_k - g / mu)          # implicit in v (Gauss-Seidel)
    gamma = (alpha * mu + gamma_k) / (1 + alpha)      # = (1 - a) gamma_k + a mu
    a     = alpha / (1 + alpha)
    x     = (1 - a) * x_k + a * v                     # uses the new v
    x    *= 1 - alpha * wd                            # decoupled weight decay (not in Algorithm 1)

Hand-written (no package implements it). Departures: decoupled weight decay
(the paper compares against SGD with weight decay and applies decay in its
ResNet runs; set 0 to recover Algorithm 1; none on norms and biases) and the
shared warmup + cosine schedule on alpha. gamma is a Python float per
parameter: it evolves deterministically from (alpha, mu), so it costs no sync.
DEFAULTS: mu = 1 and gamma_0 = 1.5 as in the authors' README example, alpha = 0.1
(the paper's ResNet values were not at hand). On cifar tiny alpha = 0.1 learns
slowly (0.33 validation accuracy after 400 steps, where AdamW is near 0.9); the
search space reaches alpha = 1.
"""

import torch

from harness.params import decay_groups
from harness.schedules import warmup_cosine

KIND = "optimizer"
DESCRIPTION = "NAG-GS (semi-implicit Gauss-Seidel Nesterov flow, gamma update), warmup + cosine"
PAPER = "Leplat et al., NAG-GS: Semi-Implicit, Accelerated and Robust Stochastic Optimizer, arXiv:2209.14937"
DEFAULTS = {
    "lr": 0.1,  # alpha
    "mu": 1.0,
    "gamma": 1.5,
    "weight_decay": 5e-4,
    "warmup_fraction": 0.05,
}
SEARCH_SPACE = {
    "lr": {"min": 0.01, "max": 1.0, "scaling": "log"},
    "mu": {"min": 0.1, "max": 10.0, "scaling": "log"},
    "gamma": {"min": 0.1, "max": 10.0, "scaling": "log"},
    "weight_decay": {"min": 1e-5, "max": 5e-3, "scaling": "log"},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}


class NAGGS(torch.optim.Optimizer):
    def __init__(self, params, lr=0.1, mu=1.0, gamma=1.5, weight_decay=0.0):
        if lr <= 0 or mu <= 0 or gamma <= 0:
            raise ValueError(f"NAG-GS needs alpha, mu, gamma > 0, got {lr}, {mu}, {gamma}")
        super().__init__(params, dict(lr=lr, mu=mu, gamma=gamma, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            alpha, mu, wd = group["lr"], group["mu"], group["weight_decay"]
            a = alpha / (1.0 + alpha)
            for x in group["params"]:
                if x.grad is None:
                    continue
                state = self.state[x]
                if not state:
                    state["v"] = x.detach().clone()
                    state["gamma"] = float(group["gamma"])
                v, gamma = state["v"], state["gamma"]
                b = alpha * mu / (alpha * mu + gamma)
                v.mul_(1.0 - b).add_(x, alpha=b).add_(x.grad, alpha=-b / mu)
                state["gamma"] = (alpha * mu + gamma) / (1.0 + alpha)
                x.lerp_(v, a)
                if wd:
                    x.mul_(1.0 - alpha * wd)
        return loss


def make_optimizer(params, hp, step_hint):
    return NAGGS(decay_groups(params, hp.weight_decay), lr=hp.lr, mu=hp.mu, gamma=hp.gamma)


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
