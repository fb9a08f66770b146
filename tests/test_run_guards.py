"""What a run promises beyond its clock: reached means the validation target
(the test target is reported), a step or evaluation that never returns ends the
run, evaluation cannot change the model, and a submission sees training only."""

from __future__ import annotations

import io
import signal
import threading
import time
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness import api
from harness.run.records import read_metrics, read_run
from harness.plugins.registry import Registry
from harness.run import execute, plan_run
from tests import fakes


def _registry(info=None) -> Registry:
    registry = Registry(entry_points=False)
    registry.add_workload(info or fakes.fake_info())
    return registry


def _run(tmp_path, submission="tests.fakes:PLAIN_SGD", norm=None, overrides=(), info=None):
    plan = plan_run("fake", submission, size="tiny", norm=norm, output=tmp_path, overrides=list(overrides),
                    registry=_registry(info))
    return execute(plan)


# --------------------------------------------------------------------------- #
# 1. reached = the validation target met; the test target is reported          #
# --------------------------------------------------------------------------- #


def test_target_met_is_validation_only_and_test_met_reports_the_test_target():
    target = api.Target("acc", 0.8, "max", test=0.9)
    assert target.met({"validation/acc": 0.85, "test/acc": 0.5})
    assert not target.met({"validation/acc": 0.75, "test/acc": 0.95})
    assert target.test_met({"test/acc": 0.95}) is True
    assert target.test_met({"test/acc": 0.9}) is False  # strictly better, as the validation target
    assert target.test_met({"validation/acc": 0.95}) is False  # no test value: not met
    assert target.test_met({"test/acc": float("nan")}) is False
    assert api.Target("acc", 0.8, "max").test_met({"test/acc": 0.95}) is None  # no test target


def test_a_missed_test_target_does_not_stop_the_run_from_reaching(tmp_path):
    # validation/score = test/score = steps seen; the validation target 25 is met
    # at the eval after step 30, the test target 1e9 never is.
    result = _run(tmp_path, overrides=["target.test=1e9"])
    rec = read_run(result.run_dir)
    assert rec["status"] == "reached" and result.exit_code == 0
    assert rec["steps_to_target"] == 30 and rec["time_to_target_s"] is not None
    assert rec["test_target_met"] is False and rec["test_value_at_target"] == 30.0
    assert rec["reason"].endswith("; test score 30 missed its target > 1e+09")
    rows = read_metrics(result.run_dir)
    assert [r["test_target_met"] for r in rows] == [False, False, False]  # reported at every eval


def test_a_met_test_target_is_recorded_at_the_reaching_eval(tmp_path):
    rec = _run(tmp_path, overrides=["target.test=15"]).record
    assert rec["status"] == "reached" and rec["steps_to_target"] == 30
    assert rec["test_target_met"] is True and rec["test_value_at_target"] == 30.0
    assert [r["test_target_met"] for r in read_metrics(_last_run_dir(tmp_path))] == [False, True, True]


def test_without_a_test_target_nothing_about_it_is_claimed(tmp_path):
    result = _run(tmp_path)
    rec = result.record
    assert rec["status"] == "reached"
    assert rec["test_target_met"] is None and rec["test_value_at_target"] == 30.0
    assert "test" not in rec["reason"]
    assert all("test_target_met" not in r for r in read_metrics(result.run_dir))


def test_a_run_that_misses_validation_claims_no_test_outcome(tmp_path):
    rec = _run(tmp_path, info=fakes.fake_info(target=1e9), overrides=["budget.max_steps=20", "target.test=5"]).record
    assert rec["status"] == "budget_exhausted"
    assert rec["test_target_met"] is None and rec["test_value_at_target"] is None


def _summary_text(result, monkeypatch) -> str:
    from rich.console import Console

    from harness.cli import run as cli

    buffer = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=buffer, width=200, color_system=None))
    cli._summary(result, fakes.fake_info().sizes["tiny"])
    return buffer.getvalue()


@pytest.mark.parametrize("test_target, shown", [
    ("1e9", "missed (30, target > 1e+09)"),
    ("15", "met (30 > 15)"),
])
def test_bench_run_summary_shows_the_test_target(tmp_path, monkeypatch, test_target, shown):
    result = _run(tmp_path, overrides=[f"target.test={test_target}"])
    lines = [line for line in _summary_text(result, monkeypatch).splitlines() if line.startswith("test target")]
    assert len(lines) == 1 and lines[0].split(None, 2)[2].strip() == shown


