"""Spectral Normalization: divide each weight by its largest singular value.

Miyato, Kataoka, Koyama & Yoshida, "Spectral Normalization for Generative
Adversarial Networks", ICLR 2018 (arXiv:1802.05957). Every convolution and
linear weight W becomes

    W_SN = W / sigma(W),   sigma(W) ~= u^T W v

with u, v refined by one power iteration per training forward (kept as
buffers; eval mode reuses them), via
``torch.nn.utils.parametrizations.spectral_norm``. As in the paper, a conv
kernel is treated as the matrix (out_channels, in_channels * kh * kw), which
bounds but is not the operator norm of the convolution. There is no
normalization layer: every norm site gets ``nn.Identity``. Layers whose weight
is tied to another module's (a GPT head tied to its embedding) are left alone,
and so are zero-initialized layers (the diffusion UNet's residual-branch and
read-out convs), whose W / sigma(W) is undefined.
Spectral normalization was designed for GAN discriminators; as a classifier's
only normalization it caps each layer's gain at ~1, which slows training.
"""

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

KIND = "norm"
DESCRIPTION = "Spectral normalization of every conv/linear weight; no norm layers (all sites)"
PAPER = "Miyato et al., Spectral Normalization for Generative Adversarial Networks, ICLR 2018, arXiv:1802.05957"
SITES = ("conv", "token", "node")
DEFAULTS = {"power_iterations": 1, "eps": 1e-12}
SEARCH_SPACE = {}

LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def make_norm(site, num_features, hp):
    if site not in SITES:
        raise ValueError(f"spectral_norm supports sites {SITES}, not {site!r}")
    return nn.Identity()


def _shared_weights(model):
    seen, shared = set(), set()
    for module in model.modules():
        weight = module._parameters.get("weight")
        if weight is not None:
            (shared if id(weight) in seen else seen).add(id(weight))
    return shared


def transform_model(model, hp):
    shared = _shared_weights(model)
    # A zero-initialized weight (a branch meant to start at 0) has no spectral
    # normalization (W / sigma(W) = 0 / 0): such layers stay plain.
    layers = [m for m in model.modules() if isinstance(m, LAYERS) and id(m.weight) not in shared and m.weight.detach().any()]
    if not layers:
        raise ValueError(f"spectral_norm: {type(model).__name__} has no conv or linear layer to normalize")
    for layer in layers:
        spectral_norm(layer, name="weight", n_power_iterations=int(hp.power_iterations), eps=hp.eps)
    return model
