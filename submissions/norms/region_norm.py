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
specific to inpainting. The reference code keeps no running estimates
(BatchNorm with track_running_stats=False), so its eval outputs depend on how
the evaluation data is cut into batches; a benchmark's evaluation must not. So,
as BatchNorm does, each layer keeps running estimates of every region's
per-channel mean and variance (momentum 0.1, unbiased variance), updated in
training and used in eval mode: an image's output then depends on the image
alone. Training is the paper's, statistics of the current batch.
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


def region_moments(x, m):
    """(positions in the region, per-channel mean, biased variance) of ``x``
    where ``m`` == 1, over (batch, positions)."""
    count = m.sum(dim=(0, 2, 3))  # (1,): same for every channel
    mu = (m * x).sum(dim=(0, 2, 3)) / count.clamp(min=1.0)  # (C,)
    var = (m * (x - mu.view(1, -1, 1, 1)).square()).sum(dim=(0, 2, 3)) / count.clamp(min=1.0)
    return count, mu, var


def region_normalize(x, mask, eps, stats=None):
    """Normalize each channel within the region ``mask`` == 1 and within its
    complement: with that region's statistics over (batch, positions), or with
    ``stats`` = ((mean, var) of the region, (mean, var) of its complement)."""
    out = torch.zeros_like(x)
    for k, m in enumerate((mask, 1.0 - mask)):
        mu, var = region_moments(x, m)[1:] if stats is None else stats[k]
        out = out + m * (x - mu.view(1, -1, 1, 1)) * torch.rsqrt(var + eps).view(1, -1, 1, 1)
    return out


class RegionNormL(nn.Module):
    is_norm = True  # the saliency and affine convolutions belong to the norm layer

    def __init__(self, num_features, threshold=0.8, eps=1e-5, kernel_size=7, momentum=0.1):
        super().__init__()
        self.threshold, self.eps, self.padding, self.momentum = threshold, eps, kernel_size // 2, momentum
        # Row 0: the salient region, row 1: the rest.
        self.register_buffer("running_mean", torch.zeros(2, num_features))
        self.register_buffer("running_var", torch.ones(2, num_features))
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
        if self.training:
            self._track(x.detach(), mask)
            normalized = region_normalize(x, mask, self.eps)
        else:
            normalized = region_normalize(x, mask, self.eps, stats=tuple(zip(self.running_mean, self.running_var)))
        return normalized * (1 + gamma) + beta

    @torch.no_grad()
    def _track(self, x, mask):
        """Move each region's running estimates toward this batch's, as BatchNorm
        (unbiased variance); a region this batch does not have keeps its own."""
        for k, m in enumerate((mask, 1.0 - mask)):
            count, mu, var = region_moments(x, m)
            var = var * count / (count - 1).clamp(min=1.0)
            present = count > 1  # keeps the estimates without a host sync
            self.running_mean[k] = torch.where(present, torch.lerp(self.running_mean[k], mu, self.momentum), self.running_mean[k])
            self.running_var[k] = torch.where(present, torch.lerp(self.running_var[k], var, self.momentum), self.running_var[k])


def make_norm(site, num_features, hp):
    if site not in SITES:
        raise ValueError(f"region_norm supports sites {SITES}, not {site!r}")
    return RegionNormL(num_features, threshold=hp.threshold, eps=hp.eps)
