"""GroupNorm: normalize each sample over groups of channels (and positions).

Wu & He, "Group Normalization", ECCV 2018 (arXiv:1803.08494). Implemented by
``torch.nn.GroupNorm`` at conv sites, (N, C, H, W), with per-channel affine.
The group count must divide C, so it is ``gcd(groups, C)``: the requested
``groups`` when C is divisible by it, fewer otherwise (with the default 8:
C=48 -> 8, C=12 -> 4, C=6 -> 2, C=3 -> 1, i.e. LayerNorm over the feature map).
The default is 8 rather than the paper's 32 because small benchmark networks
have as few as 16 channels.
"""

import math

from torch import nn

KIND = "norm"
DESCRIPTION = "GroupNorm at conv sites (gcd(groups, C) groups)"
PAPER = "Wu & He, Group Normalization, ECCV 2018, arXiv:1803.08494"
SITES = ("conv",)
DEFAULTS = {"groups": 8, "eps": 1e-5}
SEARCH_SPACE = {"groups": {"feasible_points": [1, 2, 4, 8, 16, 32]}}


def num_groups(groups, num_features):
    """The largest group count that divides both ``groups`` and ``num_features``."""
    return math.gcd(int(groups), num_features)


def make_norm(site, num_features, hp):
    if site != "conv":
        raise ValueError(f"groupnorm supports sites {SITES}, not {site!r}")
    return nn.GroupNorm(num_groups(hp.groups, num_features), num_features, eps=hp.eps)
