"""Pieces shared by hand-written optimizers that treat matrices specially
(ASGO, AdaGO) or wrap a base optimizer (XGrad).

* ``matrix_and_adamw_groups``: MATRIX and CONV parameters go to the matrix rule
  (conv kernels viewed as ``(out, in * kh * kw)``, as Keller Jordan's Muon does);
  EMBEDDING, HEAD, BIAS, NORM and OTHER go to AdamW, with no decay on norms and biases.
* ``adamw_step_``: the AdamW update (Loshchilov & Hutter, arXiv:1711.05101) used
  for the non-matrix groups.
* ``newton_schulz5``: Keller Jordan's quintic Newton-Schulz iteration for the
  orthogonal polar factor ``U V^T`` of ``G = U S V^T`` (the Muon orthogonalizer).
* ``SharedStateOptimizer``: a ``torch.optim.Optimizer`` that shares param groups
  and state with an inner optimizer, so schedules and ``zero_grad`` reach it.
"""

from __future__ import annotations

import math

import torch

from harness.api import ParamType

MATRIX_TYPES = (ParamType.MATRIX, ParamType.CONV)
NO_DECAY = (ParamType.NORM, ParamType.BIAS)


def matrix_and_adamw_groups(params, matrix_options: dict, adamw_options: dict, weight_decay: float) -> list[dict]:
    """Param groups tagged ``kind="matrix"`` or ``kind="adamw"``; ``weight_decay`` on
    everything but norms and biases."""
    matrices = [p.param for p in params if p.type in MATRIX_TYPES]
    decayed = [p.param for p in params if p.type not in MATRIX_TYPES and p.type not in NO_DECAY]
    plain = [p.param for p in params if p.type in NO_DECAY]
    groups = []
    if matrices:
        groups.append({"params": matrices, "kind": "matrix", "weight_decay": weight_decay, **matrix_options})
    if decayed:
        groups.append({"params": decayed, "kind": "adamw", "weight_decay": weight_decay, **adamw_options})
    if plain:
        groups.append({"params": plain, "kind": "adamw", "weight_decay": 0.0, **adamw_options})
    return groups


def as_matrix(t: torch.Tensor) -> torch.Tensor:
    """A 2-d view: conv kernels (out, in, kh, kw) -> (out, in * kh * kw)."""
    return t if t.ndim == 2 else t.reshape(t.shape[0], -1)


@torch.no_grad()
def adamw_step_(p: torch.Tensor, state: dict, group: dict) -> None:
    """One AdamW step on ``p`` (decoupled decay, bias-corrected moments)."""
    grad = p.grad
    if not state:
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(p)
        state["exp_avg_sq"] = torch.zeros_like(p)
    state["step"] += 1
    t = state["step"]
    beta1, beta2 = group["betas"]
    lr = group["adam_lr"]
    p.mul_(1.0 - lr * group["weight_decay"])
    state["exp_avg"].lerp_(grad, 1.0 - beta1)
    state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
    denom = (state["exp_avg_sq"].sqrt() / math.sqrt(1.0 - beta2**t)).add_(group["eps"])
    p.addcdiv_(state["exp_avg"], denom, value=-lr / (1.0 - beta1**t))


def newton_schulz5(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximate ``U V^T`` for ``g = U S V^T`` with Keller Jordan's quintic
    iteration (coefficients 3.4445, -4.7750, 2.0315; singular values land in
    about [0.7, 1.2], which Muon's experiments found harmless)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g
    transposed = x.shape[0] > x.shape[1]
    if transposed:  # iterate on the wide orientation: the Gram matrix is smaller
        x = x.mT
    x = x / (x.norm() + 1e-7)  # spectral norm <= Frobenius norm <= 1
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.mT if transposed else x


class SharedStateOptimizer(torch.optim.Optimizer):
    """Base for wrappers: its param groups and state *are* the inner optimizer's
    (the same dict objects), so an LR schedule built on the wrapper sets the
    inner learning rates, and ``zero_grad`` / ``state_dict`` see everything."""

    def __init__(self, inner: torch.optim.Optimizer) -> None:
        super().__init__(inner.param_groups, inner.defaults)
        self.inner = inner
        self.state = inner.state
