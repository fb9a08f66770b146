"""Every tiny target is reachable: the tuned baseline it was calibrated on gets there.

A size's ``target_setting`` (harness/api.py) names the optimizer and
hyperparameters ``bench calibrate`` picked, and the steps each seed took to the
target. This reruns the fastest of those seeds through the real runner and
checks it reaches the target within the calibration's step count, at the same
eval step (one eval of slack) when the machine is of the calibration's hardware class. On another
class (other CPU kernels round differently) seeds do not reproduce, so the test
tries the calibrated seeds in turn, each with the steps the reference budget
buys (1.5x the calibrated steps), and passes at the first that reaches.
The timed budget is lifted, so a busy machine cannot fail the test
(seconds are the benchmarks' business: benchmarks/eval_share.py and
docs/calibration.md); the record is therefore unofficial.

Slow: one real training run per workload, 20-50 s each on 2 cores.
"""

from __future__ import annotations

import math

import pytest

from harness.calibrate import tuned_baseline
from harness.fingerprint import collect
from harness.records import read_metrics
from harness.registry import Registry
from harness.runner import execute, plan_run

REGISTRY = Registry(entry_points=False)
BUDGET_FRACTION = 0.67  # bench calibrate's: budget = the median seed's time / 0.67
TINY = sorted(name for name, e in REGISTRY.workloads.items() if "tiny" in e.info.sizes)


def _run(workload, size, seed, max_steps, tmp_path):
    optimizer, overrides = tuned_baseline(size)
    plan = plan_run(workload, optimizer, size="tiny", seed=seed, output=tmp_path / f"seed{seed}", registry=REGISTRY,
                    overrides=[*overrides, "budget.max_runtime_s=3600", f"budget.max_steps={max_steps}"])
    return execute(plan)


@pytest.mark.slow
@pytest.mark.parametrize("workload", TINY)
def test_tuned_baseline_reaches_the_tiny_target(tmp_path, workload):
    size = REGISTRY.workloads[workload].info.sizes["tiny"]
    assert size.target_setting, f"{workload} tiny has no recorded target-setting run: run bench calibrate"
    calibrated = {int(k): v for k, v in size.target_setting["steps_to_target"].items()}
    steps = size.target_setting["steps"]
    if collect()["hardware_id"] == size.target_setting.get("hardware_id"):
        # The calibration's hardware class: the fastest seed reproduces, so it
        # must reach at its calibrated eval step (one eval of slack, for CPUs of
        # one class that still differ in microcode or library builds).
        seed = min((s for s in calibrated if calibrated[s] is not None), key=calibrated.get)
        result = _run(workload, size, seed, steps, tmp_path)
        rec = result.record
        assert rec["status"] == "reached", f"seed {seed} reproduced and missed: {rec['reason']}"
        assert abs(rec["steps_to_target"] - calibrated[seed]) <= (size.eval_every_steps or 0), (rec["steps_to_target"], calibrated[seed])
        _assert_first_eval_that_meets(size, result)
        return
    # Another class rounds differently (other CPU kernels), so seeds do not
    # reproduce: each is a fresh draw against a target the median seed set.
    # The budget is the median seed's time / 0.67, so on the reference machine
    # it buys about 1.5x the calibrated steps; any calibrated seed reaching
    # within that shows the target is in reach here.
    max_steps = math.ceil(steps / BUDGET_FRACTION)
    misses = []
    for seed in sorted(calibrated, key=lambda s: (calibrated[s] is None, calibrated[s] or 0, s)):
        result = _run(workload, size, seed, max_steps, tmp_path)
        if result.record["status"] == "reached":
            _assert_first_eval_that_meets(size, result)
            return
        misses.append(f"seed {seed}: {result.record['reason']}")
    pytest.fail(f"no calibrated seed of the tuned baseline reached the {workload} tiny target in {max_steps} steps: {misses}")


def _assert_first_eval_that_meets(size, result):
    target, rows = size.target, read_metrics(result.run_dir)
    assert target.met(rows[-1]) and not any(target.met(r) for r in rows[:-1])
