"""SGDP: SGD with momentum and the radial component projected out for scale-invariant weights.

Heo et al., "AdamP: Slowing Down the Slowdown for Momentum Optimizers on
Scale-invariant Weights", ICLR 2021 (arXiv:2006.08217), Algorithm 1. Per step:

    b = mu * b + g;   u = g + mu * b (Nesterov) or u = b
    if max cos(w, g) < delta / sqrt(dim) over channels (then over the whole
    layer): u -= (w_n . u) w_n with w_n = w / |w|, and decay is scaled by wd_ratio
    p *= 1 - lr * wd * ratio / (1 - mu);  p -= lr * u

Implemented by ``pytorch_optimizer.SGDP`` (pytorch-optimizer 4.1.0), which is
the authors' code (clovaai/AdamP), including their decoupled decay divided by
(1 - mu) so that ``wd`` matches an SGD L2 coefficient / 10 at mu = 0.9;
tests/test_optimizers_packaged.py checks it against the equations above.
Decay skips norms and biases. Defaults: the authors' lr 0.1, Nesterov
momentum 0.9, weight decay 1e-5, delta 0.1, wd_ratio 0.1.
"""

import pytorch_optimizer.optimizer.adamp as _adamp
from pytorch_optimizer import SGDP

from harness.params import decay_groups
from harness.schedules import warmup_cosine

# The package flattens weights and gradients with ``.view``, which fails on
# channels_last conv kernels (the cifar model's layout); ``.reshape`` is the same
# flattening wherever ``.view`` works and copies only where it cannot.
_adamp.channel_view = lambda x: x.reshape(x.size(0), -1)
_adamp.layer_view = lambda x: x.reshape(1, -1)

KIND = "optimizer"
DESCRIPTION = "SGDP (Nesterov SGD with radial projection for scale-invariant weights), warmup + cosine"
PAPER = "Heo et al., AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant Weights, ICLR 2021, arXiv:2006.08217"
DEFAULTS = {
    "lr": 0.1,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 1e-5,
    "delta": 0.1,
    "wd_ratio": 0.1,
    "warmup_fraction": 0.05,
}
SEARCH_SPACE = {
    "lr": {"min": 1e-2, "max": 1.0, "scaling": "log"},
    "momentum": {"feasible_points": [0.8, 0.9, 0.95]},
    "weight_decay": {"min": 1e-6, "max": 1e-4, "scaling": "log"},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}


def make_optimizer(params, hp, step_hint):
    return SGDP(
        decay_groups(params, hp.weight_decay),  # no decay on norms and biases
        lr=hp.lr,
        momentum=hp.momentum,
        dampening=0.0,
        nesterov=hp.nesterov,
        weight_decouple=True,
        fixed_decay=False,
        delta=hp.delta,
        wd_ratio=hp.wd_ratio,
    )


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
