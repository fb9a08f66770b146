"""Unified Normalization (UN): a BatchNorm-like, inference-foldable replacement
for LayerNorm in transformers.

Yang et al., "Unified Normalization for Accelerating and Stabilizing
Transformers", ACM MM 2022 (arXiv:2208.01313); reference implementation
github.com/hikvision-research/Unified-Normalization (``UN1d``), followed here
step for step. At token sites, per feature c, statistics over all tokens of
the batch, iteration t (a Python counter, starting at 1), window M:

  forward
      x2_t   = mean(x^2)                        batch quadratic mean (no centering)
      buffer[t mod M] = x2_t                    the last M iterations' statistics
      var    = x2_t                             while t <= M or t < warmup_iters
             = geometric mean of buffer         afterwards (fluctuation smoothing)
      z      = x / sqrt(var + eps);   y = gamma * z + beta
      r      = sqrt(var + eps) / sqrt(running_var + eps), clamped to [1/5, 5]
               (r = 1 while t <= max(compensation_after, warmup_iters))
      running_var = m * running_var + (1 - m) * var       (used in eval)
  backward (gradient compensation)
      g      = r * gamma * dL/dy;   gz_t = mean(g * z);   gz_buffer[t mod M] = gz_t
      mean_gz = gz_t (early, as above) or mean(gz_buffer)
      ema_gz = m * ema_gz + (1 - m) * mean_gz
      dL/dx  = (g - ema_gz * z) / sqrt(var + eps)
  eval:  y = gamma * x / sqrt(running_var + eps) + beta

Adaptive outlier filtration (``outlier_filtration``; the authors suggest it
for vision and leave it off for NLP, so it is off by default): once
t >= warmup_iters, if for any feature the window's arithmetic mean exceeds its
geometric mean by more than M * Var(sqrt(buffer)) (the variance measured
before this batch entered), the batch is an outlier: its buffer slot gets
running_var instead, it is normalized by its own x2_t with r = 1, and the
backward uses its own gz_t. The decision is a 0-d tensor combined with
``torch.where``, never read on the host (the reference code branches on it in
Python, a device sync); so is everything else in the timed path.
"""

import torch
from torch import nn

KIND = "norm"
DESCRIPTION = "Unified Normalization: windowed geometric-mean statistics, gradient compensation (token)"
PAPER = "Yang et al., Unified Normalization for Accelerating and Stabilizing Transformers, ACM MM 2022, arXiv:2208.01313"
SITES = ("token",)
DEFAULTS = {
    "window": 4,
    "warmup_iters": 100,
    "compensation_after": 1000,
    "momentum": 0.9,
    "eps": 1e-5,
    "outlier_filtration": False,
}
SEARCH_SPACE = {
    "window": {"feasible_points": [2, 4, 8]},
    "warmup_iters": {"feasible_points": [0, 100, 1000, 4000]},
}


class UnifiedFunction(torch.autograd.Function):
    """y = weight * z + bias with UN's compensated backward (r enters only the backward).

    All statistics are constants of this call; the backward writes the new
    ``ema_gz`` and its window slot into the module's buffers."""

    @staticmethod
    def forward(ctx, x, weight, bias, var, r, skip, norm, slot, use_window):
        z = x * torch.rsqrt(var + norm.eps)
        ctx.save_for_backward(z, weight, var, r, skip, norm.ema_gz.clone(), norm.buffer_gz.clone())
        ctx.norm, ctx.slot, ctx.use_window = norm, slot, use_window
        return z * weight + bias

    @staticmethod
    def backward(ctx, grad_y):
        z, weight, var, r, skip, ema_gz, buffer_gz = ctx.saved_tensors
        norm, m = ctx.norm, ctx.norm.momentum
        dims = tuple(range(grad_y.dim() - 1))
        g = grad_y * weight * r
        gz = (g * z).mean(dim=dims)
        buffer_gz = buffer_gz.clone()  # saved tensors stay intact: backward may run more than once
        buffer_gz[ctx.slot] = torch.where(skip, ema_gz, gz)
        mean_gz = torch.where(skip, gz, buffer_gz.mean(dim=0)) if ctx.use_window else gz
        ema_gz = m * ema_gz + (1 - m) * mean_gz
        grad_x = (g - torch.where(skip, mean_gz, ema_gz) * z) * torch.rsqrt(var + norm.eps)
        with torch.no_grad():
            norm.ema_gz.copy_(ema_gz)
            norm.buffer_gz.copy_(buffer_gz)
        return grad_x, (grad_y * r * z).sum(dim=dims), grad_y.sum(dim=dims), None, None, None, None, None, None


class UnifiedNorm(nn.Module):
    is_norm = True

    def __init__(self, num_features, window=4, warmup_iters=100, compensation_after=1000, momentum=0.9, eps=1e-5, outlier_filtration=False):
        super().__init__()
        self.window, self.warmup_iters = int(window), int(warmup_iters)
        self.compensation_after = int(compensation_after)
        self.momentum, self.eps = float(momentum), float(eps)
        self.outlier_filtration = bool(outlier_filtration)
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("ema_gz", torch.zeros(num_features))
        self.register_buffer("buffer_x2", torch.zeros(self.window, num_features))
        self.register_buffer("buffer_gz", torch.zeros(self.window, num_features))
        self.iters = 0  # training forwards so far (a Python int: no host sync)

    def forward(self, x):
        if not self.training:
            return x * torch.rsqrt(self.running_var + self.eps) * self.weight + self.bias
        self.iters += 1
        t, slot = self.iters, self.iters % self.window
        with torch.no_grad():
            x2 = x.detach().square().mean(dim=tuple(range(x.dim() - 1)))
            skip = torch.zeros((), dtype=torch.bool, device=x.device)
            if self.outlier_filtration and t >= self.warmup_iters:
                recorded = self.buffer_x2.sqrt().var()  # before this batch enters the window
                self.buffer_x2[slot] = x2
                arithmetic = self.buffer_x2.mean(dim=0)
                geometric = self.buffer_x2.log().mean(dim=0).exp()
                skip = ((arithmetic - geometric) > recorded * self.window).any()
                self.buffer_x2[slot] = torch.where(skip, self.running_var, x2)
            else:
                self.buffer_x2[slot] = x2
            use_window = not (t <= self.window or t < self.warmup_iters)
            if use_window:
                geometric = self.buffer_x2.log().mean(dim=0).exp()  # numerically stable geometric mean
                var = torch.where(skip, x2, geometric)
            else:
                var = x2
            if t <= max(self.compensation_after, self.warmup_iters):
                r = torch.ones_like(var)
            else:
                r = ((var + self.eps).sqrt() / (self.running_var + self.eps).sqrt()).clamp(0.2, 5.0)
                r = torch.where(skip, torch.ones_like(r), r)
            self.running_var.mul_(self.momentum).add_((1 - self.momentum) * var)
        return UnifiedFunction.apply(x, self.weight, self.bias, var, r, skip, self, slot, use_window)


def make_norm(site, num_features, hp):
    if site not in SITES:
        raise ValueError(f"unified_norm supports sites {SITES}, not {site!r}")
    return UnifiedNorm(
        num_features,
        window=hp.window,
        warmup_iters=hp.warmup_iters,
        compensation_after=hp.compensation_after,
        momentum=hp.momentum,
        eps=hp.eps,
        outlier_filtration=hp.outlier_filtration,
    )
