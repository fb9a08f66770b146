"""Learning-rate schedules shared by submissions.

Every schedule is a ``torch.optim.lr_scheduler.LambdaLR`` over the optimizer's
base learning rate, so the runner steps it once per training step.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(
    optimizer: Optimizer, step_hint: int, warmup_fraction: float = 0.05, final_fraction: float = 0.0
) -> LambdaLR:
    """Linear warmup for ``warmup_fraction * step_hint`` steps, then cosine decay
    to ``final_fraction`` of the base rate at ``step_hint`` (AlgoPerf baselines).
    Past ``step_hint`` the rate stays at its final value."""
    warmup = max(1, int(round(warmup_fraction * step_hint)))
    decay = max(1, step_hint - warmup)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / decay)
        return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
