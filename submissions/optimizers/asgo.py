"""ASGO: one-sided full-matrix adaptive preconditioning of matrix parameters.

An, Liu, Pan, Ren, Ma, Goldfarb & Zhang, "ASGO: Adaptive Structured Gradient
Optimization", NeurIPS 2025 (arXiv:2503.20762). The analysed method keeps one
preconditioner per weight matrix W (m x n) on one side only,

    V_t = V_{t-1} + G_t G_t^T,     W_{t+1} = W_t - lr * V_t^{-1/2} G_t,

and the paper's practical version (its practical-implementation section and the authors' code,
github.com/infinity-stars/ASGO, ``optimizers/asgo.py``), which is what runs here,
adds momentum, an EMA preconditioner on the *smaller* side, an RMS-matched step
size and decoupled weight decay. Per matrix parameter, per step:

    M = mu * M + (1 - mu) * G
    if m < n:  V = b2 * V + (1 - b2) * G G^T;   U = V^{-1/2} M
    else:      V = b2 * V + (1 - b2) * G^T G;   U = M V^{-1/2}
    U = 0.2 * sqrt(m * n) * U / ||U||_F          # update RMS 0.2, as AdamW's
    W = (1 - lr * wd) * W - lr * U

V^{-1/2} is computed as in the authors' default (``inv_method=
_matrix_inverse_root_PolarExpress``, 10 steps): the coupled Newton-Schulz
iteration Y <- a Y + Y B, Z <- a Z + B Z with B = b ZY + c (ZY)^2 started at
Y = V / (1.01 ||V + eps I||_F), Z = I, with the Polar Express coefficients
(damped by 1.01, 1.01^3, 1.01^5 except the last), returning Z / sqrt(1.01 ||V + eps I||_F).
Only matrix multiplications: no host sync, unlike an eigendecomposition. It is an
approximation (small eigenvalues of V are not fully inverted in 10 steps), as in
the authors' runs.

MATRIX and CONV parameters (conv kernels as (out, in*kh*kw)) get ASGO; embeddings,
the classifier head, biases and norms get AdamW, as the paper's practical recipe
and the authors' code do. Hand-written: no package implements ASGO
(pytorch-optimizer 4.1.0 has none). Departures: the authors keep AdamW's lr
separate; here both halves share ``lr`` (the 0.2 RMS matching exists so that they
can) and AdamW's betas. DEFAULTS follow the authors' GPT-2 config (lr 0.01,
mu 0.9, beta2 0.8, wd 0.1), with the shared warmup + cosine schedule.
"""

import math

import torch

from harness.schedules import warmup_cosine
from submissions.optimizers._lib.hybrid import adamw_step_, as_matrix, matrix_and_adamw_groups

KIND = "optimizer"
DESCRIPTION = "ASGO (one-sided Shampoo-like preconditioner on matrices, AdamW elsewhere), warmup + cosine"
PAPER = "An et al., ASGO: Adaptive Structured Gradient Optimization, NeurIPS 2025, arXiv:2503.20762"
DEFAULTS = {
    "lr": 0.01,
    "momentum": 0.9,
    "beta2": 0.8,
    "weight_decay": 0.1,
    "warmup_fraction": 0.05,
}
SEARCH_SPACE = {
    "lr": {"min": 1e-3, "max": 5e-2, "scaling": "log"},
    "momentum": {"feasible_points": [0.8, 0.9, 0.95]},
    "beta2": {"feasible_points": [0.8, 0.95, 0.99]},
    "weight_decay": {"min": 1e-3, "max": 0.3, "scaling": "log"},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}

# Polar Express coefficients as in the authors' _matrix_inverse_root_PolarExpress.
_PE = [
    (8.28721201814563, -23.595886519098837, 17.300387312530933),
    (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
    (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
    (3.3184196573706015, -2.488488024314874, 0.51004894012372),
    (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
    (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
    (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
    (1.875, -1.25, 0.375),
]
_PE = [(a / 1.01, b / 1.01**3, c / 1.01**5) for a, b, c in _PE[:-1]] + [_PE[-1]]


def inverse_sqrt(v: torch.Tensor, eps: float, steps: int) -> torch.Tensor:
    """Approximate (V)^{-1/2} of a PSD matrix by the coupled Polar Express iteration."""
    eye = torch.eye(v.shape[0], dtype=v.dtype, device=v.device)
    scale = (v + eps * eye).norm() * 1.01
    y, z = v / scale, eye
    for a, b, c in _PE[:steps] + [_PE[-1]] * max(0, steps - len(_PE)):
        zy = z @ y
        bm = b * zy + c * zy @ zy
        y = a * y + y @ bm
        z = a * z + bm @ z
    return z / scale.sqrt()


class ASGO(torch.optim.Optimizer):
    def __init__(self, groups, lr=0.01, momentum=0.9, beta2=0.8, eps=1e-10, ns_steps=10,
                 betas=(0.9, 0.999), adam_eps=1e-8):
        defaults = dict(lr=lr, momentum=momentum, beta2=beta2, eps=eps, ns_steps=ns_steps,
                        betas=betas, adam_eps=adam_eps, weight_decay=0.0, kind="adamw")
        super().__init__(groups, defaults)

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
                    adamw_step_(p, self.state[p], {**group, "adam_lr": group["lr"], "eps": group["adam_eps"]})
                    continue
                self._asgo_(p, group)
        return loss

    def _asgo_(self, p, group):
        g = as_matrix(p.grad)
        m, n = g.shape
        state = self.state[p]
        if not state:
            state["momentum_buffer"] = torch.zeros_like(g)
            k = min(m, n)
            state["precond"] = torch.zeros(k, k, dtype=g.dtype, device=g.device)
        buf, precond = state["momentum_buffer"], state["precond"]
        buf.lerp_(g, 1.0 - group["momentum"])
        left = m < n  # precondition the smaller side (the right one for square matrices)
        precond.lerp_(g @ g.mT if left else g.mT @ g, 1.0 - group["beta2"])
        root = inverse_sqrt(precond, group["eps"], group["ns_steps"])
        update = root @ buf if left else buf @ root
        update = update * (0.2 * math.sqrt(m * n) / update.norm().clamp_min(1e-30))
        p.mul_(1.0 - group["lr"] * group["weight_decay"])
        p.add_(update.view_as(p), alpha=-group["lr"])


def make_optimizer(params, hp, step_hint):
    groups = matrix_and_adamw_groups(params, {"kind": "matrix"}, {}, hp.weight_decay)
    return ASGO(groups, lr=hp.lr, momentum=hp.momentum, beta2=hp.beta2)


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
