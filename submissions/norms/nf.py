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

* Residual-branch scaling (2101.08692, Sec. 4; DeepMind's ``nf_resnet.py``),
  through the residual-block hooks of harness/api.py. An NF-ResNet is a
  pre-activation ResNet whose blocks compute

      h_{i+1} = h_i + alpha * g_i * f_i(relu(h_i) / beta_i)

  with alpha = 0.2 (hyperparameter ``alpha``), g_i a learnable scalar SkipInit
  gain initialized at 0 (NFNets' ``skip_gain``; typed as a norm parameter, so
  not decayed, but clipped by AGC as in NFNets), and beta_i = sqrt(Var(h_i))
  predicted analytically: Var(h_{i+1}) = Var(h_i) + alpha^2, with Var = 1 at
  the first block's input and, after a transition block, 1 + alpha^2 again
  (its shortcut, a scaled-WS conv of relu(h_i) / beta_i, restarts the signal
  at unit variance). The cifar ResNet's blocks are post-activation (a ReLU
  after the residual add), which would break that variance law, so the
  transform makes them pre-activation: each block's ``preact`` becomes the
  ReLU, its post-add ``act2`` an identity (except the last block's, which
  stays as the ReLU that a pre-activation network applies before pooling),
  and the stem's ReLU (``stem_act``) an identity, since the first block now
  begins with one. Every conv but the stem still reads a ReLU output, so the
  Scaled WS gammas above stay right. Blocks are found by their hooks; a model
  without them is left without this scaling. With the branches starting
  closed (g = 0) and small (alpha), cifar tiny leaves its initial plateau
  later than without the scaling (measured through the runner, NAdamW
  defaults, seed 0, threads=1: validation accuracy 0.13 at step 300 and 0.32
  at 400, against 0.94 and 0.95 for Scaled WS and AGC alone).

Not done: residual-branch scaling in the diffusion UNet, whose ResBlocks do
not expose the hooks. It does not fit there naturally: its blocks already start
at zero (a zero-initialized last conv, which is SkipInit's effect), and beta
cannot be predicted block by block, since the up path's blocks read
concatenations of the current signal with saved down-path signals and
down/upsampling convs and attention residuals sit between blocks, so no
per-block variance recursion like the one above holds. The UNet gets Scaled WS
and AGC only.
"""

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

KIND = "norm"
DESCRIPTION = "Normalizer-free: no norm layers, Scaled WS on convs, adaptive gradient clipping (conv)"
PAPER = "Brock et al., NF-ResNets arXiv:2101.08692 and NFNets (AGC) arXiv:2102.06171, ICLR/ICML 2021"
SITES = ("conv",)
DEFAULTS = {"clipping": 0.01, "gamma": 1.7139588594436646, "eps": 1e-4, "alpha": 0.2}
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


class SkipGain(nn.Module):
    """x -> alpha * g * x: NF-ResNets' alpha times a SkipInit gain g (a learnable scalar)."""

    is_norm = True  # a gain, which NFNets keep out of weight decay with the norm scales

    def __init__(self, alpha, init=0.0):
        super().__init__()
        self.alpha = float(alpha)
        # (1,) rather than DeepMind's 0-d scalar: no optimizer here has to handle 0-d parameters.
        self.gain = nn.Parameter(torch.full((1,), float(init)))

    def forward(self, x):
        return x * (self.gain * self.alpha)


def residual_blocks(model):
    """The modules exposing the residual-block hooks (harness/api.py), in model order."""
    hooks = ("preact", "input_scale", "branch_scale", "transition", "act2")
    return [m for m in model.modules() if all(hasattr(m, h) for h in hooks)]


def scale_residual_branches(model, alpha):
    """Make the hooked blocks NF-ResNet blocks (pre-activation, 1/beta in, alpha * gain out)."""
    blocks = residual_blocks(model)
    if blocks and hasattr(model, "stem_act"):
        model.stem_act = nn.Identity()  # the first block's preact takes its place
    expected_var = 1.0
    for block in blocks:
        block.preact = nn.ReLU()
        block.input_scale = 1.0 / math.sqrt(expected_var)
        block.branch_scale = SkipGain(alpha)
        if block is not blocks[-1]:  # the last one's ReLU is the one before pooling
            block.act2 = nn.Identity()
        expected_var = (1.0 if block.transition else expected_var) + alpha**2


def transform_model(model, hp):
    # Zero-initialized convs (branches meant to start at 0, like SkipInit) cannot be
    # standardized (0 / 0): left plain.
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.weight.detach().any()]
    if not convs:
        raise ValueError(f"nf: {type(model).__name__} has no Conv2d to weight-standardize")
    for i, conv in enumerate(convs):
        gamma = 1.0 if i == 0 else hp.gamma
        parametrize.register_parametrization(conv, "weight", ScaledStandardize(conv.out_channels, gamma, hp.eps))
    scale_residual_branches(model, hp.alpha)  # before AGC, so the skip gains are clipped too

    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    final = {id(p) for p in layers[-1].parameters()}
    clipping = float(hp.clipping)
    for param in model.parameters():
        if param.requires_grad and id(param) not in final:
            param.register_post_accumulate_grad_hook(lambda p: adaptive_clip_(p, clipping))
    return model
