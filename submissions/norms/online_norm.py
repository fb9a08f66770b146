"""Online Normalization: normalize each sample by running statistics of the
samples before it, with a control-process backward pass.

Chiley et al., "Online Normalization for Training Neural Networks", NeurIPS
2019 (arXiv:1905.05894); reference implementation github.com/Cerebras/
online-normalization (numpy ``norm_forward`` / ``norm_backward``). Samples
are processed as a stream, t = 1..S, in batch order: at conv sites a sample is
one image (statistics per channel over its H x W positions), at token sites
one token (the stream runs through the batch's tokens in (b, t) order, so a
token only sees statistics of tokens before it). With <.> the mean over a
sample's positions, per channel:

  forward
      y_t     = (x_t - mu_{t-1}) / sqrt(var_{t-1} + eps)
      mu_t    = a_f mu_{t-1} + (1 - a_f) <x_t>
      var_t   = a_f var_{t-1} + (1 - a_f) <(x_t - <x_t>)^2> + a_f (1 - a_f) (<x_t> - mu_{t-1})^2
  backward (control processes u, v remove the gradient's components along y and 1)
      g~_t    = dL/dy_t - (1 - a_b) v_{t-1} y_t,     v_t = v_{t-1} + <g~_t y_t>
      g^_t    = g~_t / sqrt(var_{t-1} + eps)
      dL/dx_t = g^_t - (1 - a_b) u_{t-1},            u_t = u_{t-1} + <dL/dx_t>
  eval:  y = (x - mu) / sqrt(var + eps)

then the affine (gamma, beta) and the paper's error-compensation guard: layer
scaling (``ecm="ls"``: each sample divided by the RMS of all its features) or
activation clamping (``ecm="ac"``: clip to +-5). mu, var, u, v are buffers
carried across steps. Every recursion is a linear recurrence
s_t = a_t s_{t-1} + b_t, evaluated with a log-depth parallel scan over the
stream, so a step costs O(log S) vectorized ops, not a Python loop over samples.
"""

import torch
from torch import nn

KIND = "norm"
DESCRIPTION = "Online Normalization: streaming statistics, control-process backward (conv, token)"
PAPER = "Chiley et al., Online Normalization for Training Neural Networks, NeurIPS 2019, arXiv:1905.05894"
SITES = ("conv", "token")
DEFAULTS = {"alpha_fwd": 0.999, "alpha_bkw": 0.99, "eps": 1e-5, "ecm": "ls"}
SEARCH_SPACE = {
    "alpha_fwd": {"feasible_points": [0.99, 0.999, 0.9999]},
    "alpha_bkw": {"feasible_points": [0.9, 0.99, 0.999]},
    "ecm": {"feasible_points": ["ls", "ac"]},
}


def linear_scan(a, b, s0):
    """s_t = a_t * s_{t-1} + b_t for t = 0..S-1 along dim 0 (Hillis-Steele scan).

    ``a`` broadcasts against ``b`` (S, C); returns all s_t, shape (S, C)."""
    a = a.expand_as(b)
    step = 1
    while step < b.shape[0]:
        # compose each element with the one `step` before it: (a2, b2) o (a1, b1) = (a2 a1, a2 b1 + b2)
        b = torch.cat([b[:step], a[step:] * b[:-step] + b[step:]])
        a = torch.cat([a[:step], a[step:] * a[:-step]])
        step *= 2
    return a * s0 + b


def _previous(s0, s):
    """(s_0, s_1, ..., s_{S-1}) -> the value before each step: (s0, s_1, ..., s_{S-2})."""
    return torch.cat([s0.unsqueeze(0), s[:-1]])


