"""RMSNorm: scale each token by the root mean square of its features.

Zhang & Sennrich, "Root Mean Square Layer Normalization", NeurIPS 2019
(arXiv:1910.07467); the norm of LLaMA-style GPTs. At token sites, (..., C):

    y = x / sqrt(mean_c(x_c^2) + eps) * g

no mean subtraction and no shift. Implemented by ``torch.nn.RMSNorm``.
"""

from torch import nn

KIND = "norm"
DESCRIPTION = "RMSNorm over token features (torch.nn.RMSNorm)"
PAPER = "Zhang & Sennrich, Root Mean Square Layer Normalization, NeurIPS 2019, arXiv:1910.07467"
SITES = ("token",)
DEFAULTS = {"eps": 1e-6}
SEARCH_SPACE = {}


def make_norm(site, num_features, hp):
    if site not in SITES:
        raise ValueError(f"rmsnorm supports sites {SITES}, not {site!r}")
    return nn.RMSNorm(num_features, eps=hp.eps)
