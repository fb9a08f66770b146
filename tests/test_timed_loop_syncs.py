"""The timed loop makes no per-step device sync, host transfer or file write.

On the CPU a device sync costs nothing and a host transfer is a no-op, so
timing cannot see a per-step ``.item()``: we count calls instead. Every call
that forces a device sync or a device-to-host copy on an accelerator
(``torch.cuda.synchronize`` and stream/event syncs, ``Tensor.item``, ``.cpu``,
``.tolist``, ``.numpy``, ``float()``/``int()``/``bool()`` of a tensor) and every
file write (``open``/``io.open``/``os.open`` for writing, ``os.write``,
``os.fsync``, ``os.replace``, ``print``, ``MetricsLog.append``,
``write_json_atomic``) is counted by phase:

* ``timed``: while a timed segment is open, between ``_Loop.open_segment`` and
  ``_Loop.close_segment`` (the flag is toggled by wrapping those two methods,
  after the opening sync and before the closing one, so the boundary syncs
  themselves are not counted as timed);
* ``boundary``: inside ``_Loop.train`` but outside a segment (evaluation,
  the loss copied to the host, the metrics line, the closing syncs);
* ``setup``: everything before the first segment opens and after the loop.

The loop is made to take its device-sync path (``torch.cuda.synchronize``,
patched to a counter) as it would on a GPU. The fake task's busy-wait reads the
host clock only; it is not a sync and is not counted.

The guarantee: ``timed`` is 0 and ``boundary`` depends on the number of
evaluations E, not on the number of steps N. The last tests show that the
check fails when a submission's update does a per-step ``.item()`` (or another
sync or write).
"""

from __future__ import annotations

import builtins
import functools
import io
import os
from collections import Counter
from types import SimpleNamespace

import pytest
import torch

from harness import api

from harness.run import records

from harness.run import loop as runner_loop
from harness.plugins.registry import Registry
from harness.run import execute, plan_run
from tests import fakes

HERE = "tests.test_timed_loop_syncs"


class CountingTask(fakes.SleepTask):
    step_s = 0.001  # a busy-wait on the host clock: no sync, never counted
    eval_s = 0.0


