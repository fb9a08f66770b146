"""Region Normalization, learnable variant (RN-L), on self-computed regions.

Yu et al., "Region Normalization for Image Inpainting", AAAI 2020
(arXiv:1911.10375); reference code github.com/geekyutao/RN (rn.py).

Region Normalization splits each feature map into regions by a binary mask M
(B, 1, H, W) and normalizes every channel separately inside each region, with
statistics over the batch and the region's positions:

    mu_R = sum(M_R x) / sum(M_R),   var_R = sum(M_R (x - mu_R)^2) / sum(M_R)
    y    = sum_R M_R (x - mu_R) / sqrt(var_R + eps)          (R in {M, 1 - M})

RN-B (basic) takes M from the inpainting mask (corrupted vs. intact pixels).
**A classifier has no such mask, so RN-B does not apply here.** What this
plugin runs is the paper's RN-L, which needs no external mask: a spatial
response map S = sigmoid(conv7x7([mean_c(x), max_c(x)])) (CBAM-style) marks
the region M = [S >= threshold] (threshold 0.8 as the reference code), and
the affine is "self-aware": gamma, beta = conv7x7(S), one channel each, so

    y = RN(x; M) * (1 + gamma) + beta.

What it means for classification: the two regions are the feature map's most
and least salient positions, each normalized on its own; nothing here is
specific to inpainting. As in the reference code (BatchNorm with
track_running_stats=False) there are no running estimates: eval mode also uses
the current batch's region statistics, so eval outputs depend on the eval batch.
"""

import torch
import torch.nn.functional as F
from torch import nn

KIND = "norm"
DESCRIPTION = "Region Norm RN-L: per-region BN statistics on a self-computed saliency mask (conv; no inpainting mask)"
PAPER = "Yu et al., Region Normalization for Image Inpainting, AAAI 2020, arXiv:1911.10375"
SITES = ("conv",)
DEFAULTS = {"threshold": 0.8, "eps": 1e-5}
SEARCH_SPACE = {"threshold": {"min": 0.5, "max": 0.95, "scaling": "linear"}}


def region_normalize(x, mask, eps):
    """Normalize each channel within the region ``mask`` == 1 and within its
    complement, statistics over (batch, positions) of the region."""
    out = torch.zeros_like(x)
    for m in (mask, 1.0 - mask):
        count = m.sum(dim=(0, 2, 3)).clamp(min=1.0)  # (1,): same for every channel
        mu = (m * x).sum(dim=(0, 2, 3)) / count  # (C,)
        centered = x - mu.view(1, -1, 1, 1)
        var = (m * centered.square()).sum(dim=(0, 2, 3)) / count
        out = out + m * centered * torch.rsqrt(var + eps).view(1, -1, 1, 1)
    return out


class RegionNormL(nn.Module):
    is_norm = True  # the saliency and affine convolutions belong to the norm layer

    def __init__(self, num_features, threshold=0.8, eps=1e-5, kernel_size=7):
        super().__init__()
        self.threshold, self.eps, self.padding = threshold, eps, kernel_size // 2
        # Held as plain parameters (not nn.Conv2d children) so they are typed as norm parameters.
        init = nn.Conv2d(2, 1, kernel_size, bias=False)
        self.saliency_weight = nn.Parameter(init.weight.detach().clone())
        affine = [nn.Conv2d(1, 1, kernel_size) for _ in range(2)]
        self.gamma_weight = nn.Parameter(affine[0].weight.detach().clone())
        self.gamma_bias = nn.Parameter(affine[0].bias.detach().clone())
        self.beta_weight = nn.Parameter(affine[1].weight.detach().clone())
        self.beta_bias = nn.Parameter(affine[1].bias.detach().clone())

    def forward(self, x):
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        saliency = torch.sigmoid(F.conv2d(pooled, self.saliency_weight, padding=self.padding))
        gamma = F.conv2d(saliency, self.gamma_weight, self.gamma_bias, padding=self.padding)
        beta = F.conv2d(saliency, self.beta_weight, self.beta_bias, padding=self.padding)
        mask = (saliency.detach() >= self.threshold).to(x.dtype)  # the region is not differentiated
        return region_normalize(x, mask, self.eps) * (1 + gamma) + beta


def make_norm(site, num_features, hp):
    if site not in SITES:
        raise ValueError(f"region_norm supports sites {SITES}, not {site!r}")
    return RegionNormL(num_features, threshold=hp.threshold, eps=hp.eps)
