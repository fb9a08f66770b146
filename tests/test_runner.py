"""The timed runner against a fake workload whose costs are known exactly."""

from __future__ import annotations

import json

import pytest

from harness.run.records import read_metrics, read_run
from harness.plugins.registry import Registry
from harness.run import execute, plan_run
from tests import fakes


TASKS = []


class _Recorder(fakes.SleepTask):
    def __init__(self, *args):
        super().__init__(*args)
        TASKS.append(self)


def _run(tmp_path, info=None, submission="tests.fakes:PLAIN_SGD", overrides=(), **task_attrs):
    registry = Registry(entry_points=False)
    registry.add_workload(info or fakes.fake_info())
    for key, value in task_attrs.items():
        setattr(fakes.SleepTask, key, value)
    try:
        plan = plan_run("fake", submission, size="tiny", output=tmp_path, overrides=list(overrides), registry=registry)
        return execute(plan)
    finally:
        for key in task_attrs:
            setattr(fakes.SleepTask, key, None)


def test_timed_seconds_match_the_truth_and_exclude_eval(tmp_path):
    result = _run(tmp_path, info=fakes.fake_info(task="tests.test_runner:_Recorder"), submission="tests.fakes:FORWARD_ONLY")
    rec = result.record
    assert rec["status"] == "reached"
    # score = steps seen; target 25 is first beaten at the eval after step 30.
    assert rec["steps_to_target"] == 30
    # The truth is the training time the task itself saw, evals excluded ...
    truth = TASKS[-1].training_seconds()
    assert rec["time_to_target_s"] == pytest.approx(truth, rel=0.01)
    assert rec["timed_s"] == pytest.approx(truth, rel=0.01)
    # ... which is the known busy-wait cost plus a little real work per step.
    assert 30 * fakes.STEP_S <= truth < 1.2 * 30 * fakes.STEP_S
    # three evaluations, each EVAL_S, all outside the timed seconds
    assert rec["evals"] == 3
    assert rec["eval_s"] >= 3 * fakes.EVAL_S
    assert rec["wall_s"] >= rec["timed_s"] + rec["eval_s"]


def test_prepare_for_eval_is_timed(tmp_path):
    info = fakes.fake_info(task="tests.test_runner:_Recorder")
    rec = _run(tmp_path, info=info, submission="tests.fakes:PREPARE_FORWARD_ONLY").record
    truth = TASKS[-1].training_seconds()  # its last "end" is after prepare_for_eval
    assert rec["time_to_target_s"] == pytest.approx(truth, rel=0.01)
    assert truth >= 30 * fakes.STEP_S + 3 * 0.03


def test_budget_stop(tmp_path):
    info = fakes.fake_info(target=1e9, budget=0.5)
    rec = _run(tmp_path, info=info, submission="tests.fakes:FORWARD_ONLY").record
    assert rec["status"] == "budget_exhausted"
    assert rec["time_to_target_s"] is None and rec["steps_to_target"] is None
    # stops at the first step past the budget: within one step of it. Each step
    # busy-waits STEP_S, so no more steps fit than 0.5 / STEP_S; on a loaded machine
    # a step can take longer, so "one step" is the run's own mean step (x2 for jitter).
    mean_step = rec["timed_s"] / rec["steps"]
    assert mean_step >= fakes.STEP_S
    assert 0.5 <= rec["timed_s"] <= 0.5 + 2 * mean_step
    assert rec["steps"] <= 0.5 / fakes.STEP_S + 1
    # the record says why it missed: the best validation value against the target
    assert rec["reason"].startswith("timed budget of 0.5 s spent at step")
    assert "; best validation/score " in rec["reason"] and rec["reason"].endswith("target > 1e+09")


def test_target_met_only_after_the_budget_is_a_miss_that_says_so(tmp_path):
    info = fakes.fake_info(target=1.0, budget=0.3, every_steps=10_000)  # the first eval comes after the budget
    rec = _run(tmp_path, info=info, submission="tests.fakes:FORWARD_ONLY").record
    assert rec["status"] == "budget_exhausted" and rec["time_to_target_s"] is None
    assert "met the target > 1 only after the budget" in rec["reason"]


