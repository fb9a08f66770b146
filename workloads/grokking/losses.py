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

LOSSES = ("softmax", "stablemax")


def stablemax_s(x: torch.Tensor) -> torch.Tensor:
    """Prieto et al.'s s(x): x + 1 for x >= 0, 1 / (1 - x) for x < 0.

    Each branch sees its input clamped to its own half-line, so the branch
    ``torch.where`` drops is finite and its gradient (multiplied by 0) cannot
    turn into NaN at x = 1, where 1 / (1 - x) would blow up.
    """
    return torch.where(x >= 0, x.clamp(min=0) + 1, 1 / (1 - x.clamp(max=0)))


def stablemax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """StableMax probabilities, ``s(x_i) / sum_j s(x_j)`` along ``dim``."""
    s = stablemax_s(logits)
    return s / s.sum(dim=dim, keepdim=True)


def stablemax_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """``-log StableMax(logits)_target`` per row of ``logits`` (N, C), reduced
    like ``F.cross_entropy``. Computed as ``log sum_j s(x_j) - log s(x_t)``,
    in the logits' dtype."""
    s = stablemax_s(logits)
    losses = s.sum(dim=-1).log() - s.gather(-1, targets[:, None]).squeeze(-1).log()
    return _reduce(losses, reduction)


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


def _reduce(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"unknown reduction {reduction!r}")
