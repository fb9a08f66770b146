"""bench calibrate: the target-setting protocol on a fast fake workload."""

from __future__ import annotations

import json
import math

import pytest

from harness import api
from harness.sweeps.calibrate import CALIBRATION_FILE, calibrate, cv, quantile, round_easier, time_to
from harness.plugins.registry import Registry
from tests import fakes


class FastTask(fakes.SleepTask):
    """The fake regression task without the busy-waits: validation/mse falls
    as plain SGD trains, and depends on the seed and the learning rate."""

    step_s = 0.0
    eval_s = 0.0


def _registry():
    registry = Registry(entry_points=False)
    info = fakes.fake_info(task="tests.test_calibrate:FastTask", every_steps=5)
    size = info.sizes["tiny"]
    size = api.Size(**{**vars(size), "target": api.Target("mse", 1.0, "min"), "step_hint": 60})
    registry.add_workload(api.WorkloadInfo(**{**vars(info), "sizes": {"tiny": size}}))
    return registry


def test_round_easier_loosens_strictly_toward_the_easy_side():
    assert round_easier(0.97128, "max") == 0.9712
    assert round_easier(1.45371, "min") == 1.454
    assert round_easier(123.45, "min") == 123.5
    # A value already at 4 digits moves one unit: a seed whose best is exactly
    # the target would miss it (targets are met only by better values).
    assert round_easier(0.5, "max") == 0.4999
    assert round_easier(0.964, "max") == 0.9639  # 0.964 / 1e-4 is 9639.999... in floats
    assert round_easier(0.0708, "min") == 0.07081
    for value, direction in [(0.964, "max"), (0.0708, "min"), (2.4704, "min"), (0.9395, "max")]:
        target = api.Target("m", round_easier(value, direction), direction)
        assert target.met({"validation/m": value}), (value, direction)


def test_quantile_and_cv():
    assert quantile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert cv([1.0]) is None
    assert cv([2.0, 2.0, 2.0]) == 0.0
    assert cv([1.0, 3.0]) == pytest.approx(math.sqrt(2) / 2)


def test_time_to_reads_the_first_strictly_better_eval():
    curve = [
        {"step": 10, "timed_s": 1.0, "validation/acc": 0.5},
        {"step": 20, "timed_s": 2.0, "validation/acc": 0.9},
        {"step": 30, "timed_s": 3.0, "validation/acc": 0.95},
    ]
    assert time_to(curve, "acc", 0.9, "max") == (3.0, 30)  # 0.9 is not better than 0.9
    assert time_to(curve, "acc", 0.89, "max") == (2.0, 20)
    assert time_to(curve, "acc", 0.99, "max") is None
    assert time_to(curve, "acc", 0.6, "min") == (1.0, 10)


def test_calibrate_sets_target_from_median_seed_and_resumes(tmp_path):
    messages: list[str] = []
    s = calibrate("fake", "tiny", search=3, seeds=3, steps=40, output=tmp_path, registry=_registry(), progress=messages.append)

    assert len(s["search"]) == 3 and len(s["seeds_detail"]) == 3
    assert s["search"][0]["hyperparameters"] == fakes.PLAIN_SGD.DEFAULTS  # the defaults are always searched
    best = min(s["search"], key=lambda r: r["best"])
    assert s["best_point"] == best["hyperparameters"]
    # Each seed's best within the first 0.67 of the 40 steps (evals every 5: up to step 25).
    for d in s["seeds_detail"]:
        run_dir = tmp_path / "calibration" / "fake-tiny" / "PLAIN_SGD" / f"seed_{d['seed']}"
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert d["best"] == min(r["validation/mse"] for r in rows if r["step"] <= 0.67 * 40)
        assert d["best_whole_run"] == min(r["validation/mse"] for r in rows)
    bests = sorted(d["best"] for d in s["seeds_detail"])
    # The median early best, rounded up (easier for a metric to minimize): the
    # median seed reaches it by two thirds of the run.
    assert s["target"] == round_easier(bests[1], "min")
    assert s["target"] > bests[1]
    assert s["seeds_reaching"] >= 2
    # The reference work is the median seed's steps, a seed that never reached
    # counting as slowest; the budget buys that / 0.67 steps.
    steps = sorted(d["steps_to_target"] if d["steps_to_target"] is not None else math.inf for d in s["seeds_detail"])
    assert s["reference_steps"] == steps[1] <= 0.67 * 40
    assert s["budget_steps"] == math.ceil(steps[1] / 0.67)
    assert s["seeds_within_budget"] == sum(x <= s["budget_steps"] for x in steps)
    # In seconds here: this machine's measured step time of the tuned point.
    assert s["seconds_per_step"] > 0 and s["speed"]["workload"] == "fake"
    assert s["max_runtime_s"] == pytest.approx(steps[1] * s["seconds_per_step"] / 0.67, rel=1e-2)
    times = sorted(d["time_to_target_s"] if d["time_to_target_s"] is not None else math.inf for d in s["seeds_detail"])
    assert s["median_time_to_target_s"] == times[1]
    assert s["time_rule_max_runtime_s"] >= times[1] / 0.67 * 0.999
    assert "bench calibrate" in s["text"] and "Reference work" in s["text"]

    on_disk = json.loads((tmp_path / "calibration" / "fake-tiny" / "PLAIN_SGD" / CALIBRATION_FILE).read_text())
    assert on_disk["target"] == s["target"]
    run = json.loads((tmp_path / "calibration" / "fake-tiny" / "PLAIN_SGD" / "seed_0" / "run.json").read_text())
    assert run["steps"] == 40 and run["status"] == "budget_exhausted"  # never stopped at the old target
    assert run["budget"]["basis"] == "fixed"  # steps, not seconds, bound calibration runs
    assert run["budget"]["step_hint"] == 40  # the schedule is laid over the run, not the size's 60

    # A second call finds every run finished and reruns none.
    messages.clear()
    again = calibrate("fake", "tiny", search=3, seeds=3, steps=40, output=tmp_path, registry=_registry(), progress=messages.append)
    assert all("reusing" in m for m in messages) and len(messages) == 6
    assert again["target"] == s["target"]


def test_calibrate_rejects_nonsense(tmp_path):
    from harness.errors import UserInputError

    with pytest.raises(UserInputError):
        calibrate("fake", "tiny", seeds=0, output=tmp_path, registry=_registry())
    with pytest.raises(UserInputError, match="records none"):
        calibrate("fake", "tiny", search=0, output=tmp_path, registry=_registry())
    with pytest.raises(UserInputError, match="did you mean"):
        calibrate("fkae", "tiny", output=tmp_path, registry=_registry())


def test_calibrate_without_search_reruns_the_recorded_point(tmp_path):
    registry = _registry()
    entry = registry.workloads["fake"]
    size = entry.info.sizes["tiny"]
    recorded = {"lr": 0.05}
    size = api.Size(**{**vars(size), "target_setting": {"optimizer": "tests.fakes:PLAIN_SGD", "hyperparameters": recorded}})
    registry.workloads["fake"] = type(entry)(api.WorkloadInfo(**{**vars(entry.info), "sizes": {"tiny": size}}), entry.origin, entry.source)
    s = calibrate("fake", "tiny", search=0, seeds=2, steps=30, output=tmp_path, registry=registry)
    assert s["search"] == [] and s["best_point"] == recorded
    assert [d["seed"] for d in s["seeds_detail"]] == [0, 1]
    assert "no search" in s["text"]