class Probe:
    """Counts calls by phase: setup, timed (a segment is open), boundary."""

    def __init__(self) -> None:
        self.phase = "setup"
        self.counts = {"setup": Counter(), "timed": Counter(), "boundary": Counter()}

    def hit(self, name: str) -> None:
        self.counts[self.phase][name] += 1

    def total(self, phase: str) -> int:
        return sum(self.counts[phase].values())

    def counted(self, name: str, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            self.hit(name)
            return fn(*args, **kwargs)

        return wrapper


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def install(monkeypatch: pytest.MonkeyPatch) -> Probe:
    """Patch every sync, host transfer and file write to count into a Probe."""
    probe = Probe()

    # --- device syncs: the loop takes its CUDA path, on counters ------------ #
    def cuda_sync(*args, **kwargs):  # no CUDA here: count and return
        probe.hit("torch.cuda.synchronize")

    monkeypatch.setattr(torch.cuda, "synchronize", cuda_sync)
    monkeypatch.setattr(torch.cuda.Stream, "synchronize", lambda self: probe.hit("Stream.synchronize"))
    monkeypatch.setattr(torch.cuda.Event, "synchronize", lambda self: probe.hit("Event.synchronize"))

    # --- host transfers: reading a tensor's values on the host -------------- #
    for name in ("item", "cpu", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, probe.counted(f"Tensor.{name}", getattr(torch.Tensor, name)))

    # --- file writes ------------------------------------------------------------ #
    def opener(name, original):
        def counted_open(file, mode="r", *args, **kwargs):
            if any(c in mode for c in "wax+"):
                probe.hit(f"{name}(mode={mode!r})")
            return original(file, mode, *args, **kwargs)

        return counted_open

    monkeypatch.setattr(builtins, "open", opener("open", builtins.open))
    monkeypatch.setattr(io, "open", opener("io.open", io.open))
    os_open = os.open

    def counted_os_open(path, flags, *args, **kwargs):
        if flags & _WRITE_FLAGS:
            probe.hit("os.open(write)")
        return os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", counted_os_open)
    for name in ("write", "fsync", "replace", "rename"):
        monkeypatch.setattr(os, name, probe.counted(f"os.{name}", getattr(os, name)))
    monkeypatch.setattr(builtins, "print", probe.counted("print", builtins.print))
    monkeypatch.setattr(records.MetricsLog, "append", probe.counted("MetricsLog.append", records.MetricsLog.append))
    write_json = probe.counted("write_json_atomic", records.write_json_atomic)
    monkeypatch.setattr(records, "write_json_atomic", write_json)  # the runner writes through records.write_record

    # --- phases ------------------------------------------------------------------ #
    init, open_segment, close_segment = runner_loop.TimedLoop.__init__, runner_loop.TimedLoop.open_segment, runner_loop.TimedLoop.close_segment
    train = runner_loop.TimedLoop.train

    def loop_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self._sync = torch.cuda.synchronize  # what a CUDA device gets: the counting stand-in

    def opened(self):
        open_segment(self)  # its clock read (and sync) happens before the segment
        probe.phase = "timed"

    def closed(self):
        if probe.phase == "timed":
            probe.phase = "boundary"
        close_segment(self)  # its sync and clock read end the segment

    def trained(self, *args, **kwargs):
        try:
            return train(self, *args, **kwargs)
        finally:
            probe.phase = "setup"

    monkeypatch.setattr(runner_loop.TimedLoop, "__init__", loop_init)
    monkeypatch.setattr(runner_loop.TimedLoop, "open_segment", opened)
    monkeypatch.setattr(runner_loop.TimedLoop, "close_segment", closed)
    monkeypatch.setattr(runner_loop.TimedLoop, "train", trained)
    return probe


def count_run(tmp_path, monkeypatch, steps: int, every: int, submission: str = "tests.fakes:PLAIN_SGD",
              overrides: tuple[str, ...] = ()) -> Probe:
    """Run ``steps`` training steps with an evaluation every ``every`` steps
    (so ``steps // every`` evaluations) and count what the run did, by phase."""
    registry = Registry(entry_points=False)
    registry.add_workload(fakes.fake_info(task=f"{HERE}:CountingTask", target=1e9, every_steps=every, max_steps=steps))
    plan = plan_run("fake", submission, size="tiny", output=tmp_path / f"{steps}-{every}", registry=registry,
                    overrides=overrides)
    with monkeypatch.context() as patch:
        probe = install(patch)
        result = execute(plan)
    rec = result.record
    assert rec["status"] == "budget_exhausted", rec["reason"]  # ran to the step limit
    assert rec["steps"] == steps and rec["evals"] == steps // every
    return probe


def check_independent_of_steps(short: Probe, long: Probe) -> None:
    """The guarantee: nothing counted inside the timed segments, and the
    boundary work of two runs with the same evaluations but different step
    counts is the same."""
    assert short.total("timed") == 0 and long.total("timed") == 0, (
        f"syncs, host transfers or file writes inside the timed loop: "
        f"{dict(short.counts['timed'])} in the short run, {dict(long.counts['timed'])} in the long one")
    assert short.counts["boundary"] == long.counts["boundary"], (
        f"boundary work grows with the number of steps: {dict(short.counts['boundary'])} "
        f"vs {dict(long.counts['boundary'])}")


def test_no_sync_transfer_or_write_per_step(tmp_path, monkeypatch):
    e2_n20 = count_run(tmp_path, monkeypatch, steps=20, every=10)  # N=20, E=2
    e2_n60 = count_run(tmp_path, monkeypatch, steps=60, every=30)  # N=60, E=2
    e6_n60 = count_run(tmp_path, monkeypatch, steps=60, every=10)  # N=60, E=6
    check_independent_of_steps(e2_n20, e2_n60)
    assert e6_n60.total("timed") == 0

    # The counters do see the loop's own host work, at its boundaries: a device
    # sync to close each segment (and to open each but the first), the loss
    # copied to the host and one metrics line per evaluation ...
    for probe, evals in ((e2_n60, 2), (e6_n60, 6)):
        b = probe.counts["boundary"]
        assert b["Tensor.item"] >= evals and b["MetricsLog.append"] == evals
        assert b["torch.cuda.synchronize"] >= 2 * evals - 1
    # ... so the boundary count grows with E (and, above, not with N).
    assert e6_n60.total("boundary") > e2_n60.total("boundary")
    # Outside the loop too: run.json is written before and after it.
    assert e2_n20.counts["setup"]["write_json_atomic"] >= 2


def test_gradient_clipping_adds_no_sync(tmp_path, monkeypatch):
    # grad_clip scales the gradients on the device: no norm read back per step
    clip = ("optimizer.grad_clip=0.1",)
    check_independent_of_steps(count_run(tmp_path, monkeypatch, steps=20, every=10, overrides=clip),
                               count_run(tmp_path, monkeypatch, steps=60, every=30, overrides=clip))


# --------------------------------------------------------------------------- #
# The check can fail: a submission that syncs or writes every step            #
# --------------------------------------------------------------------------- #


def _misbehaving(action):
    def update(ctx):
        loss = api.default_update(ctx)
        action(loss, ctx)
        return loss

    return SimpleNamespace(**{**vars(fakes.PLAIN_SGD), "update": update})


def _write_each_step(loss, ctx):
    with open(os.devnull, "w") as f:
        f.write("x")


PER_STEP = {
    "ITEM_EACH_STEP": lambda loss, ctx: loss.item(),  # the classic: a logged loss
    "FLOAT_EACH_STEP": lambda loss, ctx: float(loss),
    "CPU_EACH_STEP": lambda loss, ctx: loss.cpu(),
    "BOOL_EACH_STEP": lambda loss, ctx: bool(loss > 1e9),  # a data-dependent branch
    "SYNC_EACH_STEP": lambda loss, ctx: torch.cuda.synchronize(),
    "WRITE_EACH_STEP": _write_each_step,
}
globals().update({name: _misbehaving(action) for name, action in PER_STEP.items()})


def test_a_per_step_item_is_caught(tmp_path, monkeypatch):
    """The guarantee's test fails for an update that calls ``loss.item()``
    each step: the timed count is the number of steps."""
    short = count_run(tmp_path, monkeypatch, steps=20, every=10, submission=f"{HERE}:ITEM_EACH_STEP")
    long = count_run(tmp_path, monkeypatch, steps=60, every=30, submission=f"{HERE}:ITEM_EACH_STEP")
    assert short.counts["timed"]["Tensor.item"] == 20 and long.counts["timed"]["Tensor.item"] == 60
    with pytest.raises(AssertionError, match="inside the timed loop"):
        check_independent_of_steps(short, long)


@pytest.mark.parametrize("name", [n for n in PER_STEP if n != "ITEM_EACH_STEP"])
def test_other_per_step_syncs_and_writes_are_caught(tmp_path, monkeypatch, name):
    short = count_run(tmp_path, monkeypatch, steps=20, every=10, submission=f"{HERE}:{name}")
    long = count_run(tmp_path, monkeypatch, steps=60, every=30, submission=f"{HERE}:{name}")
    assert long.total("timed") >= 60 > short.total("timed") >= 20
    with pytest.raises(AssertionError, match="inside the timed loop"):
        check_independent_of_steps(short, long)


def test_diagnostics_add_no_sync_per_step(tmp_path, monkeypatch):
    """diagnostics=true: each step's gradient norm stays on the device; the
    figures (Hessian included) are read at evaluations only."""
    on = ("diagnostics=true", "diagnostics.hessian=true", "diagnostics.hessian_iterations=2")
    e2_n20 = count_run(tmp_path / "a", monkeypatch, steps=20, every=10, overrides=on)
    e2_n60 = count_run(tmp_path / "b", monkeypatch, steps=60, every=30, overrides=on)
    check_independent_of_steps(e2_n20, e2_n60)
    plain = count_run(tmp_path / "c", monkeypatch, steps=60, every=30)
    # The diagnostics' reads are there, at the boundaries: one transfer of all figures per evaluation.
    assert e2_n60.counts["boundary"]["Tensor.tolist"] >= plain.counts["boundary"]["Tensor.tolist"] + 2
