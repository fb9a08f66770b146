"""Ranger21: AdamW + positive-negative momentum + Lookahead + a dozen stabilizers.

Wright & Demeure, "Ranger21: a synergistic deep learning optimizer",
arXiv:2106.13731. Per step (all parameters share step t):

    g = AGC(g)  (adaptive gradient clipping: per-unit |g| <= 0.01 * max(|p|, 1e-3))
    g = GC(g); g = g / std(g)  (gradient centralization and normalization, ndim > 1 / numel > 2)
    v = b2 * v + (1 - b2) * g^2;  s = sqrt(mean over *all* parameters of v / (1 - b2^t))
    p *= 1 - lr_t * wd / s                      (stable weight decay)
    p *= 1 - lr_t * 2e-4 * (1 - 1 / |p|_unit)    (norm loss)
    v_max = max(v_max, v);  d = softplus(sqrt(v_max) / sqrt(1 - b2^t) + eps, beta=50)
    m_t = b1^2-EMA of g into the even/odd buffer; pnm = ((1 + b0) m_t - b0 m_{t-1}) / sqrt((1+b0)^2 + b0^2)
    p -= lr_t / (1 - b1^t) * pnm / d
    every 5 steps: p = slow = 0.5 * p + 0.5 * slow          (Lookahead)

lr_t is Ranger21's own schedule: linear warmup over ceil(2 / (1 - b2)) steps
(22% of the run if that is over 45% of it), flat, then a linear warm-down over
the last 28% of ``num_iterations`` to 3e-5, so this submission passes the
step hint as ``num_iterations`` and has no ``make_schedule``.

Implemented by ``pytorch_optimizer.Ranger21`` (pytorch-optimizer 4.1.0), a
port of the authors' code (lessw2020/Ranger21), which the test in
tests/test_optimizers_packaged.py checks against the equations above. As in
the authors' code, GC and normalization are applied a second time before the
momentum update (GC is idempotent; the second normalization rescales by
1/std of the already normalized gradient) and the norm loss touches every
parameter, biases and norm gains included. Package quirk kept: the variance
sum behind s starts at 1.0 instead of 0 (adds 1 / #params to the mean, about
1e-5 here). Weight decay skips norms and biases. Defaults are the paper's:
lr 1e-3, betas (0.9, 0.999), b0 0.9 (PNM), weight decay 1e-4.
"""

from pytorch_optimizer import Ranger21

from harness.params import decay_groups

KIND = "optimizer"
DESCRIPTION = "Ranger21 (AdamW+PNM+Lookahead+AGC+GC, own warmup/warm-down schedule from the step hint)"
PAPER = "Wright & Demeure, Ranger21: a synergistic deep learning optimizer, arXiv:2106.13731"
DEFAULTS = {
    "lr": 1e-3,
    "beta1": 0.9,
    "beta2": 0.999,
    "weight_decay": 1e-4,
}
SEARCH_SPACE = {
    "lr": {"min": 1e-4, "max": 1e-2, "scaling": "log"},
    "beta1": {"feasible_points": [0.9, 0.95]},
    "beta2": {"feasible_points": [0.99, 0.999]},
    "weight_decay": {"min": 1e-5, "max": 1e-2, "scaling": "log"},
}


def make_optimizer(params, hp, step_hint):
    return Ranger21(
        decay_groups(params, hp.weight_decay),  # no decay on norms and biases
        num_iterations=step_hint,  # its built-in warmup / warm-down is laid out over the step hint
        lr=hp.lr,
        betas=(hp.beta1, hp.beta2),
    )
