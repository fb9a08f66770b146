"""SOAP: Adam run in the eigenbasis of Shampoo's preconditioner.

Vyas et al., "SOAP: Improving and Stabilizing Shampoo using Adam"
(arXiv:2409.11321), Algorithm 3. For a weight G with factors L, R
(conv kernels: one factor per dimension; vectors: plain Adam):

    step 1 only: L = (1 - s) G G^T, R = (1 - s) G^T G; Q_L, Q_R = eigenvectors; no update
    then, with t counted from step 2 as 1:
    G' = Q_L^T G Q_R                               (rotate)
    m = b1 * m + (1 - b1) * G                      (m kept in the original basis)
    v = b2 * v + (1 - b2) * G'^2                   (v in the rotated basis)
    N = Q_L ((Q_L^T m Q_R) / (sqrt(v) + eps)) Q_R^T
    p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * N;   p *= 1 - lr * wd
    L = s * L + (1 - s) G G^T,  R likewise  (s = shampoo_beta = b2)
    every f steps: Q <- QR(L Q) (one power iteration, columns sorted by the
    estimated eigenvalues, v permuted alike)

Implemented by ``pytorch_optimizer.SOAP`` (pytorch-optimizer 4.1.0), a port
of the authors' code (nikhilvyas/SOAP) with ``merge_dims=False,
precondition_1d=False, normalize_gradient=False, correct_bias=True``;
tests/test_optimizers_packaged.py checks it against the equations above.
Departure: no weight decay on norms and biases. Defaults: the paper's lr
3e-3, betas (0.95, 0.95), weight decay 0.01, precondition frequency 10, eps 1e-8.
"""

from pytorch_optimizer import SOAP

from harness.params import decay_groups
from harness.schedules import warmup_cosine

KIND = "optimizer"
DESCRIPTION = "SOAP (Adam in Shampoo's eigenbasis), decoupled weight decay, warmup + cosine"
PAPER = "Vyas et al., SOAP: Improving and Stabilizing Shampoo using Adam, arXiv:2409.11321"
DEFAULTS = {
    "lr": 3e-3,
    "beta1": 0.95,
    "beta2": 0.95,
    "eps": 1e-8,
    "weight_decay": 0.01,
    "precondition_frequency": 10,
    "warmup_fraction": 0.05,
}
SEARCH_SPACE = {
    "lr": {"min": 3e-4, "max": 3e-2, "scaling": "log"},
    "beta1": {"feasible_points": [0.9, 0.95]},
    "beta2": {"feasible_points": [0.95, 0.99]},
    "weight_decay": {"min": 1e-3, "max": 0.3, "scaling": "log"},
    "precondition_frequency": {"feasible_points": [5, 10, 20]},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}


def make_optimizer(params, hp, step_hint):
    return SOAP(
        decay_groups(params, hp.weight_decay),  # no decay on norms and biases
        lr=hp.lr,
        betas=(hp.beta1, hp.beta2),
        shampoo_beta=None,  # = beta2, as in the paper
        eps=hp.eps,
        precondition_frequency=hp.precondition_frequency,
        merge_dims=False,
        precondition_1d=False,
        correct_bias=True,
        normalize_gradient=False,
    )


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
