"""Submissions that fail the ways real ones do, chosen per trial by ``mode``.

The search space is a list of fixed points, so a sweep's trials take the modes
in order: one healthy trial, then one per failure.
"""

from __future__ import annotations

import time

import torch

from harness import api

MODES = ["ok", "nan", "raise", "oom", "hang"]

KIND = "optimizer"
DESCRIPTION = "plain SGD that misbehaves on purpose (fault tests)"
DEFAULTS = {"lr": 0.01, "mode": "ok"}
SEARCH_SPACE = [{"mode": m} for m in MODES]


def make_optimizer(params, hp, step_hint):
    return torch.optim.SGD([p.param for p in params], lr=hp.lr)


def update(ctx: api.StepContext) -> torch.Tensor:
    mode, step = ctx.hp.mode, ctx.step
    if mode == "raise" and step == 7:
        raise RuntimeError("submission bug at step 7")
    if mode == "oom" and step == 3:
        # What torch raises when a device allocation fails; simulated so the
        # test never exhausts this machine's memory.
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated)")
    if mode == "hang" and step == 3:
        time.sleep(1.5)  # one step longer than the whole budget
    loss = api.default_update(ctx)
    if mode == "nan" and step >= 5:
        loss = loss * float("nan")
    return loss
