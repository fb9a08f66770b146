"""OrthoGrad (⊥Grad): drop the gradient's component along the weights, keep its norm.

Prieto, Barsbey, Mediano & Birdal, "Grokking at the Edge of Numerical Stability",
ICLR 2025 (arXiv:2501.04697), Section 5 (⊥Grad, and ⊥AdamW used in its
experiments). Per parameter tensor w with gradient g (flattened):

    g_perp = g - (w.g / (w.w + eps)) w
    g'     = g_perp * ||g|| / (||g_perp|| + eps)         # eps = 1e-30
    base optimizer step with g' in place of g            # here AdamW

Implemented by ``pytorch_optimizer.OrthoGrad`` (pytorch-optimizer 4.1.0) wrapping
``torch.optim.AdamW``: its per-parameter and its foreach (CUDA) paths compute
exactly the projection and rescaling above (tests/test_optimizers_handwritten.py
checks it against a re-implementation), in float32 for float32 weights. One
departure from the paper's code: when g is parallel to w to rounding
(||g_perp|| <= 4 * float_eps * ||g||) the package zeroes g' instead of rescaling
rounding noise up to ||g||. Weight decay (decoupled, AdamW's) skips norms and
biases; the paper's grokking runs apply ⊥ to every parameter tensor, as here.
DEFAULTS: AdamW's (this repository's adamw.py), warmup + cosine.
"""

import torch
from pytorch_optimizer import OrthoGrad

from harness.params import decay_groups
from harness.schedules import warmup_cosine

KIND = "optimizer"
DESCRIPTION = "⊥AdamW: OrthoGrad projection (gradient orthogonal to weights, norm kept) then AdamW"
PAPER = "Prieto et al., Grokking at the Edge of Numerical Stability, ICLR 2025, arXiv:2501.04697"
DEFAULTS = {
    "lr": 2e-3,
    "one_minus_beta1": 0.1,
    "beta2": 0.999,
    "eps": 1e-8,
    "weight_decay": 0.05,
    "warmup_fraction": 0.05,
}
SEARCH_SPACE = {
    "lr": {"min": 1e-4, "max": 1e-2, "scaling": "log"},
    "one_minus_beta1": {"min": 2e-2, "max": 0.5, "scaling": "log"},
    "beta2": {"feasible_points": [0.999]},
    "weight_decay": {"min": 5e-3, "max": 1.0, "scaling": "log"},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}


def make_optimizer(params, hp, step_hint):
    base = torch.optim.AdamW(
        decay_groups(params, hp.weight_decay),
        lr=hp.lr,
        betas=(1.0 - hp.one_minus_beta1, hp.beta2),
        eps=hp.eps,
    )
    return OrthoGrad(base)


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