def test_step_limit(tmp_path):
    rec = _run(tmp_path, info=fakes.fake_info(target=1e9), overrides=["budget.max_steps=13"]).record
    assert rec["status"] == "budget_exhausted" and rec["steps"] == 13
    assert rec["reason"] == "step limit of 13 reached; best validation/score 13, target > 1e+09"
    assert rec["official"] is False and rec["deviations"] == ["max_steps=13"]


def test_time_based_eval_cadence(tmp_path):
    info = fakes.fake_info(target=1e9, budget=0.6, every_s=0.2)
    rec = _run(tmp_path, info=info, submission="tests.fakes:FORWARD_ONLY").record
    assert rec["evals"] == 3  # at ~0.2, ~0.4, ~0.6 timed seconds


def test_diverged(tmp_path):
    rec = _run(tmp_path, info=fakes.fake_info(target=1e9), nan_from_step=12).record
    assert rec["status"] == "diverged"
    assert rec["steps"] == 20  # detected at the next eval boundary, without per-step syncs
    assert rec["time_to_target_s"] is None


def test_submission_error_is_recorded(tmp_path):
    result = _run(tmp_path, submission="tests.fakes:RAISING_SGD")
    rec = read_run(result.run_dir)
    assert rec["status"] == "error"
    assert "boom in step 7" in rec["reason"]
    assert "RuntimeError" in rec["error"]["traceback"]
    assert result.exit_code == 1


def test_interrupt_writes_a_record(tmp_path):
    result = _run(tmp_path, interrupt_at_step=15)
    rec = read_run(result.run_dir)
    assert rec["status"] == "interrupted" and result.exit_code == 130
    assert rec["evals"] == 1 and rec["timed_s"] > 0


def test_record_schema_and_metrics_stream(tmp_path):
    result = _run(tmp_path)
    rec = read_run(result.run_dir)
    for key in ("schema_version", "workload", "size", "submission", "norm", "hyperparameters", "seed",
                "status", "target", "time_to_target_s", "steps_to_target", "timed_s", "eval_s", "wall_s",
                "steps", "final_metrics", "fingerprint", "config", "started_at", "finished_at"):
        assert key in rec, key
    assert rec["submission"]["origin"] == "module"
    assert rec["target"] == {"metric": "score", "value": 25.0, "direction": "max", "test_value": None}
    rows = read_metrics(result.run_dir)
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert rows[-1]["validation/score"] == 30.0
    json.dumps(rec, allow_nan=False)


def test_same_seed_same_metrics(tmp_path):
    a = _run(tmp_path / "a").run_dir
    b = _run(tmp_path / "b").run_dir
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("timed_s", "wall_s")} for r in rows]
    assert strip(read_metrics(a)) == strip(read_metrics(b))


def test_bad_override_and_hyperparameter(tmp_path):
    from harness.errors import UserInputError

    with pytest.raises(UserInputError, match="did you mean 'budget.max_steps'"):
        _run(tmp_path, overrides=["budget.max_step=3"])
    with pytest.raises(UserInputError, match="unknown optimizer hyperparameter 'lrr'.*did you mean 'lr'"):
        _run(tmp_path, overrides=["optimizer.lrr=3"])
    assert not any(tmp_path.rglob("run.json"))


def test_hyperparameter_override_reaches_the_optimizer(tmp_path):
    rec = _run(tmp_path, overrides=["optimizer.lr=0.05"]).record
    assert rec["hyperparameters"]["optimizer"]["lr"] == 0.05
    assert rec["official"] is True


def test_a_pinned_hardware_class_makes_runs_elsewhere_unofficial(tmp_path):
    rec = _run(tmp_path / "a", info=fakes.fake_info(), overrides=["hardware_id=hw-000000000000"]).record
    here = rec["fingerprint"]["hardware_id"]  # the run's class (its threads are the runner's, not this process's)
    assert rec["status"] == "reached"  # it runs and is recorded ...
    assert rec["official"] is False  # ... but its seconds are not the pinned machine's
    assert rec["deviations"] == [f"hardware {here} is not the pinned hw-000000000000"]
    assert rec["pinned_hardware_id"] == "hw-000000000000"
    rec = _run(tmp_path / "b", info=fakes.fake_info(), overrides=[f"hardware_id={here}"]).record
    assert rec["official"] is True and rec["deviations"] == []
