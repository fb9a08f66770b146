"""Classification losses for grokking: softmax cross-entropy and StableMax.

Prieto, Barsbey, Mediano & Birdal, "Grokking at the Edge of Numerical
Stability" (ICLR 2025, arXiv:2501.04697), show that once a model fits its
training set, weight growth pushes the correct logit so far above the others
that the float32 softmax cross-entropy rounds to exactly 0 for many examples
("Softmax Collapse"); those examples then give no gradient and generalization
stalls. Their fix replaces the exponential in the softmax with

    s(x) = x + 1          for x >= 0
    s(x) = 1 / (1 - x)    for x <  0

(continuous with s(0) = 1 and s'(0) = 1, positive everywhere, growing only
linearly), so ``StableMax(x)_i = s(x_i) / sum_j s(x_j)`` and the loss is
``-log StableMax(x)_target`` (their equations 4-5).

:func:`zero_loss_fraction` measures the collapse: the share of examples whose
loss, computed in float32, is exactly 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The StableMax function and loss live with the harness's other losses, so
# ``Task.outputs`` readers (AlgoPerf's loss_fn, the diagnostics) share them.
from harness.common.losses import stablemax_cross_entropy, stablemax_s

LOSSES = ("softmax", "stablemax")


def stablemax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """StableMax probabilities, ``s(x_i) / sum_j s(x_j)`` along ``dim``."""
    s = stablemax_s(logits)
    return s / s.sum(dim=dim, keepdim=True)


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, loss: str = "softmax", reduction: str = "mean") -> torch.Tensor:
    """The task's loss: ``"softmax"`` (softmax cross-entropy) or ``"stablemax"``."""
    if loss == "softmax":
        return F.cross_entropy(logits, targets, reduction=reduction)
    if loss == "stablemax":
        return stablemax_cross_entropy(logits, targets, reduction=reduction)
    raise ValueError(f"unknown loss {loss!r} (have: {', '.join(LOSSES)})")


def zero_loss_fraction(logits: torch.Tensor, targets: torch.Tensor, loss: str = "softmax") -> torch.Tensor:
    """Share of examples whose ``loss``, computed in float32, is exactly 0.

    Softmax Collapse (Prieto et al. 2025, section 3): once the correct logit
    leads the others by enough that ``sum_j exp(x_j - x_max)`` rounds to 1 in
    float32 (a lead above ln(C - 1) + 16.6, about 21 for 97 classes), the loss
    and its gradient are exactly 0. The logits are cast to float32 first,
    so a float64 run is asked the same question. A 0-d tensor on the logits'
    device: reading it is the caller's one host sync.
    """
    losses = cross_entropy(logits.float(), targets, loss=loss, reduction="none")
    return (losses == 0).float().mean()
