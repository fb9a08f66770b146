"""PSGD Kron: SGD with momentum preconditioned by Kronecker-factored Lie-group preconditioners.

Xi-Lin Li, "Curvature-Informed SGD via General Purpose Lie-Group
Preconditioners" (arXiv:2402.04553), and "Preconditioned Stochastic Gradient
Descent" (arXiv:1512.04202); the Kron variant as in Evan Walters' kron_torch.
For a weight matrix G (m x n) with upper-triangular factors Q1 (m x m), Q2
(n x n) (vectors use a diagonal q), per step t:

    m = mu * m + (1 - mu) * g;   h = m / (1 - mu^t)           (debiased momentum)
    on preconditioner-update steps (every step for 500 steps, then with
    frequency max(0.03, exp(-0.001 (t - 500)))), with V ~ N(0, I):
        A = Q1 h Q2^T;   B = Q1^-T V Q2^-1
        Q1 -= 0.1 * triu(A A^T - B B^T) / |A A^T + B B^T|_lb Q1   (same for Q2 with A^T A, B^T B)
    u = Q1^T Q1 h Q2^T Q2;   u *= min(1, 1.1 / rms(u))
    p -= lr * (u + wd * p)          (decay on ndim >= 2 only)

(|.|_lb: a lower bound of the spectral norm; diagonal factors use the max
norm.) Implemented by ``pytorch_optimizer.Kron`` (pytorch-optimizer 4.1.0),
checked against these equations in tests/test_optimizers_packaged.py.
Departure, for measurement integrity: the package rebalances the factor norms
with probability 0.01 per update using numpy's global RNG (host-side
randomness in the timed step); here ``balance_prob=0`` (the package still
draws one number per step, now unused) and the factors are rebalanced
deterministically every 100 steps instead. Rebalancing multiplies the
factors by scalars whose product is 1, so it does not change the
preconditioner, only guards the factors' range. Preconditioners are kept in
float32, and the factors are applied one tensor dimension at a time instead
of in the package's single einsum (the same product; see ``_apply_factors``).
Defaults: kron_torch's momentum 0.9, preconditioner lr 0.1, init scale 1.0,
and lr 3e-4 (PSGD's update RMS is about Adam's; kron_torch recommends a 3x
smaller lr than Adam's).
"""

import torch
import pytorch_optimizer.optimizer.psgd as _psgd
from pytorch_optimizer import Kron
from pytorch_optimizer.optimizer.psgd import balance_q

from harness.params import decay_groups
from harness.schedules import warmup_cosine

KIND = "optimizer"
DESCRIPTION = "PSGD Kron (Kronecker-factored Lie-group preconditioned momentum), warmup + cosine"
PAPER = "Li, Curvature-Informed SGD via General Purpose Lie-Group Preconditioners, arXiv:2402.04553"
DEFAULTS = {
    "lr": 3e-4,
    "momentum": 0.9,
    "weight_decay": 0.01,
    "warmup_fraction": 0.05,
}
SEARCH_SPACE = {
    "lr": {"min": 3e-5, "max": 3e-3, "scaling": "log"},
    "momentum": {"feasible_points": [0.9, 0.95]},
    "weight_decay": {"min": 1e-3, "max": 0.3, "scaling": "log"},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}

BALANCE_EVERY = 100


# The package applies all Kronecker factors in one ``torch.einsum``; without
# opt_einsum (not installed) torch contracts it left to right, first forming the
# outer product of the factors: for a 64x64x3x3 kernel a 1.3e9-entry
# intermediate (gigabytes, seconds per step). Applying the factors one
# dimension at a time is the same product at the cost of a few matmuls.
def _apply_factors(qs, g, gram):
    """g multiplied along every dimension d by Q_d (gram: Q_d^T Q_d); vectors q act diagonally."""
    if g.dim() == 0:
        return g * (qs[0] * qs[0] if gram else qs[0])
    for dim, q in enumerate(qs):
        if q.dim() < 2:
            shape = [1] * g.dim()
            shape[dim] = -1
            g = g * (q * q if gram else q).view(shape)
        else:
            g = torch.movedim(torch.tensordot(q.T @ q if gram else q, g, dims=([1], [dim])), 0, dim)
    return g


def _get_a_and_conj_b(expr_a, g, qs, v):
    """The package's get_a_and_conj_b with A = Q g computed factor by factor."""
    a = _apply_factors(qs, g, gram=False)
    order = g.dim()
    perm = list(range(order))
    conj_b = torch.permute(v.conj(), perm[1:] + perm[:1])
    for i, q in enumerate(qs):
        conj_b = conj_b / q if q.dim() < 2 else _psgd.solve_triangular_right(conj_b, q)
        if i < order - 1:
            conj_b = torch.transpose(conj_b, i, order - 1)
    return a, conj_b


_psgd.get_a_and_conj_b = _get_a_and_conj_b
_psgd.get_precondition_grad = lambda qs, expressions, g: _apply_factors(qs, g, gram=True)


class DeterministicKron(Kron):
    """Kron with its random factor balancing replaced by a fixed period."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        if self.param_groups[0]["step"] % BALANCE_EVERY == 0:
            for group in self.param_groups:
                for p in group["params"]:
                    qs = self.state[p].get("Q")
                    if qs is not None and p.dim() > 1:
                        balance_q(qs)
        return loss


def make_optimizer(params, hp, step_hint):
    return DeterministicKron(
        decay_groups(params, hp.weight_decay),  # no decay on norms and biases
        lr=hp.lr,
        momentum=hp.momentum,
        weight_decouple=True,  # p -= lr * (u + wd * p), after the RMS clip
        balance_prob=0.0,  # no numpy-RNG balancing inside the timed step (see DeterministicKron)
        precondition_dtype=torch.float32,
    )


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
