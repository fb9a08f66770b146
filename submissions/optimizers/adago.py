"""AdaGO: Muon's orthogonalized momentum with an AdaGrad-norm step size.

Zhang, Liu & Schaeffer, "AdaGrad Meets Muon: Adaptive Stepsizes for Orthogonal
Updates", arXiv:2509.02981, Algorithm 1. Per matrix parameter W with gradient G:

    M   = mu * M + (1 - mu) * G
    v^2 = v^2 + min(||G||_F^2, gamma^2)                 # one scalar per matrix
    O   = Orth(M)                                       # U V^T of M = U S V^T
    a   = max(eps, lr * min(||G||_F, gamma) / v)
    W   = (1 - lr * wd) * W - a * O

Orth is Muon's 5-step quintic Newton-Schulz iteration; v^2 starts at v0^2 = 1e-6.
MATRIX and CONV parameters (conv kernels as (out, in*kh*kw), as Keller Jordan's
Muon) get AdaGO; embeddings, the classifier head, biases and norms get AdamW
(lr ``adam_lr``), as the paper's experiments and Muon do.

Hand-written, not ``pytorch_optimizer.AdaGO`` (4.1.0): that class stores the sum
of squared norms in ``v`` and divides by it, i.e. uses lr * min(||G||, gamma) / v^2
where Algorithm 1 divides by v = sqrt(v^2); the step sizes differ by a factor v.
Departures from the paper: decoupled weight decay (``weight_decay``, not in
Algorithm 1; set 0 to recover it) and the shared warmup + cosine schedule on top
of the AdaGrad decay (the paper keeps lr constant). DEFAULTS take lr 0.05,
gamma 10, eps 5e-4 and mu 0.95 from pytorch-optimizer's AdaGO (the paper's own
CIFAR-10 values were not at hand); v0^2 = 1e-6 as there.
"""

import torch

from harness.schedules import warmup_cosine
from submissions.optimizers._lib.hybrid import adamw_step_, as_matrix, matrix_and_adamw_groups, newton_schulz5

KIND = "optimizer"
DESCRIPTION = "AdaGO (orthogonalized momentum, AdaGrad-norm step size) on matrices, AdamW elsewhere"
PAPER = "Zhang, Liu & Schaeffer, AdaGrad Meets Muon: Adaptive Stepsizes for Orthogonal Updates, arXiv:2509.02981"
DEFAULTS = {
    "lr": 0.05,
    "momentum": 0.95,
    "gamma": 10.0,
    "eps": 5e-4,
    "adam_lr": 2e-3,
    "weight_decay": 0.01,
    "warmup_fraction": 0.05,
}
SEARCH_SPACE = {
    "lr": {"min": 5e-3, "max": 0.5, "scaling": "log"},
    "momentum": {"feasible_points": [0.9, 0.95]},
    "gamma": {"feasible_points": [1.0, 10.0, 100.0]},
    "eps": {"feasible_points": [1e-4, 5e-4, 1e-3]},
    "adam_lr": {"min": 3e-4, "max": 1e-2, "scaling": "log"},
    "weight_decay": {"min": 1e-3, "max": 0.1, "scaling": "log"},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}


class AdaGO(torch.optim.Optimizer):
    def __init__(self, groups, lr=0.05, momentum=0.95, gamma=10.0, eps=5e-4, v0=1e-3, ns_steps=5,
                 adam_lr=2e-3, betas=(0.9, 0.999), adam_eps=1e-8):
        defaults = dict(lr=lr, momentum=momentum, gamma=gamma, eps=eps, v0=v0, ns_steps=ns_steps,
                        adam_lr=adam_lr, betas=betas, adam_eps=adam_eps, weight_decay=0.0, kind="adamw")
        super().__init__(groups, defaults)
        for group in self.param_groups:  # one schedule scales both rates together
            group["adam_ratio"] = group["adam_lr"] / group["lr"]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if group["kind"] == "adamw":
                    lr = group["lr"] * group["adam_ratio"]
                    adamw_step_(p, self.state[p], {**group, "adam_lr": lr, "eps": group["adam_eps"]})
                    continue
                self._adago_(p, group)
        return loss

    def _adago_(self, p, group):
        g = as_matrix(p.grad)
        state = self.state[p]
        if not state:
            state["momentum_buffer"] = torch.zeros_like(g)
            state["v_sq"] = torch.full((), group["v0"] ** 2, dtype=g.dtype, device=g.device)
        buf, v_sq = state["momentum_buffer"], state["v_sq"]
        buf.lerp_(g, 1.0 - group["momentum"])
        g_norm = g.norm()
        v_sq.add_(g_norm.square().clamp_max(group["gamma"] ** 2))
        step_size = (group["lr"] * g_norm.clamp_max(group["gamma"]) / v_sq.sqrt()).clamp_min(group["eps"])
        update = newton_schulz5(buf, group["ns_steps"])
        p.mul_(1.0 - group["lr"] * group["weight_decay"])
        p.sub_(step_size * update.view_as(p))


def make_optimizer(params, hp, step_hint):
    groups = matrix_and_adamw_groups(params, {"kind": "matrix"}, {}, hp.weight_decay)
    return AdaGO(groups, lr=hp.lr, momentum=hp.momentum, gamma=hp.gamma, eps=hp.eps, adam_lr=hp.adam_lr)


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