class OnlineNormFunction(torch.autograd.Function):
    """The normalization (no affine) of a stream x: (S, C, L) of S samples."""

    @staticmethod
    def forward(ctx, x, norm):
        a_f, eps = norm.alpha_fwd, norm.eps
        mean = x.mean(dim=2)  # (S, C)
        var = x.var(dim=2, unbiased=False)
        mu = linear_scan(torch.tensor(a_f, dtype=x.dtype, device=x.device), (1 - a_f) * mean, norm.mu)
        center = _previous(norm.mu, mu)
        drift = a_f * (1 - a_f) * (mean - center).square()
        vs = linear_scan(torch.tensor(a_f, dtype=x.dtype, device=x.device), (1 - a_f) * var + drift, norm.var)
        scale = (_previous(norm.var, vs) + eps).sqrt()
        y = (x - center.unsqueeze(2)) / scale.unsqueeze(2)
        ctx.save_for_backward(y, scale, norm.u.clone(), norm.v.clone())
        ctx.norm = norm
        norm.mu.copy_(mu[-1])
        norm.var.copy_(vs[-1])
        return y

    @staticmethod
    def backward(ctx, grad_y):
        y, scale, u0, v0 = ctx.saved_tensors
        norm = ctx.norm
        c = 1 - norm.alpha_bkw
        # v_t = v_{t-1} (1 - c <y_t^2>) + <g_t y_t>
        vs = linear_scan(1 - c * y.square().mean(dim=2), (grad_y * y).mean(dim=2), v0)
        grad = grad_y - c * _previous(v0, vs).unsqueeze(2) * y
        grad = grad / scale.unsqueeze(2)
        # u_t = u_{t-1} + <g^_t - c u_{t-1}> = (1 - c) u_{t-1} + <g^_t>
        us = linear_scan(torch.tensor(1 - c, dtype=y.dtype, device=y.device), grad.mean(dim=2), u0)
        grad_x = grad - c * _previous(u0, us).unsqueeze(2)
        with torch.no_grad():
            norm.u.copy_(us[-1])
            norm.v.copy_(vs[-1])
        return grad_x, None


class OnlineNorm(nn.Module):
    is_norm = True

    def __init__(self, num_features, site, alpha_fwd=0.999, alpha_bkw=0.99, eps=1e-5, ecm="ls"):
        super().__init__()
        if ecm not in ("ls", "ac", "none"):
            raise ValueError(f"online_norm: ecm must be 'ls', 'ac' or 'none', not {ecm!r}")
        self.site, self.ecm = site, ecm
        self.alpha_fwd, self.alpha_bkw, self.eps = float(alpha_fwd), float(alpha_bkw), float(eps)
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("mu", torch.zeros(num_features))
        self.register_buffer("var", torch.ones(num_features))
        self.register_buffer("u", torch.zeros(num_features))  # control variables of the backward pass
        self.register_buffer("v", torch.zeros(num_features))

    def normalize(self, x):
        """(S, C, L) -> (S, C, L): the training stream or, in eval, the running statistics."""
        if self.training:
            return OnlineNormFunction.apply(x, self)
        return (x - self.mu.view(1, -1, 1)) / (self.var.view(1, -1, 1) + self.eps).sqrt()

    def forward(self, x):
        if self.site == "conv":
            n, c, h, w = x.shape
            y = self.normalize(x.reshape(n, c, h * w)).reshape(n, c, h, w)
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
            sample_dims = (1, 2, 3)
        else:  # token: every token is one sample of the stream
            c = x.shape[-1]
            y = self.normalize(x.reshape(-1, c, 1)).reshape(x.shape)
            y = y * self.weight + self.bias
            sample_dims = (-1,)
        if self.ecm == "ls":
            y = y * torch.rsqrt(y.square().mean(dim=sample_dims, keepdim=True) + self.eps)
        elif self.ecm == "ac":
            y = y.clamp(-5.0, 5.0)
        return y


def make_norm(site, num_features, hp):
    if site not in SITES:
        raise ValueError(f"online_norm supports sites {SITES}, not {site!r}")
    return OnlineNorm(num_features, site, alpha_fwd=hp.alpha_fwd, alpha_bkw=hp.alpha_bkw, eps=hp.eps, ecm=hp.ecm)
