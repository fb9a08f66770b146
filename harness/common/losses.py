"""Losses read from a model's outputs: the one place label smoothing, StableMax
and masks are applied.

A workload that implements ``Task.outputs`` (harness/api.py) computes its
training loss as ``mean_loss(self.outputs(model, batch), label_smoothing)``.
Code that needs more than the mean (AlgoPerf's ``loss_fn`` with its
``per_example`` losses, the diagnostics' count of examples whose float32 loss
is exactly 0) reads the same outputs through :func:`per_example_loss`, so every
reader sees the loss the run trains on.

With no label smoothing and no weights, :func:`mean_loss` makes the very call
each workload made before (``F.cross_entropy``, ``F.mse_loss``, the masked
sigmoid cross-entropy), so trajectories and calibrated targets are unchanged
bit for bit.

StableMax (Prieto, Barsbey, Mediano & Birdal, "Grokking at the Edge of
Numerical Stability", ICLR 2025, arXiv:2501.04697, equations 4-5) replaces
the exponential of the softmax with ``s(x) = x + 1`` for x >= 0 and
``1 / (1 - x)`` for x < 0; its cross-entropy is ``-log s(x_t) / sum_j s(x_j)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.api import OUTPUT_LOSSES, Outputs


def stablemax_s(x: torch.Tensor) -> torch.Tensor:
    """Prieto et al.'s s(x): x + 1 for x >= 0, 1 / (1 - x) for x < 0.

    Each branch sees its input clamped to its own half-line, so the branch
    ``torch.where`` drops is finite and its gradient (multiplied by 0) cannot
    turn into NaN at x = 1, where 1 / (1 - x) would blow up.
    """
    return torch.where(x >= 0, x.clamp(min=0) + 1, 1 / (1 - x.clamp(max=0)))


def stablemax_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """``log StableMax(logits)`` along the last dimension, in the logits' dtype."""
    s = stablemax_s(logits)
    return s.log() - s.sum(dim=-1, keepdim=True).log()


def stablemax_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """``-log StableMax(logits)_target`` per row of ``logits`` (N, C), reduced
    like ``F.cross_entropy``. Computed as ``log sum_j s(x_j) - log s(x_t)``."""
    s = stablemax_s(logits)
    losses = s.sum(dim=-1).log() - s.gather(-1, targets[:, None]).squeeze(-1).log()
    return reduce(losses, reduction)


def reduce(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"unknown reduction {reduction!r}")


def smoothed_binary_targets(targets: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """0/1 labels pulled towards 1/2, as AlgoPerf's ogbg workload smooths them."""
    return targets if label_smoothing == 0 else targets * (1.0 - label_smoothing) + 0.5 * label_smoothing


def per_example_loss(out: Outputs, label_smoothing: float = 0.0) -> torch.Tensor:
    """The loss of every example, unreduced and unweighted.

    Shape (N,) for ``softmax``, ``stablemax`` and ``mse`` (the squared error
    averaged over each example's other dimensions); (N, C) for ``sigmoid``,
    one loss per label (multiply by ``out.weights`` to drop missing labels).
    Label smoothing mixes the one-hot target with the uniform distribution
    over classes (``softmax``, ``stablemax``: Szegedy et al. 2016, as
    ``F.cross_entropy``) or pulls 0/1 labels towards 1/2 (``sigmoid``).
    """
    logits, targets = out.logits, out.targets
    if out.loss == "softmax":
        return F.cross_entropy(logits, targets, reduction="none", label_smoothing=label_smoothing)
    if out.loss == "stablemax":
        if label_smoothing == 0:
            return stablemax_cross_entropy(logits, targets, reduction="none")
        log_p = stablemax_log_probs(logits)
        nll = -log_p.gather(-1, targets[:, None]).squeeze(-1)
        return (1.0 - label_smoothing) * nll - label_smoothing * log_p.mean(dim=-1)
    if out.loss == "sigmoid":
        smoothed = smoothed_binary_targets(targets, label_smoothing)
        return F.binary_cross_entropy_with_logits(logits, smoothed, reduction="none")
    if out.loss == "mse":
        return (logits - targets).pow(2).reshape(logits.shape[0], -1).mean(dim=1)
    raise ValueError(f"unknown loss {out.loss!r} (have: {', '.join(OUTPUT_LOSSES)})")


def mean_loss(out: Outputs, label_smoothing: float = 0.0) -> torch.Tensor:
    """The training loss: the weighted mean of :func:`per_example_loss` (a
    scalar). Unweighted and unsmoothed, it is the exact call the workloads
    always made, so existing runs reproduce bit for bit."""
    logits, targets, weights = out.logits, out.targets, out.weights
    if out.loss == "sigmoid":
        losses = per_example_loss(out, label_smoothing)
        if weights is None:
            return losses.mean()
        total = torch.where(weights.bool(), losses, 0.0).sum()
        return total / weights.sum().clamp(min=1)
    if weights is None:
        if out.loss == "softmax":
            return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
        if out.loss == "mse" and label_smoothing == 0:
            return F.mse_loss(logits, targets)
        return per_example_loss(out, label_smoothing).mean()
    losses = per_example_loss(out, label_smoothing)
    return (losses * weights).sum() / weights.sum().clamp(min=1)
