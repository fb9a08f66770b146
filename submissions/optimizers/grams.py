"""Grams: Adam's magnitude with the current gradient's sign.

Cao et al., "Grams: Gradient Descent with Adaptive Momentum Scaling",
arXiv:2412.17107, Algorithm 1. Per step:

    m = b1 * m + (1 - b1) * g            v = b2 * v + (1 - b2) * g^2
    u = m_hat / (sqrt(v_hat) + eps)
    p -= lr * (sign(g) * |u| + wd * p)

Implemented by ``pytorch_optimizer.Grams`` (pytorch-optimizer 4.1.0) with
decoupled decay (``weight_decouple=True``); both of its code paths run the
equations above unchanged (tests/test_optimizers_packaged.py). Only departure:
no weight decay on norms and biases. Defaults: the paper's Adam-style betas
(0.9, 0.999), eps 1e-8, lr 1e-3; decay as adamw.
"""

from pytorch_optimizer import Grams

from harness.params import decay_groups
from harness.schedules import warmup_cosine

KIND = "optimizer"
DESCRIPTION = "Grams (Adam magnitude, gradient sign), decoupled weight decay, warmup + cosine"
PAPER = "Cao et al., Grams: Gradient Descent with Adaptive Momentum Scaling, arXiv:2412.17107"
DEFAULTS = {
    "lr": 1e-3,
    "one_minus_beta1": 0.1,  # beta1 = 0.9
    "beta2": 0.999,
    "eps": 1e-8,
    "weight_decay": 0.05,
    "warmup_fraction": 0.05,
}
SEARCH_SPACE = {
    "lr": {"min": 1e-4, "max": 1e-2, "scaling": "log"},
    "one_minus_beta1": {"min": 2e-2, "max": 0.5, "scaling": "log"},
    "beta2": {"feasible_points": [0.99, 0.999]},
    "weight_decay": {"min": 5e-3, "max": 1.0, "scaling": "log"},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}


def make_optimizer(params, hp, step_hint):
    return Grams(
        decay_groups(params, hp.weight_decay),  # no decay on norms and biases
        lr=hp.lr,
        betas=(1.0 - hp.one_minus_beta1, hp.beta2),
        eps=hp.eps,
        weight_decouple=True,
    )


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
