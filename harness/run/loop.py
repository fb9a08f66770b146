"""The timed loop: training steps between eval boundaries, and what happens at each boundary.

Timing follows AlgoPerf's rules. Timed: every training step (data
selection, forward, backward, update, compilation on first steps) and the
submission's ``prepare_for_eval`` / ``prepare_for_train`` hooks. Untimed:
evaluation and writing the metrics line.

The loop does no device synchronization, no host transfer and no file write
per step. The device is synchronized and the clock read only at eval
boundaries; the training loss is summed on the device and copied to the host
once per evaluation, which is also when divergence is detected. The only
per-step bookkeeping is one host ``perf_counter()`` read (no sync) so a run
can stop when its timed budget is spent and, for time-based cadences, know
when an evaluation is due.

A run is ``reached`` at the first evaluation whose validation metric meets
the validation target, as in AlgoPerf; a test target, where set, is reported
(``test_target_met``), never waited for. Evaluation must leave the model as it
found it (harness/run/evalguard.py), and the watchdog (harness/run/watchdog.py)
is armed and disarmed at eval boundaries only.
"""

from __future__ import annotations

import math
import time
from typing import Any

from harness import api
from harness.api import Status
from harness.run import timing
from harness.run.evalguard import ModelSnapshot, check_evaluation
from harness.run.watchdog import Watchdog


class RunFailed(Exception):
    """The harness ended the run (e.g. evaluation changed the model): the
    message is the record's reason, as is."""


