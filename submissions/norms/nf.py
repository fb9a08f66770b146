"""Normalizer-free ResNets: no norm layers, Scaled Weight Standardization, AGC.

Brock, De & Smith, "Characterizing signal propagation to close the performance
gap in unnormalized ResNets", ICLR 2021 (arXiv:2101.08692), and Brock, De,
Smith & Simonyan, "High-Performance Large-Scale Image Recognition Without
Normalization", ICML 2021 (arXiv:2102.06171).

* Every norm site gets ``nn.Identity``.
* Scaled Weight Standardization (``transform_model``): every conv kernel is
  reparameterized per output channel i as

      W_hat_i = g_i * gamma * (W_i - mean(W_i)) / sqrt(max(N * var(W_i), eps))

  N = fan-in, var biased, g_i a learnable gain (init 1; typed as a norm
  parameter), as DeepMind's WSConv2D. gamma = sqrt(2 / (1 - 1/pi)) ~= 1.7139
  is the ReLU's variance-preserving constant; NF-ResNets multiply the
  activation by it, which is the same as multiplying the kernel of the conv
  that consumes the activation. The first conv in module order (the stem,
  which reads the image rather than a ReLU output) gets gamma = 1.
  Zero-initialized convs (the diffusion UNet's residual-branch and read-out
  convs, which start the branch at 0 much as SkipInit does) stay plain: their
  standardization is 0 / 0.
* Adaptive Gradient Clipping (2102.06171, Sec. 4.1): for each unit i (row of
  a weight, i.e. output channel / output feature; whole tensor for a vector)

      G_i <- G_i * lambda * max(||W_i||, 1e-3) / ||G_i||   if that ratio < 1

  A norm plugin cannot change the optimizer, so AGC is installed as a hook on
  every parameter (``Tensor.register_post_accumulate_grad_hook``): it rescales
  the gradient on the device as soon as backward has accumulated it, before
  the optimizer step; no host sync. As in the paper, the final layer (the last
  conv/linear module in registration order: the classifier) is not clipped.

Not done: NF-ResNets' residual-branch scaling (alpha, 1/beta) and SkipInit
gains need the model's block structure, which a norm plugin does not see.
"""

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

KIND = "norm"
DESCRIPTION = "Normalizer-free: no norm layers, Scaled WS on convs, adaptive gradient clipping (conv)"
PAPER = "Brock et al., NF-ResNets arXiv:2101.08692 and NFNets (AGC) arXiv:2102.06171, ICLR/ICML 2021"
SITES = ("conv",)
DEFAULTS = {"clipping": 0.01, "gamma": 1.7139588594436646, "eps": 1e-4}
SEARCH_SPACE = {"clipping": {"min": 0.001, "max": 1.0, "scaling": "log"}}

AGC_EPS = 1e-3  # the paper's epsilon: weights near zero still get some gradient


def make_norm(site, num_features, hp):
    if site not in SITES:
        raise ValueError(f"nf supports sites {SITES}, not {site!r}")
    return nn.Identity()


class ScaledStandardize(nn.Module):
    """W -> g * gamma * (W - mean) / sqrt(max(fan_in * var, eps)) per output channel."""

    is_norm = True  # its gain g is a per-channel scale, like a norm layer's

    def __init__(self, out_channels, gamma, eps):
        super().__init__()
        self.gamma, self.eps = float(gamma), float(eps)
        self.gain = nn.Parameter(torch.ones(out_channels, 1, 1, 1))

    def forward(self, weight):
        dims = tuple(range(1, weight.dim()))
        fan_in = weight[0].numel()
        mean = weight.mean(dim=dims, keepdim=True)
        var = weight.var(dim=dims, unbiased=False, keepdim=True)
        scale = torch.rsqrt(torch.clamp(var * fan_in, min=self.eps)) * (self.gain * self.gamma)
        return (weight - mean) * scale


def unitwise_norm(x):
    """||.|| per output unit (rows of dim 0) for matrices and kernels, whole-tensor for vectors."""
    if x.dim() <= 1:
        return torch.linalg.vector_norm(x)
    return torch.linalg.vector_norm(x, dim=tuple(range(1, x.dim())), keepdim=True)


def adaptive_clip_(param, clipping):
    """Rescale param.grad in place where ||G_i|| > clipping * max(||W_i||, 1e-3)."""
    grad = param.grad
    max_norm = unitwise_norm(param.detach()).clamp(min=AGC_EPS) * clipping
    grad_norm = unitwise_norm(grad)
    factor = torch.where(grad_norm > max_norm, max_norm / grad_norm.clamp(min=1e-6), torch.ones_like(grad_norm))
    grad.mul_(factor)


def transform_model(model, hp):
    # Zero-initialized convs (branches meant to start at 0, like SkipInit) cannot be
    # standardized (0 / 0): left plain.
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.weight.detach().any()]
    if not convs:
        raise ValueError(f"nf: {type(model).__name__} has no Conv2d to weight-standardize")
    for i, conv in enumerate(convs):
        gamma = 1.0 if i == 0 else hp.gamma
        parametrize.register_parametrization(conv, "weight", ScaledStandardize(conv.out_channels, gamma, hp.eps))

    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    final = {id(p) for p in layers[-1].parameters()}
    clipping = float(hp.clipping)
    for param in model.parameters():
        if param.requires_grad and id(param) not in final:
            param.register_post_accumulate_grad_hook(lambda p: adaptive_clip_(p, clipping))
    return model