def test_bench_run_summary_has_no_test_row_without_a_test_target(tmp_path, monkeypatch):
    result = _run(tmp_path)
    assert "test target" not in _summary_text(result, monkeypatch)


def _last_run_dir(root):
    return sorted(root.rglob("run.json"))[-1].parent


# --------------------------------------------------------------------------- #
# 2. the watchdog: a step or an evaluation that never returns ends the run     #
# --------------------------------------------------------------------------- #


def _hanging_update(ctx):
    if ctx.step == 3:
        while True:  # a Python-level hang: no call that a signal would interrupt anyway
            pass
    return api.default_update(ctx)


HANGING_SGD = SimpleNamespace(**{**vars(fakes.PLAIN_SGD), "update": _hanging_update})


def _sleeping_update(ctx):
    if ctx.step == 3:
        time.sleep(3600)  # blocked in C: the watchdog's signal must wake it
    return api.default_update(ctx)


SLEEPING_SGD = SimpleNamespace(**{**vars(fakes.PLAIN_SGD), "update": _sleeping_update})


def _swallowing_update(ctx):
    if ctx.step == 3:
        for _ in range(2):  # a submission that catches everything gets a second expiry, and a third
            try:
                while True:
                    pass
            except BaseException:
                pass
        while True:
            pass
    return api.default_update(ctx)


SWALLOWING_SGD = SimpleNamespace(**{**vars(fakes.PLAIN_SGD), "update": _swallowing_update})


class HangingEvalTask(fakes.SleepTask):
    def evaluate(self, model):
        if self.steps_seen >= 20:
            while True:
                pass
        return super().evaluate(model)


def _watchdog_state():
    names = [t.name for t in threading.enumerate() if t.name == "optbench-watchdog"]
    return names, signal.getsignal(signal.SIGALRM)


@pytest.mark.parametrize("submission", ["tests.test_run_guards:HANGING_SGD", "tests.test_run_guards:SLEEPING_SGD",
                                        "tests.test_run_guards:SWALLOWING_SGD"])
def test_a_step_that_never_returns_ends_the_run_with_an_error(tmp_path, submission):
    before = _watchdog_state()
    start = time.perf_counter()
    result = _run(tmp_path, submission, overrides=["watchdog.limit_s=0.5"])
    assert time.perf_counter() - start < 30
    rec = read_run(result.run_dir)  # the record is written
    assert rec["status"] == "error" and result.exit_code == 1
    assert rec["reason"] == "step did not return within 0.5 s (watchdog.limit_s)"
    assert rec["error"]["type"] == "WatchdogExpired"
    assert "_update" in rec["error"]["traceback"]  # where the step was stuck
    assert rec["steps"] == 3 and rec["watchdog_s"] == 0.5
    assert _watchdog_state() == before  # the watcher is gone and SIGALRM's handler restored


def test_an_evaluation_that_never_returns_ends_the_run_with_an_error(tmp_path):
    info = fakes.fake_info(task="tests.test_run_guards:HangingEvalTask", target=1e9)
    rec = _run(tmp_path, info=info, overrides=["watchdog.limit_s=0.5"]).record
    assert rec["status"] == "error"
    assert rec["reason"] == "evaluation did not return within 0.5 s (watchdog.limit_s)"
    assert rec["evals"] == 1 and rec["steps"] == 20  # the first evaluation (step 10) returned


def test_the_default_limit_is_ten_times_the_budget_and_a_normal_run_never_trips_it(tmp_path):
    rec = _run(tmp_path).record
    assert rec["status"] == "reached" and rec["watchdog_s"] == 10 * 30.0
    rec = _run(tmp_path, overrides=["watchdog.factor=2"]).record
    assert rec["watchdog_s"] == 60.0
    rec = _run(tmp_path, overrides=["watchdog.factor=null"]).record
    assert rec["status"] == "reached" and rec["watchdog_s"] is None
    from harness.errors import UserInputError

    with pytest.raises(UserInputError, match="watchdog.limit_s must be positive"):
        _run(tmp_path, overrides=["watchdog.limit_s=0"])


