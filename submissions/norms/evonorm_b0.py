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

EvoNorm replaces a norm *and* the activation after it (the paper's B0 stands in
for BN-ReLU), so the layer declares ``includes_activation`` (harness/api.py)
and the workload leaves out its own activation there: on cifar, the ReLU after
the stem's and each block's first norm; in the diffusion UNet, the SiLU after
every norm but the one before attention. Where no activation follows a site
(a BasicBlock's second norm and its shortcut norm, before the residual add; the
UNet's attention input) the workload asks for ``without_activation()``: as in
the authors' reference code (tensorflow/tpu models/official/resnet,
``evonorm(..., nonlinearity=False)``: "apply an affine transform only") and
timm's ``apply_act=False``, that is y = x * gamma + beta, with no v1, no batch
statistic and no running variance. The ReLU a BasicBlock applies after its
residual add is not at a norm site and stays, as in the reference ResNet.
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

    def __init__(self, num_features, eps=1e-3, momentum=0.1, apply_act=True):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.includes_activation = apply_act
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        if apply_act:
            self.v = nn.Parameter(torch.ones(num_features))
            self.register_buffer("running_var", torch.ones(num_features))

    def without_activation(self):
        return EvoNormB0(self.weight.numel(), self.eps, self.momentum, apply_act=False)

    def forward(self, x):
        shape = (1, -1, 1, 1)
        if self.includes_activation:
            if self.training:
                var = x.var(dim=(0, 2, 3), unbiased=False)
                n = x.numel() / x.shape[1]
                with torch.no_grad():  # the running estimate, as BatchNorm keeps it (unbiased)
                    self.running_var.lerp_(var.detach() * (n / max(n - 1, 1)), self.momentum)
            else:
                var = self.running_var
            batch_std = (var + self.eps).sqrt().view(shape)
            instance_std = (x.var(dim=(2, 3), unbiased=False, keepdim=True) + self.eps).sqrt()
            x = x / torch.maximum(batch_std, self.v.view(shape) * x + instance_std)
        return x * self.weight.view(shape) + self.bias.view(shape)


def make_norm(site, num_features, hp):
    if site not in SITES:
        raise ValueError(f"evonorm_b0 supports sites {SITES}, not {site!r}")
    return EvoNormB0(num_features, eps=hp.eps, momentum=hp.momentum)
