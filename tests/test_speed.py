"""Budgets that travel (harness/run/speed.py): reference work turned into this machine's seconds.

A fake workload whose every step busy-waits a known time stands in for a tiny
size: its measured step time is known, so the budget each machine derives from
it can be checked exactly.
"""

from __future__ import annotations

import json
import os

import pytest
import torch

from harness import api

from harness.run import speed
from harness.run.records import read_metrics
from harness.plugins.registry import Registry
from harness.run import execute, plan_run
from harness.sweeps.tuning import plan_sweep
from tests import fakes

SGD = "tests.fakes:PLAIN_SGD"
REFERENCE_S_PER_STEP = 0.01  # what the "calibration class" measured: half the fake's true 0.02 s


def _registry(reference_steps: int = 40) -> Registry:
    registry = Registry(entry_points=False)
    info = fakes.fake_info(target=1e9, every_steps=10)  # a target no run meets: runs spend their budget
    size = api.Size(**{
        **vars(info.sizes["tiny"]),
        "reference_steps": reference_steps,
        "max_runtime_s": 1.0,  # reference_steps x 0.01 / 0.67, rounded, as calibration would write it
        "target_setting": {"optimizer": SGD, "hyperparameters": {"lr": 0.01}, "hardware_id": "hw-reference",
                           "seconds_per_step": REFERENCE_S_PER_STEP},
    })
    registry.add_workload(api.WorkloadInfo(**{**vars(info), "sizes": {"tiny": size}}))
    return registry


def _size(registry: Registry) -> api.Size:
    return registry.workloads["fake"].info.sizes["tiny"]


def _speed(registry, **kwargs) -> speed.Speed:
    entry = registry.workloads["fake"]
    defaults = {"threads": 1, "device": torch.device("cpu"), "data_dir": None, "hardware_id": "hw-here", "registry": registry}
    return speed.local_speed(entry, entry.info.sizes["tiny"], **{**defaults, **kwargs})


def test_budget_steps_follow_the_calibration_rule():
    size = _size(_registry(reference_steps=600))
    assert size.budget_steps == 896  # ceil(600 / 0.67)
    assert api.Size(**{**vars(size), "reference_steps": 67}).budget_steps == 100
    assert api.Size(**{**vars(size), "reference_steps": None}).budget_steps is None


def test_local_budget_is_reference_steps_times_local_step_time_over_the_fraction():
    size = _size(_registry(reference_steps=40))
    measured = speed.Speed("fake", "tiny", 0.03, [0.03, 0.031, 0.035], "m", "hw-here", 2, "now", "k")
    budget = speed.local_budget(size, measured)
    assert budget["max_runtime_s"] == pytest.approx(40 * 0.03 / 0.67, abs=1e-3)
    assert budget["speed_factor"] == pytest.approx(3.0)
    assert (budget["basis"], budget["reference_steps"], budget["budget_steps"]) == ("reference_work", 40, 60)
    assert budget["reference_hardware_id"] == "hw-reference" and budget["reference_max_runtime_s"] == 1.0
    tripled = speed.local_budget(size, measured, multiplier=3.0)
    assert tripled["max_runtime_s"] == pytest.approx(3 * budget["max_runtime_s"], abs=1e-3)
    assert "speed factor 3.00" in speed.describe(budget) and "40 reference steps" in speed.describe(budget)


def test_the_step_time_is_measured_once_per_class_and_code_then_cached():
    registry = _registry()
    first = _speed(registry)
    assert not first.cached
    # Every step busy-waits 0.02 s, so the fastest chunk is 0.02 s/step plus a
    # little for the tiny model: the measurement times the real step.
    assert fakes.STEP_S <= first.s_per_step < fakes.STEP_S * 2
    assert len(first.chunk_s_per_step) == speed.CHUNKS and first.s_per_step == min(first.chunk_s_per_step)
    again = _speed(registry)
    assert again.cached and again.s_per_step == first.s_per_step and again.key == first.key
    assert not _speed(registry, remeasure=True).cached
    # Another class, another thread count or another baseline is another measurement.
    assert not _speed(registry, hardware_id="hw-elsewhere").cached
    assert not _speed(registry, threads=2).cached
    assert _speed(registry, point=(SGD, {"lr": 0.02})).key != first.key


