"""Ghost BatchNorm: BatchNorm over small "ghost" batches of a large batch.

Hoffer, Hubara & Soudry, "Train longer, generalize better: closing the
generalization gap in large batch training of neural networks", NeurIPS 2017
(arXiv:1705.08741), Algorithm 1. In training the batch of N samples is split
into G = max(1, N // virtual_batch_size) ghost batches (``tensor_split``, so
sizes differ by at most one when G does not divide N); each is normalized with
its own statistics, as BatchNorm would on a batch of that size:

    y = gamma * (x - mu_l) / sqrt(var_l + eps) + beta     for x in ghost batch l

The running estimates take one exponential-moving-average step per ghost batch,
in order (the paper's running-statistics update is that sequence of G steps,
computed here in closed form); eval mode uses them exactly as BatchNorm does.
All ghost batches are normalized in one vectorized pass (index_add over a
ghost id per sample), since a graph batch may hold hundreds of them. Conv sites (N, C, H, W) reduce
over (N, H, W) of the ghost batch, node sites (N, C) over N.
"""

import torch
import torch.nn.functional as F
from torch import nn

KIND = "norm"
DESCRIPTION = "Ghost BatchNorm: BatchNorm statistics per virtual batch (conv, node)"
PAPER = "Hoffer, Hubara & Soudry, Train longer, generalize better, NeurIPS 2017, arXiv:1705.08741"
SITES = ("conv", "node")
DEFAULTS = {"virtual_batch_size": 16, "momentum": 0.1, "eps": 1e-5}
SEARCH_SPACE = {"virtual_batch_size": {"feasible_points": [4, 8, 16, 32, 64, 128]}}


class GhostBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics come from ghost batches."""

    def __init__(self, num_features, virtual_batch_size, eps=1e-5, momentum=0.1):
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.virtual_batch_size = int(virtual_batch_size)
        if self.virtual_batch_size < 1:
            raise ValueError(f"virtual_batch_size must be >= 1, got {virtual_batch_size}")

    def _check_input_dim(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"ghost_batchnorm expects (N, C) or (N, C, H, W) input, got shape {tuple(x.shape)}")

    def forward(self, x):
        self._check_input_dim(x)
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        n, c = x.shape[:2]
        ghosts = max(1, n // self.virtual_batch_size)
        if ghosts == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True, self.momentum, self.eps)
        # Ghost batch of each sample, as tensor_split(ghosts) cuts: sizes differ by at most one.
        # All ghost batches are normalized at once (a graph batch may hold hundreds).
        ghost = torch.arange(n, device=x.device) * ghosts // n  # (N,)
        per_sample = x.reshape(n, c, -1)  # (N, C, L)
        positions = per_sample.shape[2]
        count = torch.bincount(ghost, minlength=ghosts).to(x.dtype) * positions  # (G,)
        sums = x.new_zeros(ghosts, c).index_add_(0, ghost, per_sample.sum(dim=2))
        mean = sums / count[:, None]  # (G, C)
        centered = per_sample - mean[ghost].unsqueeze(2)
        var = x.new_zeros(ghosts, c).index_add_(0, ghost, centered.square().sum(dim=2)) / count[:, None]
        y = centered * torch.rsqrt(var + self.eps)[ghost].unsqueeze(2)
        y = y * self.weight.view(1, -1, 1) + self.bias.view(1, -1, 1)
        with torch.no_grad():
            # G sequential EMA steps, s <- (1 - m) s + m stat_l, in closed form
            m = self.momentum
            decay = (1 - m) ** torch.arange(ghosts - 1, -1, -1, device=x.device, dtype=x.dtype)  # (1-m)^(G-l)
            unbiased = var * (count / (count - 1).clamp(min=1))[:, None]
            self.running_mean.mul_((1 - m) ** ghosts).add_(m * (decay[:, None] * mean).sum(dim=0))
            self.running_var.mul_((1 - m) ** ghosts).add_(m * (decay[:, None] * unbiased).sum(dim=0))
            self.num_batches_tracked.add_(1)
        return y.reshape(x.shape)


def make_norm(site, num_features, hp):
    if site not in SITES:
        raise ValueError(f"ghost_batchnorm supports sites {SITES}, not {site!r}")
    return GhostBatchNorm(num_features, hp.virtual_batch_size, eps=hp.eps, momentum=hp.momentum)
