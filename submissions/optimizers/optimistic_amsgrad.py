"""Optimistic-AMSGrad: AMSGrad plus an optimistic step along a predicted gradient.

Wang, Li, Karimi & Li, "An Optimistic Acceleration of AMSGrad for Nonconvex
Optimization", ACML 2021 (arXiv:1903.01435), Algorithm 2. Two sequences: the
auxiliary w_{t+1/2} (starts at w_1) and the iterate w_t where gradients are taken.
With v_0 = eps (so no eps in the denominator) and no bias correction, as in the
paper, per step t:

    theta_t   = b1 * theta_{t-1} + (1 - b1) * g_t
    v_t       = b2 * v_{t-1} + (1 - b2) * g_t^2
    vhat_t    = max(vhat_{t-1}, v_t)
    w_{t+1/2} = w_{t-1/2} - lr * theta_t / sqrt(vhat_t)
    h_{t+1}   = b1 * theta_{t-1} + (1 - b1) * m_{t+1}      # theta_{t-1}, as we read Algorithm 2
    w_{t+1}   = w_{t+1/2} - lr * h_{t+1} / sqrt(vhat_t)

m_{t+1}, the guess of the next gradient, is the paper's extrapolation of past
gradients (Section 4: regularized approximate minimal polynomial extrapolation,
Scieur et al. 2016) over the last r + 1 gradients g_{t-r}, ..., g_t of the whole
model: with U = [g_{t-r+1} - g_{t-r}, ..., g_t - g_{t-1}] (columns),

    z = (U^T U + lam * ||U^T U||_2 I)^{-1} 1,   c = z / sum(z),   m_{t+1} = sum_i c_i g_{t-r+i}

(i = 1..r). Until r + 1 gradients exist the guess is the last gradient, m_{t+1} = g_t.
The r x r system is solved on the device with ``torch.linalg.solve_ex`` (no
error check, hence no host sync); ||U^T U||_2 is approximated by its Frobenius norm.

Hand-written (no package implements it). Departures: decoupled weight decay on
the auxiliary sequence, w_{t+1/2} *= 1 - lr * wd (not in Algorithm 2; set 0 to
recover it; none on norms and biases), the shared warmup + cosine schedule, and
the extrapolation window r = 5 by default (memory: r + 1 gradient copies).
"""

import torch

from harness.params import decay_groups
from harness.schedules import warmup_cosine

KIND = "optimizer"
DESCRIPTION = "Optimistic-AMSGrad (AMSGrad + step along an extrapolated next gradient), warmup + cosine"
PAPER = "Wang, Li, Karimi & Li, An Optimistic Acceleration of AMSGrad for Nonconvex Optimization, ACML 2021, arXiv:1903.01435"
DEFAULTS = {
    "lr": 1e-3,
    "one_minus_beta1": 0.1,
    "beta2": 0.999,
    "eps": 1e-8,
    "span": 5,
    "reg": 1e-3,
    "weight_decay": 0.05,
    "warmup_fraction": 0.05,
}
SEARCH_SPACE = {
    "lr": {"min": 1e-4, "max": 1e-2, "scaling": "log"},
    "one_minus_beta1": {"min": 2e-2, "max": 0.5, "scaling": "log"},
    "beta2": {"feasible_points": [0.99, 0.999]},
    "span": {"feasible_points": [3, 5, 10]},
    "reg": {"feasible_points": [1e-4, 1e-3, 1e-2]},
    "weight_decay": {"min": 5e-3, "max": 1.0, "scaling": "log"},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}


class OptimisticAMSGrad(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, span=5, reg=1e-3, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.span = int(span)
        self.reg = reg
        self.t = 0

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        for p in params:
            state = self.state[p]
            if not state:
                state["half"] = p.detach().clone()  # w_{1/2} = w_1
                state["theta"] = torch.zeros_like(p)
                state["v"] = torch.full_like(p, self.param_groups[0]["eps"])
                state["vhat"] = state["v"].clone()
                state["history"] = []
            history = state["history"]
            history.append(p.grad.detach().clone())
            if len(history) > self.span + 1:
                history.pop(0)
        coeffs = self._extrapolation_coefficients(params)
        self.t += 1
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr = group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                g = p.grad
                theta_prev = state["theta"].clone()
                state["theta"].lerp_(g, 1.0 - beta1)
                state["v"].mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
                torch.maximum(state["vhat"], state["v"], out=state["vhat"])
                denom = state["vhat"].sqrt()
                half = state["half"]
                half.mul_(1.0 - lr * group["weight_decay"])
                half.addcdiv_(state["theta"], denom, value=-lr)
                guess = self._guess(state["history"], coeffs)
                h = theta_prev.mul_(beta1).add_(guess, alpha=1.0 - beta1)
                p.copy_(half).addcdiv_(h, denom, value=-lr)
        return loss

    def _extrapolation_coefficients(self, params):
        """RMPE weights c (r,) shared by all parameters, or None before r + 1 gradients."""
        r = self.span
        if not params or len(self.state[params[0]]["history"]) < r + 1:
            return None
        gram = None
        for p in params:
            hist = torch.stack([h.flatten() for h in self.state[p]["history"]])  # (r+1, n)
            diffs = hist[1:] - hist[:-1]  # (r, n)
            part = (diffs @ diffs.T).double()
            gram = part if gram is None else gram + part
        eye = torch.eye(r, dtype=gram.dtype, device=gram.device)
        system = gram + self.reg * gram.norm() * eye + 1e-30 * eye
        z, _ = torch.linalg.solve_ex(system, torch.ones(r, 1, dtype=gram.dtype, device=gram.device))
        return (z / z.sum()).flatten()

    @staticmethod
    def _guess(history, coeffs):
        if coeffs is None:
            return history[-1]
        stacked = torch.stack(history[1:])  # g_{t-r+1}, ..., g_t
        return torch.tensordot(coeffs.to(stacked.dtype), stacked, dims=1)


def make_optimizer(params, hp, step_hint):
    return OptimisticAMSGrad(
        decay_groups(params, hp.weight_decay),
        lr=hp.lr,
        betas=(1.0 - hp.one_minus_beta1, hp.beta2),
        eps=hp.eps,
        span=hp.span,
        reg=hp.reg,
    )


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
