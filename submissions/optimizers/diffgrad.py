"""diffGrad: Adam whose step is damped where the gradient barely changes.

Dubey et al., "diffGrad: An Optimization Method for Convolutional Neural
Networks", IEEE TNNLS 2020 (arXiv:1909.11015), Algorithm 1. Per step, with
g_0 = 0 (the official code's first "previous gradient"):

    m = b1 * m + (1 - b1) * g            v = b2 * v + (1 - b2) * g^2
    xi = sigmoid(|g_{t-1} - g_t|)        (the "diffGrad friction coefficient")
    p -= lr * xi * m_hat / (sqrt(v_hat) + eps)

Implemented by ``pytorch_optimizer.DiffGrad`` (pytorch-optimizer 4.1.0) with
``rectify=False, ams_bound=False`` (its RAdam/AMSBound extras off). Like the
authors' code it puts eps on the uncorrected root, ``lr * sqrt(1 - b2^t) /
(1 - b1^t) * xi * m / (sqrt(v + 1e-15) + eps)``, i.e. the paper's update with
eps scaled by sqrt(1 - b2^t) (the 1e-15 under the root is the package's);
tests/test_optimizers_packaged.py checks both of its code paths against that. Departure from the paper: decoupled (AdamW-style)
weight decay ``p *= 1 - lr * wd`` on weights only (the paper has none), so it
can be compared with adamw; with ``weight_decay=0`` it is the paper's update.
Defaults: the paper's lr 1e-3, b1 0.9, b2 0.999, eps 1e-8; decay as adamw.
"""

from pytorch_optimizer import DiffGrad

from harness.params import decay_groups
from harness.schedules import warmup_cosine

KIND = "optimizer"
DESCRIPTION = "diffGrad (Adam damped by gradient change), decoupled weight decay, warmup + cosine"
PAPER = "Dubey et al., diffGrad: An Optimization Method for Convolutional Neural Networks, IEEE TNNLS 2020, arXiv:1909.11015"
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
    return DiffGrad(
        decay_groups(params, hp.weight_decay),  # no decay on norms and biases
        lr=hp.lr,
        betas=(1.0 - hp.one_minus_beta1, hp.beta2),
        eps=hp.eps,
        weight_decouple=True,  # p *= 1 - lr * wd, scaled by the scheduled lr
        fixed_decay=False,
        rectify=False,
        ams_bound=False,
    )


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
