"""Muon: orthogonalized Nesterov momentum for weight matrices, AdamW for the rest.

Keller Jordan et al., "Muon: An optimizer for hidden layers in neural networks"
(2024, kellerjordan.github.io/posts/muon), as analysed by Kovalev,
"Understanding Gradient Orthogonalization for Deep Learning via Non-Euclidean
Trust-Region Optimization", arXiv:2503.12645. For each MATRIX / CONV parameter
(conv kernels viewed as (out, in * kh * kw), as Keller Jordan does for his
CIFAR-10 speedruns):

    b = mu * b + (1 - mu) * g;   u = (1 - mu) * g + mu * b      (Nesterov)
    O = NS5(u)   (5 quintic Newton-Schulz steps, coefficients (3.4445, -4.7750,
                  2.0315), in bfloat16, on u / |u|_F: O ~ U V^T of u = U S V^T)
    p *= 1 - lr * wd;   p -= lr * sqrt(max(1, rows / cols)) * O

EMBEDDING, HEAD, BIAS, NORM and OTHER parameters take an AdamW step with
their own base rate ``adamw_lr`` (decay only on EMBEDDING / HEAD / OTHER).

Implemented by ``pytorch_optimizer.Muon`` (pytorch-optimizer 4.1.0) with one
``use_muon=True`` group (the matrices) and two ``use_muon=False`` AdamW groups
(with and without decay); the package keys each group's update on that flag,
so mixed groups are handled exactly as above, with Keller Jordan's shape
factor (``use_adjusted_lr=False``, not Moonlight's 0.2 * sqrt(max dim)).
tests/test_optimizers_packaged.py checks both of its code paths against a
float64 re-implementation (exactly with the package's Newton-Schulz run in
float64, to bfloat16 accuracy as shipped) on tall, wide and square matrices,
where Nesterov, plain and no momentum differ by far more than the tolerance,
and that matrices and conv kernels really get near-orthogonal updates. The warmup + cosine schedule
scales both base rates alike. Defaults: Muon's lr 0.02, momentum 0.95,
Nesterov, 5 NS steps; AdamW lr 2e-3, betas (0.9, 0.95), eps 1e-10 for the rest.
"""

from pytorch_optimizer import Muon

from harness.api import ParamType
from harness.params import NO_DECAY
from harness.schedules import warmup_cosine

KIND = "optimizer"
DESCRIPTION = "Muon (Newton-Schulz orthogonalized momentum) on matrices/convs, AdamW elsewhere, warmup + cosine"
PAPER = "Jordan et al., Muon (2024); Kovalev, Understanding Gradient Orthogonalization for Deep Learning via Non-Euclidean Trust-Region Optimization, arXiv:2503.12645"
DEFAULTS = {
    "lr": 0.02,
    "momentum": 0.95,
    "ns_steps": 5,
    "adamw_lr": 2e-3,
    "adamw_beta1": 0.9,
    "adamw_beta2": 0.95,
    "weight_decay": 0.01,
    "warmup_fraction": 0.05,
}
SEARCH_SPACE = {
    "lr": {"min": 3e-3, "max": 0.1, "scaling": "log"},
    "momentum": {"feasible_points": [0.9, 0.95]},
    "adamw_lr": {"min": 3e-4, "max": 1e-2, "scaling": "log"},
    "weight_decay": {"min": 1e-3, "max": 0.3, "scaling": "log"},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}

MUON_TYPES = frozenset({ParamType.MATRIX, ParamType.CONV})


def make_optimizer(params, hp, step_hint):
    muon = [p.param for p in params if p.type in MUON_TYPES]
    adam_decay = [p.param for p in params if p.type not in MUON_TYPES and p.type not in NO_DECAY]
    adam_plain = [p.param for p in params if p.type in NO_DECAY]
    adam = {"use_muon": False, "lr": hp.adamw_lr, "betas": (hp.adamw_beta1, hp.adamw_beta2), "eps": 1e-10}
    groups = [
        {"params": muon, "use_muon": True, "lr": hp.lr, "momentum": hp.momentum,
         "nesterov": True, "ns_steps": hp.ns_steps, "weight_decay": hp.weight_decay},
        {"params": adam_decay, "weight_decay": hp.weight_decay, **adam},
        {"params": adam_plain, "weight_decay": 0.0, **adam},
    ]
    return Muon(
        [g for g in groups if g["params"]],
        use_adjusted_lr=False,  # Keller Jordan's sqrt(max(1, rows / cols)) shape factor
        weight_decouple=True,  # p *= 1 - lr * wd
    )


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