def test_a_tight_watchdog_on_healthy_segments_changes_nothing(tmp_path):
    # Segments of ~0.2 s and evaluations of 0.05 s under a 1 s limit: armed and
    # disarmed at every boundary, never fired.
    a = _run(tmp_path / "a", overrides=["watchdog.limit_s=1"]).run_dir
    b = _run(tmp_path / "b", overrides=["watchdog.factor=null"]).run_dir
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("timed_s", "wall_s")} for r in rows]
    assert read_run(a)["status"] == "reached"
    assert strip(read_metrics(a)) == strip(read_metrics(b))


def test_ctrl_c_is_still_an_interrupt_under_the_watchdog(tmp_path):
    fakes.SleepTask.interrupt_at_step = 15
    try:
        result = _run(tmp_path, overrides=["watchdog.limit_s=5"])
    finally:
        fakes.SleepTask.interrupt_at_step = None
    assert result.record["status"] == "interrupted" and result.exit_code == 130


def test_the_watchdog_stops_a_run_off_the_main_thread(tmp_path):
    # Off the main thread no signal handler can be installed: an asynchronous
    # exception in the run's thread does the work.
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", _run(
        tmp_path, "tests.test_run_guards:HANGING_SGD", overrides=["watchdog.limit_s=0.5"])))
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    rec = box["result"].record
    assert rec["status"] == "error" and rec["reason"].startswith("step did not return within 0.5 s")


def test_bench_run_exits_1_when_the_watchdog_fires(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from harness import cli

    from harness.run import plan as runner

    class FakeRegistry(Registry):
        def __init__(self, entry_points=True):
            super().__init__(entry_points=False)
            self.add_workload(fakes.fake_info())

    monkeypatch.setattr(runner, "Registry", FakeRegistry)
    result = CliRunner().invoke(cli.app, ["run", "-w", "fake", "--size", "tiny", "-s", "tests.test_run_guards:HANGING_SGD",
                                          "-o", str(tmp_path), "watchdog.limit_s=0.5"])
    assert result.exit_code == 1, result.output
    assert "step did not return within 0.5 s" in result.output
    assert read_run(_last_run_dir(tmp_path))["status"] == "error"


# --------------------------------------------------------------------------- #
# 3. evaluation must leave the model as it found it                            #
# --------------------------------------------------------------------------- #


class LeakyBatchNorm(nn.BatchNorm1d):
    """Keeps updating its running statistics in eval mode: trains on validation data."""

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=True, momentum=self.momentum, eps=self.eps)


class DriftingNorm(nn.Module):
    """Nudges its own weight whenever it runs in eval mode."""

    def __init__(self, n):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))

    def forward(self, x):
        if not self.training:
            with torch.no_grad():
                self.weight.add_(1e-6)
        return x * self.weight


def _norm(make):
    return SimpleNamespace(KIND="norm", SITES=("node", "conv", "token"), make_norm=lambda site, n, hp: make(n))


LEAKY_BN = _norm(LeakyBatchNorm)
PLAIN_BN = _norm(nn.BatchNorm1d)
DRIFTING = _norm(DriftingNorm)


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "checksum"])
def test_a_norm_that_updates_running_stats_in_eval_fails_the_run(tmp_path, monkeypatch, copy):
    from harness.run import evalguard

    monkeypatch.setattr(evalguard, "COPY_LIMIT_BYTES", evalguard.COPY_LIMIT_BYTES if copy else 0)
    result = _run(tmp_path, norm="tests.test_run_guards:LEAKY_BN")
    rec = read_run(result.run_dir)
    assert rec["status"] == "error" and result.exit_code == 1
    assert rec["reason"] == "evaluation changed buffer 1.running_mean"  # the model is Linear, norm, Linear
    assert rec["evals"] == 1 and rec["steps"] == 10  # caught at the first evaluation
    assert read_metrics(result.run_dir) == []  # the tampered evaluation's metrics are not logged


def test_a_parameter_written_in_eval_fails_the_run(tmp_path):
    rec = _run(tmp_path, norm="tests.test_run_guards:DRIFTING").record
    assert rec["status"] == "error" and rec["reason"] == "evaluation changed parameter 1.weight"


