"""LAMB: Adam with decoupled weight decay and a layer-wise trust ratio.

You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76
minutes", ICLR 2020 (arXiv:1904.00962), Algorithm 2, as specified in Nado et
al., "A Large Batch Optimizer Reality Check" (arXiv:2102.06356). For each
weight tensor:

    m = b1 * m + (1 - b1) * g            v = b2 * v + (1 - b2) * g^2
    u = m_hat / (sqrt(v_hat) + eps) + wd * w
    w -= lr * (|w| / |u|) * u            (ratio 1 if |w| = 0 or |u| = 0)

Biases and norm parameters take the plain Adam step (no trust ratio, no
decay), as in Nado et al. Hand-written: ``pytorch_optimizer.Lamb`` applies
Adam's 1 / (1 - b1^t) *outside* the trust ratio (a 10x larger first step at
b1 = 0.9) and does not bias-correct v, so it departs from the paper's
algorithm; torch.optim has no LAMB. tests/test_optimizers_packaged.py checks
this module against an independent transcription of the equations. The
trust-ratio clip phi is the identity, as in the paper's experiments.
Defaults: betas (0.9, 0.999), eps 1e-6, weight decay 0.01 (the paper's BERT
values) and lr 5e-3 (LAMB's lr is a fraction of each weight's norm per step).
"""

import torch

from harness.params import NO_DECAY
from harness.schedules import warmup_cosine

KIND = "optimizer"
DESCRIPTION = "LAMB (Adam with layer-wise trust ratio, decoupled weight decay), warmup + cosine"
PAPER = "You et al., Large Batch Optimization for Deep Learning: Training BERT in 76 minutes, ICLR 2020, arXiv:1904.00962"
DEFAULTS = {
    "lr": 5e-3,
    "one_minus_beta1": 0.1,  # beta1 = 0.9
    "beta2": 0.999,
    "eps": 1e-6,
    "weight_decay": 0.01,
    "warmup_fraction": 0.05,
}
SEARCH_SPACE = {
    "lr": {"min": 5e-4, "max": 5e-2, "scaling": "log"},
    "one_minus_beta1": {"min": 2e-2, "max": 0.5, "scaling": "log"},
    "beta2": {"feasible_points": [0.99, 0.999]},
    "weight_decay": {"min": 1e-3, "max": 0.3, "scaling": "log"},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}


class LAMB(torch.optim.Optimizer):
    """Groups with ``trust=False`` take a plain Adam step (norms, biases)."""

    def __init__(self, params, lr, betas, eps, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, trust=True))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(p.grad, 1.0 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1.0 - beta2)
                denom = (v / (1.0 - beta2**t)).sqrt_().add_(group["eps"])
                update = (m / (1.0 - beta1**t)).div_(denom)
                if group["weight_decay"]:
                    update.add_(p, alpha=group["weight_decay"])
                if group["trust"]:
                    # stays on the device: no .item(), the ratio is a 0-d tensor
                    w_norm, u_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(update)
                    ratio = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
                    update.mul_(ratio)
                p.add_(update, alpha=-group["lr"])
        return loss


def make_optimizer(params, hp, step_hint):
    weights = [p.param for p in params if p.type not in NO_DECAY]
    plain = [p.param for p in params if p.type in NO_DECAY]
    groups = [{"params": weights, "weight_decay": hp.weight_decay, "trust": True},
              {"params": plain, "weight_decay": 0.0, "trust": False}]
    return LAMB(
        [g for g in groups if g["params"]],
        lr=hp.lr,
        betas=(1.0 - hp.one_minus_beta1, hp.beta2),
        eps=hp.eps,
    )


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
