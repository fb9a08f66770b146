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

EvoNorm replaces a norm *and* the activation after it, so the layer declares
``includes_activation`` (harness/api.py) and the workload leaves out its own
activation there. Its numerator x * sigmoid(v1 * x) is a Swish (SiLU at
v1 = 1): on cifar it stands in for the ReLU after the stem's and each block's
first norm, as S0 replaced BN-ReLU in the paper's ResNets; in the diffusion
UNet for the SiLU after every norm but the one before attention. Where no
activation follows a site (a BasicBlock's second norm and its shortcut norm;
the UNet's attention input) the workload asks for ``without_activation()``:
as in the authors' reference code (tensorflow/tpu models/official/resnet,
``evonorm(..., nonlinearity=False)``: "apply an affine transform only") and
timm's ``apply_act=False``, that is y = x * gamma + beta, with no v1 and no
group statistic.
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

    def __init__(self, num_features, groups=32, eps=1e-5, apply_act=True):
        super().__init__()
        self.groups = math.gcd(int(groups), num_features)
        self.eps = eps
        self.includes_activation = apply_act
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        if apply_act:
            self.v = nn.Parameter(torch.ones(num_features))

    def without_activation(self):
        return EvoNormS0(self.weight.numel(), self.groups, self.eps, apply_act=False)

    def forward(self, x):
        shape = (1, -1, 1, 1)
        if self.includes_activation:
            n, c, h, w = x.shape
            grouped = x.reshape(n, self.groups, c // self.groups, h, w)
            std = (grouped.var(dim=(2, 3, 4), unbiased=False, keepdim=True) + self.eps).sqrt()
            std = std.expand_as(grouped).reshape(n, c, h, w)
            x = x * torch.sigmoid(self.v.view(shape) * x) / std
        return x * self.weight.view(shape) + self.bias.view(shape)


def make_norm(site, num_features, hp):
    if site not in SITES:
        raise ValueError(f"evonorm_s0 supports sites {SITES}, not {site!r}")
    return EvoNormS0(num_features, groups=hp.groups, eps=hp.eps)
