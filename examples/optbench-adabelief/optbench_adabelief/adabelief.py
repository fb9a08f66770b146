"""AdaBelief: Adam whose step size adapts to the *belief* in the gradient.

Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the Belief in
Observed Gradients", NeurIPS 2020 (arXiv:2010.07468), Algorithm 2. Adam divides
the momentum by the root of the EMA of g^2; AdaBelief divides it by the root of
the EMA of (g - m)^2, the squared deviation of the gradient from its prediction,
so it takes large steps where gradients agree with the momentum and small ones
where they do not:

    m = b1 * m + (1 - b1) * g
    s = b2 * s + (1 - b2) * (g - m)^2 + eps
    p *= 1 - lr * wd                                   (decoupled weight decay)
    p -= lr * m_hat / (sqrt(s_hat) + eps)

Implemented by ``pytorch_optimizer.AdaBelief`` with ``weight_decouple=True``,
``fixed_decay=False`` (AdamW-style decay, scaled by the scheduled lr) and
``rectify=False`` (the paper's plain variant; its RAdam-style rectification is an
option the authors use for some tasks). ``eps = 1e-16`` is the authors'
recommended value, equivalent to Adam's 1e-8 because it is added inside the
square root. No weight decay on norms and biases; linear warmup + cosine decay.
The search space mirrors optbench's AdamW baseline so the two compare on the
same tuning budget.

This module is an example of an external plugin: it lives in its own package,
is installed with ``pip install -e examples/optbench-adabelief``, and is found
through the entry point in its pyproject.toml; nothing in optbench names it.
"""

from pytorch_optimizer import AdaBelief

from harness.params import decay_groups
from harness.schedules import warmup_cosine

KIND = "optimizer"
DESCRIPTION = "AdaBelief (Adam on the gradient's deviation from its EMA), decoupled weight decay, warmup + cosine"
PAPER = "Zhuang et al., AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed Gradients, NeurIPS 2020, arXiv:2010.07468"
DEFAULTS = {
    "lr": 2e-3,
    "one_minus_beta1": 0.1,  # beta1 = 0.9
    "beta2": 0.999,
    "eps": 1e-16,
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
    return AdaBelief(
        decay_groups(params, hp.weight_decay),  # no decay on norms and biases
        lr=hp.lr,
        betas=(1.0 - hp.one_minus_beta1, hp.beta2),
        eps=hp.eps,
        weight_decouple=True,
        fixed_decay=False,
        rectify=False,
    )


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