def test_ordinary_batchnorm_in_eval_mode_passes(tmp_path):
    rec = _run(tmp_path, norm="tests.test_run_guards:PLAIN_BN").record
    assert rec["status"] == "reached" and rec["evals"] == 3


@pytest.mark.parametrize("copy_limit", [None, 0], ids=["copy", "checksum"])
def test_the_snapshot_sees_any_change_and_nothing_else(copy_limit):
    from harness.run.evalguard import ModelSnapshot

    model = nn.Sequential(nn.Linear(300, 300), nn.BatchNorm1d(300))
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")  # NaN equals itself: no change
    assert ModelSnapshot(model, copy_limit).changed(model) is None
    snap = ModelSnapshot(model, copy_limit)
    with torch.no_grad():
        model[0].weight[17, 3] += 1e-3  # one element of 90 000
    assert snap.changed(model) == "parameter 0.weight"
    snap = ModelSnapshot(model, copy_limit)
    model[1].num_batches_tracked += 1
    assert snap.changed(model) == "buffer 1.num_batches_tracked"
    snap = ModelSnapshot(model, copy_limit)
    model[1].register_buffer("extra", torch.zeros(1))
    assert snap.changed(model) == "buffer 1.extra (added)"


def test_the_copy_is_bit_exact():
    from harness.run.evalguard import ModelSnapshot

    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.bias.zero_()
    snap = ModelSnapshot(model)
    assert snap.copied
    with torch.no_grad():
        model.bias.neg_()  # 0.0 -> -0.0: equal as numbers, not as bits
    assert snap.changed(model) == "parameter bias"


# --------------------------------------------------------------------------- #
# 4. a submission sees the task for training only                              #
# --------------------------------------------------------------------------- #

SEEN: dict[str, object] = {}


def _probing_update(ctx):
    if ctx.step == 0:
        task = ctx.task
        SEEN["type"] = type(task).__name__
        SEEN["batch"] = task.next_batch(0)
        SEEN["param_types"] = task.param_types(ctx.model)
        SEEN["size"], SEEN["device"] = task.size.name, task.device
        SEEN["hidden"] = {}
        for name in ("evaluate", "x", "y", "splits", "data_dir", "trace", "steps_seen"):
            try:
                getattr(task, name)
                SEEN["hidden"][name] = "visible"
            except AttributeError as exc:
                SEEN["hidden"][name] = str(exc)
    return api.default_update(ctx)


PROBING_SGD = SimpleNamespace(**{**vars(fakes.PLAIN_SGD), "update": _probing_update})


def test_a_submission_gets_a_training_only_view_of_the_task(tmp_path):
    SEEN.clear()
    rec = _run(tmp_path, "tests.test_run_guards:PROBING_SGD").record
    assert rec["status"] == "reached"  # loss_fn works through the view
    assert SEEN["type"] == "TrainingView"
    x, y = SEEN["batch"]
    assert x.shape == (8, 4) and SEEN["size"] == "tiny" and str(SEEN["device"]) == "cpu"
    assert set(SEEN["param_types"]) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    for name, seen in SEEN["hidden"].items():  # held-out data, evaluate and the task's own state
        assert seen.startswith(f"a submission sees the task for training only: {name!r} is not available"), name
    assert "evaluate() belong to the harness" in SEEN["hidden"]["evaluate"]


def test_the_training_view_is_read_only_and_keeps_a_sharded_task_s_batches():
    from harness.run.distributed import Dist, ShardedTask

    task = fakes.SleepTask(fakes.fake_info().sizes["tiny"], torch.device("cpu"), None, 0)
    view = api.TrainingView(task)
    with pytest.raises(AttributeError, match="read-only"):
        view.evaluate = task.evaluate
    assert not hasattr(view, "evaluate") and not hasattr(view, "__dict__")
    # Under DDP the view wraps the rank's ShardedTask: next_batch is the rank's slice.
    dist = SimpleNamespace(rank=1, world_size=2)
    sharded = api.TrainingView(ShardedTask(task, dist))
    x, _ = sharded.next_batch(0)
    assert torch.equal(x, task.next_batch(0)[0][4:])
    assert not hasattr(sharded, "evaluate")
