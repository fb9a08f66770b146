"""BatchNorm: normalize each channel over the batch (and spatial positions).

Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by
Reducing Internal Covariate Shift", ICML 2015 (arXiv:1502.03167). Implemented by
``torch.nn.BatchNorm2d`` at conv sites, (N, C, H, W), and ``torch.nn.BatchNorm1d``
at node sites, (N, C); running statistics are used in eval mode. ``momentum`` is
PyTorch's (weight of the new batch in the running average), not Keras's.
"""

from torch import nn

KIND = "norm"
DESCRIPTION = "BatchNorm (BatchNorm2d at conv sites, BatchNorm1d at node sites)"
PAPER = "Ioffe & Szegedy, Batch Normalization, ICML 2015, arXiv:1502.03167"
SITES = ("conv", "node")
DEFAULTS = {"momentum": 0.1, "eps": 1e-5}
SEARCH_SPACE = {}


def make_norm(site, num_features, hp):
    if site == "conv":
        return nn.BatchNorm2d(num_features, eps=hp.eps, momentum=hp.momentum)
    if site == "node":
        return nn.BatchNorm1d(num_features, eps=hp.eps, momentum=hp.momentum)
    raise ValueError(f"batchnorm supports sites {SITES}, not {site!r}")
