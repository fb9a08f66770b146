"""NAdamW: Adam with Nesterov momentum and decoupled weight decay (AlgoPerf's baseline).

Nesterov-accelerated Adam (Dozat, "Incorporating Nesterov Momentum into Adam",
ICLR 2016 workshop) with AdamW's decoupled weight decay, exactly as AlgoPerf's
NAdamW baseline (mlcommons/algorithmic-efficiency, reference_algorithms/
paper_baselines/nadamw; Table 1 of Choi et al. 2019, arXiv:1910.05446). Per step t:

    p *= 1 - lr * wd
    m  = b1 * m + (1 - b1) * g
    v  = b2 * v + (1 - b2) * g**2
    n  = b1 * m + (1 - b1) * g                      # Nesterov look-ahead
    p -= lr / (1 - b1**t) * n / (sqrt(v) / sqrt(1 - b2**t) + eps)

Hand-written below because ``torch.optim.NAdam(decoupled_weight_decay=True)`` is
a different algorithm: it follows Dozat's momentum-decay schedule
(``mu_t = b1 * (1 - 0.5 * 0.96**(t * momentum_decay))``) with products of mu_t
as bias correction. Departures from AlgoPerf's submission: no weight decay on
norms and biases (AlgoPerf decays every parameter), and the shared
``warmup_cosine`` schedule (warmup from lr/warmup instead of ~0).
DEFAULTS are AlgoPerf's self-tuning NAdamW baseline hyperparameters
(prize_qualification_baselines/self_tuning/pytorch_nadamw_full_budget.py).
"""

import math

import torch

from harness.params import decay_groups
from harness.schedules import warmup_cosine

KIND = "optimizer"
DESCRIPTION = "NAdamW (Nesterov Adam, decoupled weight decay) as in AlgoPerf's baseline, warmup + cosine"
PAPER = "Dozat, Incorporating Nesterov Momentum into Adam, ICLR 2016 workshop; AlgoPerf NAdamW baseline"
DEFAULTS = {
    "lr": 0.0017486387539278373,
    "one_minus_beta1": 0.06733926164,
    "beta2": 0.9955159689799007,
    "eps": 1e-8,
    "weight_decay": 0.08121616522670176,
    "warmup_fraction": 0.02,
}
SEARCH_SPACE = {
    "lr": {"min": 1e-4, "max": 1e-2, "scaling": "log"},
    "one_minus_beta1": {"min": 2e-2, "max": 0.5, "scaling": "log"},
    "beta2": {"feasible_points": [0.9955159689799007, 0.999]},
    "weight_decay": {"min": 5e-3, "max": 1.0, "scaling": "log"},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}


class NAdamW(torch.optim.Optimizer):
    """The update rule in the module docstring, one parameter at a time."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"invalid NAdamW settings: lr={lr} betas={betas} eps={eps} wd={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]

                p.mul_(1.0 - lr * wd)
                m.mul_(beta1).add_(g, alpha=1.0 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
                nesterov = m.mul(beta1).add_(g, alpha=1.0 - beta1)
                denom = (v.sqrt() / math.sqrt(1.0 - beta2**t)).add_(eps)
                p.addcdiv_(nesterov, denom, value=-lr / (1.0 - beta1**t))
        return loss


def make_optimizer(params, hp, step_hint):
    return NAdamW(
        decay_groups(params, hp.weight_decay),  # no decay on norms and biases
        lr=hp.lr,
        betas=(1.0 - hp.one_minus_beta1, hp.beta2),
        eps=hp.eps,
    )


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
