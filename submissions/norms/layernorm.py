"""LayerNorm: normalize each position over its features.

Ba, Kiros & Hinton, "Layer Normalization", 2016 (arXiv:1607.06450). At token
sites, (..., C), and node sites, (N, C), this is ``torch.nn.LayerNorm(C)``. At
conv sites, (N, C, H, W), it is a *channel* LayerNorm (as in ConvNeXt, Liu et
al. 2022): each pixel's C values are normalized to mean 0 / variance 1 and get a
per-channel scale and shift. That is not ``GroupNorm(1, C)``, which normalizes
over C, H and W together (one mean per sample).
"""

import torch.nn.functional as F
from torch import nn

KIND = "norm"
DESCRIPTION = "LayerNorm over features (token, node); channel LayerNorm per pixel (conv)"
PAPER = "Ba, Kiros & Hinton, Layer Normalization, 2016, arXiv:1607.06450"
SITES = ("token", "node", "conv")
DEFAULTS = {"eps": 1e-5}
SEARCH_SPACE = {}


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over dim 1 of (N, C, *spatial): normalize C at each position."""

    is_norm = True  # typed as a norm parameter owner (no weight decay)

    def forward(self, x):
        x = x.movedim(1, -1)  # channels last
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.movedim(-1, 1)


def make_norm(site, num_features, hp):
    if site in ("token", "node"):
        return nn.LayerNorm(num_features, eps=hp.eps)
    if site == "conv":
        return ChannelLayerNorm(num_features, eps=hp.eps)
    raise ValueError(f"layernorm supports sites {SITES}, not {site!r}")
