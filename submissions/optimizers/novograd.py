"""NovoGrad: SGD momentum on layer-wise normalized gradients plus coupled weight decay.

Ginsburg et al., "Stochastic Gradient Methods with Layer-wise Adaptive Moments
for Training of Deep Networks", arXiv:1905.11286, Algorithm 1. For every
parameter tensor (a "layer") l, with a scalar second moment:

    t = 1:  v = |g|^2;                         m = g / sqrt(v) + wd * w
    t > 1:  v = b2 * v + (1 - b2) * |g|^2;     m = b1 * m + (g / (sqrt(v) + eps) + wd * w)
    w -= lr * m

Implemented by ``pytorch_optimizer.NovoGrad`` (pytorch-optimizer 4.1.0) with
``weight_decouple=False`` and ``grad_averaging=False`` (the paper's algorithm;
the package's defaults). Its only departure is eps also in the first step's
denominator, sqrt(v) + eps; tests/test_optimizers_packaged.py checks both of
its code paths against the equations. No decay on norms and biases.
Defaults: the paper's b1 0.95, b2 0.98 and its ResNet-50 settings lr 0.01,
weight decay 0.001 (its ImageNet runs also use warmup + cosine-like decay).
"""

from pytorch_optimizer import NovoGrad

from harness.params import decay_groups
from harness.schedules import warmup_cosine

KIND = "optimizer"
DESCRIPTION = "NovoGrad (layer-wise normalized momentum, coupled weight decay), warmup + cosine"
PAPER = "Ginsburg et al., Stochastic Gradient Methods with Layer-wise Adaptive Moments for Training of Deep Networks, arXiv:1905.11286"
DEFAULTS = {
    "lr": 0.01,
    "beta1": 0.95,
    "beta2": 0.98,
    "eps": 1e-8,
    "weight_decay": 1e-3,
    "warmup_fraction": 0.05,
}
SEARCH_SPACE = {
    "lr": {"min": 1e-3, "max": 0.1, "scaling": "log"},
    "beta1": {"feasible_points": [0.9, 0.95, 0.98]},
    "beta2": {"feasible_points": [0.98, 0.99]},
    "weight_decay": {"min": 1e-4, "max": 1e-2, "scaling": "log"},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}


def make_optimizer(params, hp, step_hint):
    return NovoGrad(
        decay_groups(params, hp.weight_decay),  # no decay on norms and biases
        lr=hp.lr,
        betas=(hp.beta1, hp.beta2),
        eps=hp.eps,
        weight_decouple=False,  # the paper adds wd * w to the normalized gradient
        grad_averaging=False,
    )


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
