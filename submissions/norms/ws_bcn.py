"""Weight Standardization + Batch-Channel Normalization.

Qiao, Wang, Liu, Shen & Yuille, "Micro-Batch Training with Batch-Channel
Normalization and Weight Standardization", 2019 (arXiv:1903.10520).

Weight Standardization (``transform_model``): every conv kernel is
reparameterized per output channel as

    W_hat = (W - mean(W)) / (std(W) + 1e-5)      over (in_channels, kh, kw),

std unbiased, as the authors' code, through a ``torch.nn.utils.parametrize``
parametrization (the optimizer updates the raw W). Zero-initialized convs (the
diffusion UNet's residual-branch and read-out convs, meant to start at 0) are
left plain: their standardization is 0 / 0.

Batch-Channel Normalization (``make_norm``, conv sites): a BatchNorm (batch
statistics, running estimates for eval, per-channel affine) followed by a
channel normalization -- each sample's groups of C/g channels normalized over
(C/g, H, W), with a per-group gain and shift:

    x1 = BN(x);    y = a_g * (x1 - mu_g(x1)) / sqrt(var_g(x1) + eps) + b_g

g = gcd(groups, C) (paper: 32). This is BCN for ordinary batch sizes; the
paper's micro-batch variant, which replaces the batch statistics by estimates
(EstBN), is not used here since the benchmark's batches are 32 or more.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

KIND = "norm"
DESCRIPTION = "Batch-Channel Norm (BN then GN-style channel norm) + Weight Standardization on convs"
PAPER = "Qiao et al., Micro-Batch Training with Batch-Channel Normalization and Weight Standardization, 2019, arXiv:1903.10520"
SITES = ("conv",)
DEFAULTS = {"groups": 32, "eps": 1e-5, "momentum": 0.1}
SEARCH_SPACE = {"groups": {"feasible_points": [1, 2, 4, 8, 16, 32]}}


class BatchChannelNorm(nn.Module):
    is_norm = True

    def __init__(self, num_features, groups=32, eps=1e-5, momentum=0.1):
        super().__init__()
        self.groups = math.gcd(int(groups), num_features)
        self.eps = eps
        self.bn = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum)
        self.weight = nn.Parameter(torch.ones(self.groups))  # one gain / shift per group
        self.bias = nn.Parameter(torch.zeros(self.groups))

    def forward(self, x):
        n, c, h, w = x.shape
        x = F.group_norm(self.bn(x), self.groups, eps=self.eps)
        x = x.reshape(n, self.groups, c // self.groups, h, w)
        x = x * self.weight.view(1, -1, 1, 1, 1) + self.bias.view(1, -1, 1, 1, 1)
        return x.reshape(n, c, h, w)


class StandardizeWeight(nn.Module):
    """W -> (W - mean) / (std + 1e-5) per output channel (Qiao et al.'s WS)."""

    def forward(self, weight):
        flat = weight.flatten(1)
        mean = flat.mean(dim=1)
        std = flat.std(dim=1) + 1e-5
        shape = (-1,) + (1,) * (weight.dim() - 1)
        return (weight - mean.view(shape)) / std.view(shape)


def make_norm(site, num_features, hp):
    if site not in SITES:
        raise ValueError(f"ws_bcn supports sites {SITES}, not {site!r}")
    return BatchChannelNorm(num_features, groups=hp.groups, eps=hp.eps, momentum=hp.momentum)


def transform_model(model, hp):
    # Zero-initialized convs (a residual branch or read-out meant to start at 0)
    # cannot be standardized (0 / 0) and are not followed by a norm: left plain.
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.weight.detach().any()]
    if not convs:
        raise ValueError(f"ws_bcn: {type(model).__name__} has no Conv2d to weight-standardize")
    for conv in convs:
        parametrize.register_parametrization(conv, "weight", StandardizeWeight())
    return model
