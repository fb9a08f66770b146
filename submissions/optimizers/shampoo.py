"""Shampoo: Kronecker-factored preconditioning with layer-wise grafting.

Gupta, Koren & Singer, "Shampoo: Preconditioned Stochastic Tensor
Optimization", ICML 2018 (arXiv:1802.09568), in the scalable form of Anil et
al., "Scalable Second Order Optimization for Deep Learning"
(arXiv:2002.09018). For a weight G (m x n):

    L = b2 * L + (1 - b2) * G G^T;   R = b2 * R + (1 - b2) * G^T G      (L_0 = R_0 = 1e-6 I)
    every ``precondition_frequency`` steps: L^(-1/4), R^(-1/4)
        by coupled Schur-Newton iteration with ridge 1e-6 * lambda_max
    graft (RMSProp): a = b2 * a + (1 - b2) * g^2;  r = g / (sqrt(a) + 1e-10)
    s = L^(-1/4) G R^(-1/4) rescaled to |r|  (from step ``start``; before it: r)
    p *= 1 - lr * wd;   m = b1 * m + (1 - b1) * s;   p -= lr * (b1 * m + (1 - b1) * s)   (Nesterov)

Conv kernels (o, i, kh, kw) get one factor per dimension, each raised to
-1/8 (Gupta et al.'s tensor case; ``shape_interpretation=False``: the
package's default merging of small dimensions would leave most of this small
model's layers, e.g. any matrix under 512 entries, unpreconditioned).
Dimensions over 512 are split into blocks. Vectors (biases, norms) have no
preconditioner and take the grafted RMSProp step. Implemented by ``pytorch_optimizer.ScalableShampoo`` (pytorch-optimizer
4.1.0), a port of Google's optax ``distributed_shampoo``; the test in
tests/test_optimizers_packaged.py checks statistics, roots, grafting,
momentum and decay against these equations (with exact roots, and separately
the Schur-Newton root against an eigendecomposition to its 1e-3 tolerance).

AlgoPerf's external-tuning winner is Meta's Distributed Shampoo (Shi et al.,
arXiv:2309.06497); it is not on PyPI (pip finds no ``distributed-shampoo``)
and cannot be installed here. How this one departs from it: (1) grafting is
RMSProp without bias correction and momentum is applied after grafting
(Distributed Shampoo grafts onto Adam, bias-corrected, and filters the
gradient with b1 before preconditioning); (2) roots by Schur-Newton with a
relative ridge eps 1e-6 * lambda_max, where Distributed Shampoo uses an
eigendecomposition with absolute eps (1e-12 by default) and bias-corrected
factor EMAs; (3) exponent -1/(2k) per factor (-1/4 for matrices), as
Distributed Shampoo's default; (4) preconditioners recomputed every 20 steps
from step 20 (Distributed Shampoo's AlgoPerf entry: every 100 steps, for
runs 10-100x longer than cifar tiny's 1500); (5) no merging of small
dimensions (Distributed Shampoo merges them up to its block size) and blocks
of 512 instead of 8192. The root computation syncs with the
host once per recomputation (its convergence check), as any Shampoo's
eigendecomposition does. Decay skips norms and biases.
"""

from pytorch_optimizer import ScalableShampoo
from pytorch_optimizer.optimizer.utils.graft import LayerWiseGrafting

from harness.params import decay_groups
from harness.schedules import warmup_cosine

KIND = "optimizer"
DESCRIPTION = "Shampoo (Google's scalable Shampoo, RMSProp grafting, Nesterov), warmup + cosine"
PAPER = "Gupta et al., Shampoo: Preconditioned Stochastic Tensor Optimization, ICML 2018, arXiv:1802.09568; Anil et al., Scalable Second Order Optimization for Deep Learning, arXiv:2002.09018"
DEFAULTS = {
    "lr": 2e-3,
    "one_minus_beta1": 0.1,  # beta1 = 0.9
    "beta2": 0.999,
    "weight_decay": 0.05,
    "precondition_frequency": 20,
    "warmup_fraction": 0.05,
}
SEARCH_SPACE = {
    "lr": {"min": 1e-4, "max": 1e-2, "scaling": "log"},
    "one_minus_beta1": {"min": 2e-2, "max": 0.5, "scaling": "log"},
    "beta2": {"feasible_points": [0.99, 0.999]},
    "weight_decay": {"min": 5e-3, "max": 1.0, "scaling": "log"},
    "precondition_frequency": {"feasible_points": [10, 20, 50]},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}


def make_optimizer(params, hp, step_hint):
    return ScalableShampoo(
        decay_groups(params, hp.weight_decay),  # no decay on norms and biases
        lr=hp.lr,
        betas=(1.0 - hp.one_minus_beta1, hp.beta2),
        moving_average_for_momentum=True,  # m is an EMA, so lr is on Adam's scale
        decoupled_weight_decay=True,
        decoupled_learning_rate=True,
        start_preconditioning_step=hp.precondition_frequency,
        preconditioning_compute_steps=hp.precondition_frequency,
        statistics_compute_steps=1,
        block_size=512,
        shape_interpretation=False,  # one factor per tensor dimension (see the docstring)
        graft_type=LayerWiseGrafting.RMSPROP,
        nesterov=True,
        diagonal_eps=1e-10,
        matrix_eps=1e-6,
        use_svd=False,  # Google's coupled Schur-Newton inverse root
    )


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
