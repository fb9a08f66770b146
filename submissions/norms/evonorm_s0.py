"""EvoNorm-S0: a batch-independent normalization-activation layer found by search.

Liu, Brock, Simonyan & Le, "Evolving Normalization-Activation Layers",
NeurIPS 2020 (arXiv:2004.02967), Table 1 / Figure 1. At conv sites:

    y = x * sigmoid(v1 * x) / sqrt(s2_{w,h,c/g}(x) + eps) * gamma + beta

s2_{w,h,c/g} is the per-sample variance over each group of C/g channels and
all positions (GroupNorm's statistic, without centering the numerator); v1,
gamma, beta are per-channel, initialized 1, 1, 0. No running statistics: train
and eval compute the same thing. The paper uses g = 32 groups; here the group
count is gcd(groups, C) as for groupnorm, so narrow layers still divide.
Written from the paper and checked against timm's ``EvoNorm2dS0``
(timm/layers/evo_norm.py; eps 1e-5; timm cannot be imported here).

EvoNorm replaces a norm *and* its activation; the plugin cannot tell which
sites are followed by one, so every site gets the full layer and the model's
own activations stay.
"""

import math

import torch
from torch import nn

KIND = "norm"
DESCRIPTION = "EvoNorm-S0 normalization-activation layer (conv, gcd(groups, C) groups)"
PAPER = "Liu, Brock, Simonyan & Le, Evolving Normalization-Activation Layers, NeurIPS 2020, arXiv:2004.02967"
SITES = ("conv",)
DEFAULTS = {"groups": 32, "eps": 1e-5}
SEARCH_SPACE = {"groups": {"feasible_points": [1, 2, 4, 8, 16, 32]}}


class EvoNormS0(nn.Module):
    is_norm = True

    def __init__(self, num_features, groups=32, eps=1e-5):
        super().__init__()
        self.groups = math.gcd(int(groups), num_features)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.v = nn.Parameter(torch.ones(num_features))

    def forward(self, x):
        n, c, h, w = x.shape
        shape = (1, -1, 1, 1)
        grouped = x.reshape(n, self.groups, c // self.groups, h, w)
        std = (grouped.var(dim=(2, 3, 4), unbiased=False, keepdim=True) + self.eps).sqrt()
        std = std.expand_as(grouped).reshape(n, c, h, w)
        y = x * torch.sigmoid(self.v.view(shape) * x) / std
        return y * self.weight.view(shape) + self.bias.view(shape)


def make_norm(site, num_features, hp):
    if site not in SITES:
        raise ValueError(f"evonorm_s0 supports sites {SITES}, not {site!r}")
    return EvoNormS0(num_features, groups=hp.groups, eps=hp.eps)
