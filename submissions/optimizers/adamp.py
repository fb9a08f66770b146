"""AdamP: Adam with the radial component projected out for scale-invariant weights.

Heo et al., "AdamP: Slowing Down the Slowdown for Momentum Optimizers on
Scale-invariant Weights", ICLR 2021 (arXiv:2006.08217), Algorithm 2. Per step:

    m = b1 * m + (1 - b1) * g            v = b2 * v + (1 - b2) * g^2
    u = m_hat / (sqrt(v_hat) + eps)      (Nesterov: b1 * m_hat + (1 - b1) * g_hat)
    if max cos(w, g) < delta / sqrt(dim) over channels (then over the whole
    layer): u -= (w_n . u) w_n with w_n = w / |w|  (per channel / layer), and
    the weight decay is scaled by wd_ratio
    p *= 1 - lr * wd * ratio;  p -= lr * u

Only tensors with ndim > 1 are tested for scale invariance. Implemented by
``pytorch_optimizer.AdamP`` (pytorch-optimizer 4.1.0), which follows the
authors' code (clovaai/AdamP) except that eps sits on the uncorrected root:
``u = m_hat * sqrt(1 - b2^t) / (sqrt(v) + eps)``, i.e. eps scaled by
sqrt(1 - b2^t); the equation test (tests/test_optimizers_packaged.py) checks
its per-parameter and foreach paths against that. Decay is decoupled, as in
the paper, and skips norms and biases. Defaults: the authors' recommended
lr 1e-3, betas (0.9, 0.999), weight decay 1e-2, delta 0.1, wd_ratio 0.1.
"""

import pytorch_optimizer.optimizer.adamp as _adamp
from pytorch_optimizer import AdamP

from harness.params import decay_groups
from harness.schedules import warmup_cosine

# The package flattens weights and gradients with ``.view``, which fails on
# channels_last conv kernels (the cifar model's layout); ``.reshape`` is the same
# flattening wherever ``.view`` works and copies only where it cannot.
_adamp.channel_view = lambda x: x.reshape(x.size(0), -1)
_adamp.layer_view = lambda x: x.reshape(1, -1)

KIND = "optimizer"
DESCRIPTION = "AdamP (Adam with radial projection for scale-invariant weights), warmup + cosine"
PAPER = "Heo et al., AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant Weights, ICLR 2021, arXiv:2006.08217"
DEFAULTS = {
    "lr": 1e-3,
    "one_minus_beta1": 0.1,  # beta1 = 0.9
    "beta2": 0.999,
    "eps": 1e-8,
    "weight_decay": 1e-2,
    "delta": 0.1,
    "wd_ratio": 0.1,
    "nesterov": False,
    "warmup_fraction": 0.05,
}
SEARCH_SPACE = {
    "lr": {"min": 1e-4, "max": 1e-2, "scaling": "log"},
    "one_minus_beta1": {"min": 2e-2, "max": 0.5, "scaling": "log"},
    "beta2": {"feasible_points": [0.99, 0.999]},
    "weight_decay": {"min": 1e-3, "max": 0.3, "scaling": "log"},
    "nesterov": {"feasible_points": [False, True]},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}


def make_optimizer(params, hp, step_hint):
    return AdamP(
        decay_groups(params, hp.weight_decay),  # no decay on norms and biases
        lr=hp.lr,
        betas=(1.0 - hp.one_minus_beta1, hp.beta2),
        eps=hp.eps,
        weight_decouple=True,
        fixed_decay=False,
        delta=hp.delta,
        wd_ratio=hp.wd_ratio,
        nesterov=hp.nesterov,
    )


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
