"""Schedule-Free AdamW: no learning-rate schedule; evaluate at an online average of the iterates.

Defazio et al., "The Road Less Scheduled", NeurIPS 2024 (arXiv:2405.15682),
AlgoPerf v0.5's self-tuning winner. Gradients are taken at y, the step is
taken on z, and x (the weighted running average of z) is what gets evaluated:

    y = (1 - b1) * z + b1 * x
    v = b2 * v + (1 - b2) * g(y)^2;   u = g(y) / (sqrt(v / (1 - b2^t)) + eps) + wd * y
    z = z - lr_t * u
    c = w_t / sum_{i<=t} w_i,  w_t = t^r * max_{i<=t}(lr_i)^2;   x = (1 - c) * x + c * z

lr_t is the base rate times a linear warmup over ``warmup_fraction *
step_hint`` steps and constant after it: no decay schedule (the averaging
replaces it), so ``make_schedule`` is absent. Implemented by the
``schedulefree`` package's ``AdamWScheduleFree`` (which stores y in the
parameters and updates them in place); tests/test_optimizers_packaged.py
checks it against the equations above, its eval/train swap included.

``prepare_for_eval`` calls ``optimizer.eval()``, which overwrites the
parameters with x; ``prepare_for_train`` calls ``optimizer.train()`` to bring
y back (both timed, as AlgoPerf times them). Caveat: BatchNorm running
statistics are accumulated at the y points during training, not at x, so
evaluating x with them is slightly off; the schedulefree authors recommend
recomputing them with a few training-mode forward passes at x. This module
does not (the cost would be timed on every evaluation); expect a small
penalty on BatchNorm models. Weight decay (at y, as in the package) skips
norms and biases. Defaults: the package's (the paper's) lr 2.5e-3, betas
(0.9, 0.999), r 0, weight_lr_power 2, with 5% warmup and decay 0.05 as adamw.
"""

from schedulefree import AdamWScheduleFree

from harness.params import decay_groups

KIND = "optimizer"
DESCRIPTION = "Schedule-Free AdamW (iterate averaging instead of an lr schedule; evaluates the average)"
PAPER = "Defazio et al., The Road Less Scheduled, NeurIPS 2024, arXiv:2405.15682"
DEFAULTS = {
    "lr": 2.5e-3,
    "one_minus_beta1": 0.1,  # beta1 = 0.9
    "beta2": 0.999,
    "eps": 1e-8,
    "weight_decay": 0.05,
    "warmup_fraction": 0.05,
}
SEARCH_SPACE = {
    "lr": {"min": 2.5e-4, "max": 2.5e-2, "scaling": "log"},
    "one_minus_beta1": {"min": 2e-2, "max": 0.5, "scaling": "log"},
    "beta2": {"feasible_points": [0.99, 0.999]},
    "weight_decay": {"min": 5e-3, "max": 1.0, "scaling": "log"},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}


def make_optimizer(params, hp, step_hint):
    optimizer = AdamWScheduleFree(
        decay_groups(params, hp.weight_decay),  # no decay on norms and biases
        lr=hp.lr,
        betas=(1.0 - hp.one_minus_beta1, hp.beta2),
        eps=hp.eps,
        warmup_steps=max(1, int(round(hp.warmup_fraction * step_hint))),
        r=0.0,
        weight_lr_power=2.0,
    )
    optimizer.train()  # the package starts in eval mode and refuses to step there
    return optimizer


def prepare_for_eval(ctx):
    ctx.optimizer.eval()  # parameters <- x, the averaged iterate


def prepare_for_train(ctx):
    ctx.optimizer.train()  # parameters <- y, where gradients are taken
