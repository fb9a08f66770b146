"""PowerNorm: batch quadratic-mean normalization with running statistics in the
forward pass and an approximate backward pass.

Shen, Yao, Gholami, Mahoney & Keutzer, "PowerNorm: Rethinking Batch
Normalization in Transformers", ICML 2020 (arXiv:2003.07845), Algorithm 1.
Per feature c, with statistics over every position of the batch (tokens
(B, T) at token sites; (N, H, W) at conv sites):

  forward (training, iteration t)
      psi2_B  = mean(x^2)                         batch quadratic mean (no centering)
      x_hat   = x / sqrt(psi2_{t-1} + eps)        normalized by the *running* statistic
      y       = gamma * x_hat + beta
      psi2_t  = alpha_f * psi2_{t-1} + (1 - alpha_f) * psi2_B
  backward
      g       = gamma * dL/dy
      x~'     = g - nu_{t-1} * x_hat
      nu_t    = nu_{t-1} * (1 - (1 - alpha_b) * Gamma) + (1 - alpha_b) * Lambda,
                Gamma = mean(x_hat^2), Lambda = mean(g * x_hat)
      dL/dx   = x~' / sqrt(psi2_{t-1} + eps)
  eval:  y = gamma * x / sqrt(psi2 + eps) + beta

Because the forward divides by psi2_{t-1}, a constant of the current batch,
the exact gradient would be g / sqrt(psi2_{t-1}); the nu term is the paper's
control-variate estimate of the gradient through the running statistic. (The
authors' code, github.com/sIncerass/powernorm, keeps nu scaled by
1 / (1 - alpha_b), which is the same recursion.) The custom autograd.Function
below implements this backward; nu is a buffer written by the backward pass.

Also from the authors' code: for the first ``warmup_iters`` training
iterations the current batch's psi2_B normalizes (its running estimate is then
the plain average of those batches), and at token sites each token is first
divided by the RMS of its features ("GroupScaling1D" with one group; set
``group_scaling`` false to drop it). The authors' code divides the backward by
the *batch* statistic; here it uses the same statistic as the forward, so the
backward is exact when nu = 0 (tested by gradcheck). The iteration counter is
a Python int, so the timed path never reads a tensor back to the host.
"""

import torch
from torch import nn

KIND = "norm"
DESCRIPTION = "PowerNorm: running quadratic-mean norm with approximate backward (token, conv)"
PAPER = "Shen et al., PowerNorm: Rethinking Batch Normalization in Transformers, ICML 2020, arXiv:2003.07845"
SITES = ("token", "conv")
DEFAULTS = {"alpha_fwd": 0.9, "alpha_bkw": 0.9, "eps": 1e-5, "warmup_iters": 0, "group_scaling": True}
SEARCH_SPACE = {
    "alpha_fwd": {"feasible_points": [0.9, 0.99]},
    "alpha_bkw": {"feasible_points": [0.9, 0.99]},
    "warmup_iters": {"feasible_points": [0, 100, 1000]},
}


class PowerFunction(torch.autograd.Function):
    """y = weight * x * rstd + bias, with PowerNorm's approximate backward.

    ``rstd`` (C,) and ``nu`` (C,) are constants of this call; the updated nu is
    written into ``nu_out`` (the module's buffer) by the backward pass."""

    @staticmethod
    def forward(ctx, x, weight, bias, rstd, nu, alpha_bkw, nu_out, channel_dim):
        shape = [1] * x.dim()
        shape[channel_dim] = -1
        x_hat = x * rstd.view(shape)
        ctx.save_for_backward(x_hat, weight, rstd, nu)
        ctx.alpha_bkw, ctx.nu_out, ctx.shape = alpha_bkw, nu_out, shape
        return x_hat * weight.view(shape) + bias.view(shape)

    @staticmethod
    def backward(ctx, grad_y):
        x_hat, weight, rstd, nu = ctx.saved_tensors
        shape = ctx.shape
        dims = [d for d in range(grad_y.dim()) if shape[d] == 1]
        g = grad_y * weight.view(shape)
        approx = g - nu.view(shape) * x_hat
        with torch.no_grad():
            gamma = x_hat.square().mean(dim=dims)
            lam = (g * x_hat).mean(dim=dims)
            a = 1.0 - ctx.alpha_bkw
            ctx.nu_out.copy_(nu * (1.0 - a * gamma) + a * lam)
        grad_x = approx * rstd.view(shape)
        grad_w = (grad_y * x_hat).sum(dim=dims)
        grad_b = grad_y.sum(dim=dims)
        return grad_x, grad_w, grad_b, None, None, None, None, None


class PowerNorm(nn.Module):
    is_norm = True

    def __init__(self, num_features, channel_dim, alpha_fwd=0.9, alpha_bkw=0.9, eps=1e-5, warmup_iters=0, group_scaling=False):
        super().__init__()
        self.channel_dim = channel_dim
        self.alpha_fwd, self.alpha_bkw, self.eps = float(alpha_fwd), float(alpha_bkw), float(eps)
        self.warmup_iters, self.group_scaling = int(warmup_iters), bool(group_scaling)
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_phi", torch.ones(num_features))  # psi^2
        self.register_buffer("nu", torch.zeros(num_features))
        self.iters = 0  # training forwards so far (a Python int: no host sync)

    def forward(self, x):
        if self.group_scaling:  # GroupScaling1D: each token / pixel divided by its features' RMS
            x = x * torch.rsqrt(x.square().mean(dim=self.channel_dim, keepdim=True) + self.eps)
        if not self.training:
            shape = [1] * x.dim()
            shape[self.channel_dim] = -1
            rstd = torch.rsqrt(self.running_phi + self.eps).view(shape)
            return x * rstd * self.weight.view(shape) + self.bias.view(shape)
        self.iters += 1
        dims = [d for d in range(x.dim()) if d != self.channel_dim % x.dim()]
        with torch.no_grad():
            psi2_batch = x.detach().square().mean(dim=dims)
            if self.iters <= self.warmup_iters:
                psi2 = psi2_batch
                self.running_phi.lerp_(psi2_batch, 1.0 / self.iters)  # plain average of the warm-up batches
            else:
                psi2 = self.running_phi.clone()  # psi2_{t-1}
                self.running_phi.lerp_(psi2_batch, 1.0 - self.alpha_fwd)
            rstd = torch.rsqrt(psi2 + self.eps)
        return PowerFunction.apply(x, self.weight, self.bias, rstd, self.nu.clone(), self.alpha_bkw, self.nu, self.channel_dim)


def make_norm(site, num_features, hp):
    if site not in SITES:
        raise ValueError(f"powernorm supports sites {SITES}, not {site!r}")
    channel_dim = 1 if site == "conv" else -1
    return PowerNorm(
        num_features,
        channel_dim,
        alpha_fwd=hp.alpha_fwd,
        alpha_bkw=hp.alpha_bkw,
        eps=hp.eps,
        warmup_iters=hp.warmup_iters,
        group_scaling=hp.group_scaling and site == "token",
    )
