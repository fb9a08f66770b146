"""Self-normalizing networks: SELU activations, LeCun-normal init, no norm layers.

Klambauer, Unterthiner, Mayr & Hochreiter, "Self-Normalizing Neural Networks",
NeurIPS 2017 (arXiv:1706.02515). With

    selu(x) = lambda * (x if x > 0 else alpha * (exp(x) - 1)),
    lambda ~= 1.0507, alpha ~= 1.6733,

and weights drawn from N(0, 1/fan_in) (LeCun normal), activations are driven
towards zero mean and unit variance without any normalization layer.

So: every norm site gets ``nn.Identity``; ``transform_model`` replaces every
activation *module* (``nn.ReLU``, ``nn.GELU``, ``nn.SiLU``) with ``nn.SELU``
and re-initializes every conv and linear weight LeCun-normal (biases zero).
Activations a model applies as functions (``F.relu(x)``) cannot be swapped by
a plugin; a model with no activation modules at all is refused with an error
rather than silently trained with its old activations. (The cifar, gpt and
diffusion workloads use activation modules.) Tied weights (GPT head and
embedding) are re-initialized once, through whichever module comes first.
Zero-initialized layers (the diffusion UNet's residual-branch and read-out
convs, meant to start at 0) keep their zeros.
Alpha-dropout is not added: the benchmark models have no dropout to replace.
"""

import math

import torch
from torch import nn

KIND = "norm"
DESCRIPTION = "SELU + LeCun-normal init, no norm layers (all sites; swaps activation modules)"
PAPER = "Klambauer et al., Self-Normalizing Neural Networks, NeurIPS 2017, arXiv:1706.02515"
SITES = ("conv", "token", "node")
DEFAULTS = {}
SEARCH_SPACE = {}

ACTIVATIONS = (nn.ReLU, nn.GELU, nn.SiLU)
LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def make_norm(site, num_features, hp):
    if site not in SITES:
        raise ValueError(f"selu supports sites {SITES}, not {site!r}")
    return nn.Identity()


def lecun_normal_(weight):
    """N(0, 1/fan_in), fan_in as nn.init computes it (in_channels * kernel size)."""
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
    with torch.no_grad():
        return weight.normal_(0.0, 1.0 / math.sqrt(fan_in))


def transform_model(model, hp):
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ACTIVATIONS):
                setattr(parent, name, nn.SELU())
                swapped += 1
    if swapped == 0:
        raise ValueError(
            f"selu: {type(model).__name__} has no activation modules ({', '.join(a.__name__ for a in ACTIVATIONS)}) "
            "to replace; activations applied as functions cannot be swapped by a norm plugin"
        )
    done = set()
    for module in model.modules():
        # zero-initialized layers (branches / read-outs meant to start at 0) stay zero
        if isinstance(module, LAYERS) and id(module.weight) not in done and module.weight.detach().any():
            done.add(id(module.weight))
            lecun_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model