def test_a_torn_cache_entry_is_measured_again(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTBENCH_CACHE_DIR", str(tmp_path))
    registry = _registry()
    first = _speed(registry)
    path = tmp_path / speed.SPEED_DIR / f"{first.key}.json"
    assert json.loads(path.read_text())["s_per_step"] == first.s_per_step
    path.write_text("{not json")
    assert not _speed(registry).cached


def test_a_run_gets_this_machines_seconds_and_records_how(tmp_path):
    registry = _registry(reference_steps=40)
    plan = plan_run("fake", SGD, size="tiny", output=tmp_path, registry=registry)
    assert plan.budget_basis == "reference_work"
    rec = execute(plan).record
    budget = rec["budget"]
    s_per_step = budget["speed"]["s_per_step"]
    assert budget["basis"] == "reference_work" and budget["reference_steps"] == 40
    assert budget["max_runtime_s"] == pytest.approx(40 * s_per_step / 0.67, abs=1e-3)
    assert budget["speed_factor"] == pytest.approx(s_per_step / REFERENCE_S_PER_STEP, rel=1e-3)
    assert budget["reference_max_runtime_s"] == 1.0 and budget["speed"]["method"].startswith("tuned baseline")
    assert rec["official"] and rec["status"] == "budget_exhausted"
    # The budget bought about the reference work's 40 / 0.67 = 60 steps (the
    # fake's optimizer is the baseline here); timing noise moves it a little.
    assert 45 <= rec["steps"] <= 75, rec["steps"]


def test_an_explicit_budget_in_seconds_is_fixed_and_unofficial(tmp_path):
    registry = _registry()
    rec = execute(plan_run("fake", SGD, size="tiny", output=tmp_path, registry=registry,
                           overrides=["budget.max_runtime_s=0.3"])).record
    assert rec["budget"]["basis"] == "fixed" and rec["budget"]["max_runtime_s"] == 0.3
    assert not rec["official"] and "max_runtime_s=0.3" in rec["deviations"]


def test_measuring_does_not_change_the_run(tmp_path, monkeypatch):
    """Same seed, same metrics: whether the step time was measured first or read from the cache."""
    monkeypatch.setenv("OPTBENCH_CACHE_DIR", str(tmp_path / "cache"))
    registry = _registry()
    streams = []
    for name in ("cold", "warm"):
        result = execute(plan_run("fake", SGD, size="tiny", output=tmp_path / name, registry=registry,
                                  overrides=["budget.max_steps=30"]))
        streams.append([{k: v for k, v in row.items() if k not in ("timed_s", "wall_s")} for row in read_metrics(result.run_dir)])
        assert result.record["budget"]["speed"]["cached"] == (name == "warm")
    assert streams[0] == streams[1] and len(streams[0]) == 3


def test_self_tuning_multiplies_this_machines_budget(tmp_path):
    registry = _registry()
    sweep = plan_sweep("fake", SGD, size="tiny", ruleset="self", studies=1, output=tmp_path, registry=registry)
    assert sweep.trials[0].plan.budget_multiplier == 3.0 and sweep.trials[0].plan.deviations == []
    result = execute(sweep.trials[0].plan)
    budget = result.record["budget"]
    assert budget["multiplier"] == 3.0 and result.record["official"]
    assert budget["max_runtime_s"] == pytest.approx(3 * 40 * budget["speed"]["s_per_step"] / 0.67, abs=1e-3)


@pytest.mark.skipif(os.environ.get("OPTBENCH_CACHE") == "0", reason="needs the user cache")
def test_bench_hw_speed_lists_every_reference_work_size():
    from typer.testing import CliRunner

    from harness.cli import app

    out = CliRunner().invoke(app, ["hw", "--speed"], env={"COLUMNS": "250"})
    assert out.exit_code == 0, out.output
    for name, entry in Registry(entry_points=False).workloads.items():
        if any(s.reference_steps for s in entry.info.sizes.values()):
            assert name in out.output
    assert "speed factor" in out.output


def test_a_distributed_run_keeps_the_calibration_class_seconds(tmp_path, monkeypatch):
    # One process's step time says nothing of several ranks' steps.
    monkeypatch.setenv("WORLD_SIZE", "2")
    plan = plan_run("fake", SGD, size="tiny", output=tmp_path, registry=_registry())
    assert plan.budget_basis == "fixed" and plan.max_runtime_s == 1.0
    assert plan.budget_note.startswith("distributed run")
    explicit = plan_run("fake", SGD, size="tiny", output=tmp_path, registry=_registry(), overrides=["budget.max_runtime_s=5"])
    assert explicit.budget_note == ""  # the user's own seconds need no excuse
    assert "(the calibration class" in speed.describe({"max_runtime_s": 1.0, "basis": "fixed",
                                                       "note": "the calibration class's seconds"})


def test_a_probe_beside_other_work_serves_its_run_but_is_never_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTBENCH_CACHE_DIR", str(tmp_path))
    registry = _registry()
    judged = []

    def busy(first, last, threads, device_type):
        judged.append((last.step - first.step, last.wall - first.wall))
        return "contended: other processes used 60% of the CPU in the speed probe (steps 5-35, 0.7 s)"

    monkeypatch.setattr(speed, "_probe_contention", busy)
    first = _speed(registry)
    # the judged stretch is the timed chunks alone, not the warm-up or the evaluation
    assert judged[0][0] == speed.CHUNKS * speed.CHUNK_STEPS and judged[0][1] >= sum(first.chunk_s_per_step) * speed.CHUNK_STEPS
    assert first.contended.startswith("contended: other processes") and not first.cached
    assert not (tmp_path / speed.SPEED_DIR / f"{first.key}.json").exists()
    assert not _speed(registry).cached  # measured again, not read back
    budget = speed.local_budget(_size(registry), first)
    assert "beside other work (not cached)" in speed.describe(budget)
    monkeypatch.setattr(speed, "_probe_contention", lambda *args: None)  # a quiet machine again
    quiet = _speed(registry)
    assert quiet.contended is None and _speed(registry).cached


def test_the_probe_times_one_evaluation_for_study_estimates():
    measured = _speed(_registry(), remeasure=True)
    # the fake's evaluation busy-waits EVAL_S: one evaluation, not several, and not a step
    assert fakes.EVAL_S <= measured.eval_s < fakes.EVAL_S + 0.05
