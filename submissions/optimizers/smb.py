"""SMB: stochastic gradient steps backed by a model-building step when they fail Armijo.

Birbil, Martin, Onay & Oztoprak, "Bolstering Stochastic Gradient Descent with
Model Building", TOP 2024 (arXiv:2111.07058), Algorithm 1 (SMB, the same
mini-batch for the trial point), as in the authors' code (github.com/sibirbil/SMB,
``smb/smb.py``, ``step_smb``). With loss f and gradient g at x_k on the batch:

    s   = -lr * g;  x_t = x_k + s                                  # trial point
    if f(x_t) <= f(x_k) - c * lr * ||g||^2  (or ||g|| < 1e-8):  x_{k+1} = x_t
    else, per parameter tensor (the authors build the model layer by layer),
    with g_t = grad f(x_t), y = g_t - g:
        sigma = (||s|| (||y|| + ||g|| / eta) - y.s) / 2
        theta = (y.s + 2 sigma)^2 - ||s||^2 ||y||^2
        c_g = -||s||^2 / (2 sigma)
        c_s = c_g / theta * (-(y.s + 2 sigma) * y.g + ||y||^2 * s.g)
        c_y = c_g / theta * (-(y.s + 2 sigma) * s.g + ||s||^2 * y.g)
        x_{k+1} = x_k + c_s * s + c_g * g + c_y * y

(the minimizer of a quadratic model through x_k and x_t with a cubic-like
regularization sigma). Norms are Frobenius norms of each tensor, dots over its
entries; ||g|| in the Armijo test is over all parameters.

Runs through ``update(ctx)``: two forward and two backward passes per step, all
timed, as AlgoPerf times extra passes. The paper backpropagates at x_t only when
the Armijo test fails; deciding that on the host would need a device sync in
the timed step, so the gradient at x_t is always computed and the accepted
point is chosen on the device with ``torch.where``: the iterates are the
paper's, each step pays one backward pass more when the trial point is accepted.
Hand-written (no package implements SMB). Departures: decoupled weight decay
after the step (x *= 1 - lr * wd, not in the paper; none on norms and biases;
set 0 to recover it) and a constant lr without the authors' optional
"autoschedule" (the paper's default runs use a constant lr). ``step()`` needs a
closure; ``update`` is the normal entry point.
DEFAULTS: lr = 0.5, c = 0.1, eta = 0.99, the authors' paper benchmarks
(source/smbexperiments/experimentconfigurations/paper_benchmarks.yaml, no autoschedule).
"""

import torch

from harness.params import decay_groups

KIND = "optimizer"
DESCRIPTION = "SMB (SGD step, model-building step when Armijo fails; 2 forward + 2 backward passes), constant lr"
PAPER = "Birbil, Martin, Onay & Oztoprak, Bolstering Stochastic Gradient Descent with Model Building, TOP 2024, arXiv:2111.07058"
DEFAULTS = {
    "lr": 0.5,
    "c": 0.1,
    "eta": 0.99,
    "weight_decay": 5e-4,
}
SEARCH_SPACE = {
    "lr": {"min": 0.01, "max": 2.0, "scaling": "log"},
    "c": {"feasible_points": [0.01, 0.1, 0.3]},
    "eta": {"feasible_points": [0.9, 0.99]},
    "weight_decay": {"min": 1e-5, "max": 5e-3, "scaling": "log"},
}


class SMB(torch.optim.Optimizer):
    def __init__(self, params, lr=0.5, c=0.1, eta=0.99, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, c=c, eta=eta, weight_decay=weight_decay))

    def step(self, closure=None):
        """``closure()`` must zero the gradients, evaluate the loss at the current
        weights, backpropagate and return the loss (as for torch.optim.LBFGS)."""
        if closure is None:
            raise ValueError("SMB needs a closure that re-evaluates the loss (use the submission's update hook)")
        loss = closure()
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        with torch.no_grad():
            grads = [p.grad.detach().clone() for p in params]
            g_sq = torch.stack([g.square().sum() for g in grads]).sum()
            steps, lrs = [], {}
            for group in self.param_groups:
                for p in group["params"]:
                    lrs[p] = group
            for p, g in zip(params, grads):
                s = g * -lrs[p]["lr"]
                p.add_(s)
                steps.append(s)
        # All groups share lr and c (make_optimizer builds them so).
        group0 = self.param_groups[0]
        lr, c, eta = group0["lr"], group0["c"], group0["eta"]
        trial_loss = closure()  # f(x_t) and g_t = grad f(x_t)
        with torch.no_grad():
            accept = (trial_loss <= loss - c * lr * g_sq) | (g_sq.sqrt() < 1e-8)
            for p, g, s in zip(params, grads, steps):
                g_t = p.grad if p.grad is not None else torch.zeros_like(g)
                y = g_t - g
                ss, yy, gg = s.square().sum(), y.square().sum(), g.square().sum()
                ys, yg, sg = (y * s).sum(), (y * g).sum(), (s * g).sum()
                sigma = 0.5 * (ss.sqrt() * (yy.sqrt() + gg.sqrt() / eta) - ys)
                theta = (ys + 2.0 * sigma) ** 2 - ss * yy
                cg = -ss / (2.0 * sigma)
                cs = cg / theta * (-(ys + 2.0 * sigma) * yg + yy * sg)
                cy = cg / theta * (-(ys + 2.0 * sigma) * sg + ss * yg)
                model_step = cs * s + cg * g + cy * y
                # A tensor with zero gradient has ss = 0 (0/0 above): it stays put.
                keep = accept | (ss == 0)
                p.add_(torch.where(keep, torch.zeros_like(s), model_step - s))
                wd = lrs[p]["weight_decay"]
                if wd:
                    p.mul_(1.0 - lr * wd)
        return loss


def make_optimizer(params, hp, step_hint):
    return SMB(decay_groups(params, hp.weight_decay), lr=hp.lr, c=hp.c, eta=hp.eta)


def update(ctx):
    opt = ctx.optimizer

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = ctx.loss_fn()
        loss.backward()
        ctx.clip_gradients()  # the run's grad_clip, if any: SMB's step uses the clipped gradient
        return loss.detach()

    loss = opt.step(closure)
    if ctx.schedule is not None:
        ctx.schedule.step()
    return loss
