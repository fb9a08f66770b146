"""Weight Normalization: reparameterize each weight as direction times length.

Salimans & Kingma, "Weight Normalization: A Simple Reparameterization to
Accelerate Training of Deep Neural Networks", NeurIPS 2016 (arXiv:1602.07868).
Every convolution and linear weight becomes

    w = g * v / ||v||        (one g and one norm per output unit)

via ``torch.nn.utils.parametrizations.weight_norm(module, dim=0)``; at
initialization g = ||v||, so the network computes what it computed before.
There is no normalization layer: every norm site gets ``nn.Identity``.
Not done here: the paper's data-dependent initialization and its optional
mean-only batch norm. A linear layer whose weight is shared with another
module (a GPT head tied to the embedding) is left alone, so the tie holds. A
zero-initialized weight (a residual branch or read-out meant to start at 0,
as in the diffusion UNet) gets g = 0 and a freshly drawn direction v.
The magnitudes g are typed as norm parameters (harness.params), so optimizers
give them no weight decay, as for a norm layer's gain.
"""

import math

from torch import nn
from torch.nn.utils.parametrizations import weight_norm

KIND = "norm"
DESCRIPTION = "Weight normalization of every conv/linear weight; no norm layers (all sites)"
PAPER = "Salimans & Kingma, Weight Normalization, NeurIPS 2016, arXiv:1602.07868"
SITES = ("conv", "token", "node")
DEFAULTS = {}
SEARCH_SPACE = {}

LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def make_norm(site, num_features, hp):
    if site not in SITES:
        raise ValueError(f"weightnorm supports sites {SITES}, not {site!r}")
    return nn.Identity()


def shared_weights(model):
    """ids of weight tensors used by more than one module (tied weights)."""
    seen, shared = set(), set()
    for module in model.modules():
        weight = module._parameters.get("weight")
        if weight is not None:
            (shared if id(weight) in seen else seen).add(id(weight))
    return shared


def transform_model(model, hp):
    shared = shared_weights(model)
    layers = [m for m in model.modules() if isinstance(m, LAYERS) and id(m.weight) not in shared]
    if not layers:
        raise ValueError(f"weightnorm: {type(model).__name__} has no conv or linear layer to reparameterize")
    for layer in layers:
        zero = not layer.weight.detach().any()
        weight_norm(layer, name="weight", dim=0)
        if zero:
            # A zero-initialized layer (a residual branch or read-out meant to start
            # at 0) has no direction: draw v as PyTorch's default init, keep g = 0.
            nn.init.kaiming_uniform_(layer.parametrizations.weight.original1, a=math.sqrt(5))
    return model
