"""EvoNorm-B0: a batch-dependent normalization-activation layer found by search.

Liu, Brock, Simonyan & Le, "Evolving Normalization-Activation Layers",
NeurIPS 2020 (arXiv:2004.02967), Table 1 / Figure 1. At conv sites, per
channel c:

    y = x / max( sqrt(s2_b(x) + eps),  v1 * x + sqrt(s2_wh(x) + eps) ) * gamma + beta

s2_b is the batch variance over (N, H, W) (in eval mode: its running average,
updated like BatchNorm's with the unbiased batch variance), s2_wh the
per-sample instance variance over (H, W); v1, gamma, beta are per-channel,
initialized 1, 1, 0. Written from the paper's equations and checked against
timm's ``EvoNorm2dB0`` (timm/layers/evo_norm.py; timm itself cannot be
imported here), whose defaults (eps 1e-3, momentum 0.1) are used.

EvoNorm replaces a norm *and* its activation. The plugin cannot tell which
norm sites are followed by an activation, so every site gets the full layer
and the model's own activations stay (on cifar: ReLU after EvoNorm).
"""

import torch
from torch import nn

KIND = "norm"
DESCRIPTION = "EvoNorm-B0 normalization-activation layer (conv)"
PAPER = "Liu, Brock, Simonyan & Le, Evolving Normalization-Activation Layers, NeurIPS 2020, arXiv:2004.02967"
SITES = ("conv",)
DEFAULTS = {"eps": 1e-3, "momentum": 0.1}
SEARCH_SPACE = {}


class EvoNormB0(nn.Module):
    is_norm = True

    def __init__(self, num_features, eps=1e-3, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.v = nn.Parameter(torch.ones(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x):
        shape = (1, -1, 1, 1)
        if self.training:
            var = x.var(dim=(0, 2, 3), unbiased=False)
            n = x.numel() / x.shape[1]
            with torch.no_grad():  # the running estimate, as BatchNorm keeps it (unbiased)
                self.running_var.lerp_(var.detach() * (n / max(n - 1, 1)), self.momentum)
        else:
            var = self.running_var
        batch_std = (var + self.eps).sqrt().view(shape)
        instance_std = (x.var(dim=(2, 3), unbiased=False, keepdim=True) + self.eps).sqrt()
        y = x / torch.maximum(batch_std, self.v.view(shape) * x + instance_std)
        return y * self.weight.view(shape) + self.bias.view(shape)


def make_norm(site, num_features, hp):
    if site not in SITES:
        raise ValueError(f"evonorm_b0 supports sites {SITES}, not {site!r}")
    return EvoNormB0(num_features, eps=hp.eps, momentum=hp.momentum)
