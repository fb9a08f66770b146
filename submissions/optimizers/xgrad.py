"""XGrad: gradients taken at weights predicted from the optimizer's own update rule.

Guan, Li, Shi & Meng, "XGrad: Boosting Gradient-Based Optimizers With Weight
Prediction", arXiv:2305.18240. Each step, before the forward
pass, the weights are moved s steps ahead along the base optimizer's current
update direction, the gradient is taken there, the weights are restored, and the
base optimizer steps from the *current* weights with that gradient:

    W_hat = W_t - s * lr_t * D_t          # predicted weights
    g     = grad f(W_hat)                 # forward + backward at W_hat
    W_t+1 = base_update(W_t, g)

with D_t from the state the base optimizer already holds (the paper's Eq. for
each optimizer, as in the authors' code github.com/guanleics/XGrad):

    SGDM:  D_t = buf                                   (momentum buffer; base: buf = m*buf + g, W -= lr*buf)
    AdamW: D_t = m_t / (1 - b1^t) / (sqrt(v_t / (1 - b2^t)) + eps)

Weight decay is left out of the prediction, as in the authors' code. On the first
step there is no state and no prediction. The base optimizers are
``torch.optim.SGD`` (momentum, coupled L2 decay as in the authors' SGD) and
``torch.optim.AdamW``, chosen by the ``base`` hyperparameter; norms and biases
get no decay. Runs through ``update(ctx)``: the prediction, the copy of the
weights and their restoration are timed, as part of the step.
DEFAULTS: s = 1 (the paper's default) on AdamW with AdamW's defaults.
"""

import torch

from harness.params import decay_groups
from harness.schedules import warmup_cosine
from submissions.optimizers._lib.hybrid import SharedStateOptimizer

KIND = "optimizer"
DESCRIPTION = "XGrad (gradients at weights predicted from the base optimizer's update) on AdamW or SGDM"
PAPER = "Guan et al., XGrad: Boosting Gradient-Based Optimizers With Weight Prediction, arXiv:2305.18240"
DEFAULTS = {
    "base": "adamw",
    "lr": 2e-3,
    "one_minus_beta1": 0.1,  # beta1 (AdamW) or momentum (SGDM) = 0.9
    "beta2": 0.999,
    "weight_decay": 0.05,
    "prediction_steps": 1,
    "warmup_fraction": 0.05,
}
SEARCH_SPACE = {
    "base": {"feasible_points": ["adamw", "sgdm"]},
    "lr": {"min": 1e-4, "max": 0.3, "scaling": "log"},
    "one_minus_beta1": {"min": 2e-2, "max": 0.5, "scaling": "log"},
    "beta2": {"feasible_points": [0.999]},
    "weight_decay": {"min": 5e-5, "max": 0.5, "scaling": "log"},
    "prediction_steps": {"feasible_points": [1, 2]},
    "warmup_fraction": {"feasible_points": [0.02, 0.05, 0.1]},
}


class XGrad(SharedStateOptimizer):
    """Wraps ``torch.optim.SGD`` (momentum) or ``torch.optim.AdamW``; ``step`` is the
    base step. Call ``predict_()`` before the forward pass and ``restore_()`` after
    the backward pass."""

    def __init__(self, inner: torch.optim.Optimizer, prediction_steps: int = 1) -> None:
        if not isinstance(inner, (torch.optim.SGD, torch.optim.AdamW)):
            raise ValueError(f"XGrad predicts weights for SGD and AdamW, got {type(inner).__name__}")
        super().__init__(inner)
        self.prediction_steps = prediction_steps
        self._saved: list[tuple[torch.Tensor, torch.Tensor]] = []

    @torch.no_grad()
    def predict_(self) -> None:
        s = self.prediction_steps
        self._saved = []
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if not state:  # first step: nothing to predict from
                    continue
                self._saved.append((p, p.detach().clone()))
                if isinstance(self.inner, torch.optim.SGD):
                    p.add_(state["momentum_buffer"], alpha=-s * group["lr"])
                else:
                    beta1, beta2 = group["betas"]
                    t = int(state["step"])  # a CPU tensor: no device sync
                    denom = (state["exp_avg_sq"].sqrt() / (1.0 - beta2**t) ** 0.5).add_(group["eps"])
                    p.addcdiv_(state["exp_avg"], denom, value=-s * group["lr"] / (1.0 - beta1**t))

    @torch.no_grad()
    def restore_(self) -> None:
        for p, saved in self._saved:
            p.copy_(saved)
        self._saved = []

    @torch.no_grad()
    def step(self, closure=None):
        return self.inner.step(closure)


def make_optimizer(params, hp, step_hint):
    groups = decay_groups(params, hp.weight_decay)
    beta1 = 1.0 - hp.one_minus_beta1
    if hp.base == "adamw":
        inner = torch.optim.AdamW(groups, lr=hp.lr, betas=(beta1, hp.beta2))
    elif hp.base == "sgdm":
        inner = torch.optim.SGD(groups, lr=hp.lr, momentum=beta1)
    else:
        raise ValueError(f"xgrad: base must be 'adamw' or 'sgdm', got {hp.base!r}")
    return XGrad(inner, int(hp.prediction_steps))


def make_schedule(optimizer, hp, step_hint):
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)


def update(ctx):
    opt = ctx.optimizer
    opt.zero_grad(set_to_none=True)
    opt.predict_()
    loss = ctx.loss_fn()
    loss.backward()
    ctx.clip_gradients()  # the run's grad_clip, if any: the gradient at the predicted weights
    opt.restore_()
    opt.step()
    if ctx.schedule is not None:
        ctx.schedule.step()
    return loss.detach()