class NoLog:
    """Ranks other than 0 write no metrics."""

    def append(self, row: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class TimedLoop:
    """The timed training loop and its eval boundaries."""

    def __init__(self, plan, task, device, record, metrics_log, observer, wall0: float, dist=None, watchdog=None) -> None:
        import torch

        from harness.run.distributed import Dist

        self.dist = dist or Dist()
        self.watchdog = watchdog or Watchdog(None)
        self.plan, self.task, self.device = plan, task, device
        self.record, self.metrics_log, self.observer = record, metrics_log, observer
        self.torch = torch
        self.wall0 = wall0
        self.timed = 0.0
        self.segment_start: float | None = None
        self.best_validation: float | None = None  # for the record's reason when a run misses
        self._sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        # Each segment's throughput and the machine's quiet (harness/run/timing.py),
        # read at eval boundaries only.
        self.segments: list[dict[str, Any]] = []
        self._opened: timing.Snapshot | None = None
        self.diagnostics = None  # harness/run/diagnostics.py, when the run asks (execution sets it)

    def _now(self) -> float:
        self._sync()
        return time.perf_counter()

    def open_segment(self) -> None:
        # Armed once per segment, before the clock starts: the watchdog costs
        # the timed loop nothing per step.
        self.watchdog.arm("step")
        self._opened = timing.snapshot(self.record["steps"])
        self.segment_start = self._now()

    def close_segment(self) -> None:
        """Stop the clock (after a device sync) and add the segment to timed."""
        if self.segment_start is not None:
            self.timed += self._now() - self.segment_start
            self.segment_start = None
        self.watchdog.disarm()
        self.record["timed_s"] = self.timed
        if self._opened is not None:
            end = timing.snapshot(self.record["steps"])
            figures = timing.segment_figures(self._opened, end, self.record.get("threads") or 1, self.device.type)
            self.segments.append({"first_step": self._opened.step + 1, "last_step": end.step, **figures})
            self._opened = None

    def track_best(self, metrics: dict[str, float]) -> None:
        target = self.plan.size.target
        value = metrics.get(f"validation/{target.metric}")
        if api.is_better(value, self.best_validation, target.direction):
            self.best_validation = value

    def train(self, ctx: api.StepContext, sub) -> None:
        """Training steps until an eval boundary ends the run (target, budget, step limit, divergence)."""
        update = sub.hook("update") or api.default_update
        if self.diagnostics is not None:  # then each step's gradient norm, kept on the device
            update = self.diagnostics.wrap(update)
        prepare_for_eval = sub.hook("prepare_for_eval")
        prepare_for_train = sub.hook("prepare_for_train")
        record, budget_s, max_steps = self.record, self.plan.max_runtime_s, self.plan.max_steps
        every_steps = self.plan.eval_every_steps
        next_eval_s = self.next_eval_s = self.plan.eval_every_s
        loss_sum = self.torch.zeros((), device=self.device)
        steps_since_eval = 0
        step = 0
        perf_counter = time.perf_counter
        # Under DDP every rank must stop at the same step without talking per
        # step: boundaries are step counts agreed at the previous boundary.
        lockstep = self._lockstep(0) if self.dist.active else None

        self.open_segment()
        while True:
            # ---- timed: one training step ---------------------------------- #
            ctx.batch = self.task.next_batch(step)
            ctx.step = step
            loss = update(ctx)
            loss_sum += loss.detach()
            step += 1
            steps_since_eval += 1
            record["steps"] = step
            if lockstep is not None:
                if step < lockstep:
                    continue
            else:
                # Host clock only (no device sync): is a boundary due?
                elapsed = self.timed + (perf_counter() - self.segment_start)
                out_of_budget = elapsed >= budget_s or (max_steps is not None and step >= max_steps)
                due = (every_steps is not None and step % every_steps == 0) or (
                    next_eval_s is not None and elapsed >= next_eval_s
                )
                if not (due or out_of_budget):
                    continue
            if prepare_for_eval is not None:
                prepare_for_eval(ctx)
            self.close_segment()

            # ---- untimed: evaluate, record, decide ------------------------- #
            if self.boundary(ctx, step, loss_sum, steps_since_eval):
                return
            next_eval_s = self.next_eval_s
            if lockstep is not None:
                lockstep = self._lockstep(step)
            loss_sum.zero_()
            steps_since_eval = 0
            self.open_segment()
            if prepare_for_train is not None:
                prepare_for_train(ctx)

    def boundary(self, ctx: api.StepContext, step: int, loss_sum, steps_since_eval: int) -> bool:
        """One eval boundary, untimed: evaluate, log, decide. True when the run ends."""
        record, dist = self.record, self.dist
        if ctx.grad_clip is not None and ctx.clip_calls == 0:
            raise RunFailed(f"grad_clip={ctx.grad_clip:g} was set, but {self.plan.optimizer.name}'s own update "
                            "never called ctx.clip_gradients(): its gradients were not clipped (call it between "
                            "backward() and the optimizer step, or declare REFUSES = {'grad_clip': why})")
        if dist.active:  # the slowest rank's clock; the loss over the global batch
            self.timed = record["timed_s"] = dist.agree_max(self.timed, self.device)
            loss_sum = dist.mean(loss_sum)
        train_loss = float((loss_sum / steps_since_eval).item())
        eval_start = time.perf_counter()
        metrics, problem = self.evaluate(ctx)
        record["eval_s"] += time.perf_counter() - eval_start
        record["evals"] += 1
        if problem is not None:
            raise RunFailed(problem)
        lr = ctx.optimizer.param_groups[0].get("lr") if hasattr(ctx.optimizer, "param_groups") else None
        row = {"step": step, "timed_s": self.timed, "train/loss": train_loss, "lr": lr, **metrics}
        if self.diagnostics is not None:
            row.update(self.diagnostics.last)
            record["diagnostics"] = self.diagnostics.summary()
        target = self.plan.size.target
        if target.test is not None and not self.plan.synthetic:  # reported at every eval; only the validation target ends a run
            row["test_target_met"] = target.test_met(metrics)
        row["wall_s"] = time.perf_counter() - self.wall0
        self.metrics_log.append(row)
        record["final_metrics"] = metrics
        self.track_best(metrics)
        if self.observer:
            self.observer.on_eval(row)
        return self.decide(step, train_loss, metrics)

    def evaluate(self, ctx: api.StepContext) -> tuple[dict[str, float] | None, str | None]:
        """(metrics, problem) on the main rank, shared with every rank. Evaluation
        must not change the model: compared on the device, before and after,
        untimed (harness/run/evalguard.py); ``problem`` names what changed."""
        torch, dist = self.torch, self.dist
        metrics = problem = None
        if dist.is_main:
            self.watchdog.arm("evaluation")
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                ctx.model.eval()
                with torch.no_grad():
                    if dist.active:
                        from harness.run.distributed import unwrap

                        model = unwrap(ctx.model)
                    else:
                        model = ctx.model
                    snapshot = ModelSnapshot(model)
                    metrics = {k: float(v) for k, v in self.task.evaluate(model).items()}
                    if self.diagnostics is not None:  # inside the model check: they must not change it either
                        self.diagnostics.measure(model, ctx.optimizer, self.record["steps"])
                    problem = check_evaluation(snapshot, model)
                ctx.model.train()
            self.watchdog.disarm()
        return dist.from_main((metrics, problem))  # every rank stops together

    def decide(self, step: int, train_loss: float, metrics: dict[str, float]) -> bool:
        """Whether this boundary ends the run, and with what status and reason."""
        record, target = self.record, self.plan.size.target
        budget_s, max_steps = self.plan.max_runtime_s, self.plan.max_steps
        if not math.isfinite(train_loss):
            record["status"], record["reason"] = Status.DIVERGED.value, f"training loss became {train_loss} by step {step}"
            return True
        if self.plan.synthetic:  # random data: no target to reach, the run measures its budget's steps
            target_note = "synthetic data, no target"
        else:
            target_note = short_of_target(target, metrics, self.best_validation)
        if target.met(metrics) and self.timed <= budget_s and not self.plan.synthetic:
            record["status"] = Status.REACHED.value
            record["time_to_target_s"], record["steps_to_target"] = self.timed, step
            record["reason"] = f"validation {target.metric} {metrics.get('validation/' + target.metric):.4g} met the target {target.validation:g} at step {step}"
            record["test_target_met"] = target.test_met(metrics)
            record["test_value_at_target"] = metrics.get(f"test/{target.metric}")
            if record["test_target_met"] is not None:
                record["reason"] += f"; {describe_test_target(target, metrics)}"
            return True
        if self.timed >= budget_s:
            record["status"] = Status.BUDGET_EXHAUSTED.value
            record["reason"] = f"timed budget of {budget_s:g} s spent at step {step}; {target_note}"
            return True
        if max_steps is not None and step >= max_steps:
            record["status"] = Status.BUDGET_EXHAUSTED.value
            record["reason"] = f"step limit of {max_steps} reached; {target_note}"
            return True
        every_s = self.plan.eval_every_s
        while self.next_eval_s is not None and self.next_eval_s <= self.timed:
            self.next_eval_s += every_s
        return False

    def _lockstep(self, step: int) -> int:
        """Under DDP: the step of the next boundary, from the pace since the last one."""
        from harness.run.distributed import next_boundary_step

        plan = self.plan
        if step == 0:
            s_per_step = None
        else:
            s_per_step = (self.timed - self._segment_from[1]) / max(1, step - self._segment_from[0])
        self._segment_from = (step, self.timed)
        return next_boundary_step(step, self.timed, s_per_step, plan.eval_every_steps, plan.max_steps,
                                  self.next_eval_s, plan.max_runtime_s)


def short_of_target(target: api.Target, metrics: dict[str, float], best: float | None) -> str:
    """Why a run that ran out of budget missed: its best validation value against the target."""
    key, sign = f"validation/{target.metric}", target.sign
    if target.met(metrics):  # met at this very evaluation, but the clock had run out before it
        return f"{key} {metrics[key]:.4g} met the target {sign} {target.validation:g} only after the budget"
    if best is None:
        return f"no finite {key} (target {sign} {target.validation:g})"
    return f"best {key} {best:.4g}, target {sign} {target.validation:g}"


def describe_test_target(target: api.Target, metrics: dict[str, float]) -> str:
    """The test metric against its target at the eval that met the validation target
    (reported as AlgoPerf does; it does not decide ``reached``)."""
    value, sign = metrics.get(f"test/{target.metric}"), target.sign
    shown = f"{value:.4g}" if isinstance(value, (int, float)) else "missing"
    verdict = "met" if target.test_met(metrics) else "missed"
    return f"test {target.metric} {shown} {verdict} its target {sign} {target.test:g}"


__all__ = ["TimedLoop", "NoLog", "RunFailed", "short_of_target", "describe_test_target"]
