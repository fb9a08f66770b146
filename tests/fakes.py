"""A fake workload and fake submissions whose costs are known exactly.

Training steps and evaluations busy-wait for fixed durations, so the runner's
timed seconds can be checked against the truth.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import torch
from torch import nn

from harness import api

STEP_S = 0.02
EVAL_S = 0.05


def busy_wait(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class SleepTask(api.Task):
    """validation/score = training steps taken so far; each step costs STEP_S."""

    step_s = STEP_S
    eval_s = EVAL_S
    nan_from_step: int | None = None
    raise_at_step: int | None = None
    interrupt_at_step: int | None = None

    latest: "SleepTask | None" = None  # the task of the run in progress, for the submissions below

    def __init__(self, size, device, data_dir, seed):
        super().__init__(size, device, data_dir, seed)
        SleepTask.latest = self  # a submission sees only a training view of the task (api.TrainingView)
        self.steps_seen = 0
        self.trace: list[tuple[str, float]] = []  # ("start" | "end" | "eval", perf_counter)
        gen = torch.Generator().manual_seed(seed % 2**31)
        self.x = torch.randn(64, 4, generator=gen)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0])

    def build_model(self, norm):
        return nn.Sequential(nn.Linear(4, 4), norm("node", 4), nn.Linear(4, 1))

    def next_batch(self, step):
        self.trace.append(("start", time.perf_counter()))
        self.steps_seen = step + 1
        if step == self.interrupt_at_step:
            raise KeyboardInterrupt
        idx = torch.arange(8) + (step * 8) % 56
        return self.x[idx], self.y[idx]

    def training_seconds(self) -> float:
        """What training really took, from the task's own clock: each stretch
        from the first step's start to the last step's end between evals."""
        total, first, last = 0.0, None, None
        for event, t in self.trace + [("eval", 0.0)]:
            if event == "start" and first is None:
                first = t
            elif event == "end":
                last = t
            elif event == "eval" and first is not None:
                total += last - first
                first = last = None
        return total

    def loss(self, model, batch):
        busy_wait(self.step_s)
        x, y = batch
        loss = ((model(x).squeeze(-1) - y) ** 2).mean()
        if self.nan_from_step is not None and self.steps_seen > self.nan_from_step:
            loss = loss * float("nan")
        return loss

    def evaluate(self, model):
        self.trace.append(("eval", time.perf_counter()))
        busy_wait(self.eval_s)
        with torch.no_grad():
            mse = ((model(self.x).squeeze(-1) - self.y) ** 2).mean()
        return {"validation/score": float(self.steps_seen), "validation/mse": float(mse), "test/score": float(self.steps_seen)}


def fake_info(name="fake", task="tests.fakes:SleepTask", target=25.0, budget=30.0, every_steps=10, max_steps=None, every_s=None):
    size = api.Size(
        name="tiny", description="busy-wait fake", dataset="none", model="mlp", batch_size=8,
        target=api.Target("score", target, "max"), max_runtime_s=budget, step_hint=100,
        eval_every_steps=None if every_s else every_steps, eval_every_s=every_s, max_steps=max_steps,
    )
    return api.WorkloadInfo(
        name=name, description="fake", sizes={"tiny": size}, norm_sites=("node",),
        default_norm="tests.fakes:IDENTITY_NORM", default_optimizer="tests.fakes:PLAIN_SGD", task=task,
    )


def _make_sgd(params, hp, step_hint):
    return torch.optim.SGD([p.param for p in params], lr=hp.lr)


PLAIN_SGD = SimpleNamespace(
    KIND="optimizer", DEFAULTS={"lr": 0.01}, SEARCH_SPACE={"lr": {"min": 1e-3, "max": 1e-1, "scaling": "log"}},
    make_optimizer=_make_sgd,
)


def _forward_only(ctx):
    # The step's cost is the task's busy-wait alone: no backward, no update,
    # so timed seconds can be compared with STEP_S * steps to 1%.
    loss = ctx.loss_fn().detach()
    SleepTask.latest.trace.append(("end", time.perf_counter()))
    return loss


FORWARD_ONLY = SimpleNamespace(**{**vars(PLAIN_SGD), "update": _forward_only})


def _prepare_slow(ctx):
    busy_wait(0.03)
    SleepTask.latest.trace.append(("end", time.perf_counter()))


PREPARE_FORWARD_ONLY = SimpleNamespace(**{**vars(FORWARD_ONLY), "prepare_for_eval": _prepare_slow})


def _raising_update(ctx):
    if ctx.step == 7:
        raise RuntimeError("boom in step 7")
    return api.default_update(ctx)


RAISING_SGD = SimpleNamespace(**{**vars(PLAIN_SGD), "update": _raising_update})

IDENTITY_NORM = SimpleNamespace(KIND="norm", SITES=("node", "conv", "token"), make_norm=lambda site, n, hp: nn.Identity())
