"""Every tiny target is reachable: the tuned baseline it was calibrated on gets there.

A size's ``target_setting`` (harness/api.py) names the optimizer and
hyperparameters ``bench calibrate`` picked, and the steps each seed took to the
target. This reruns the fastest of those seeds through the real runner and
checks it reaches the target within the calibration's step count, at the same
eval steps. The timed budget is lifted, so a busy machine cannot fail the test
(seconds are the benchmarks' business: benchmarks/eval_share.py and
docs/calibration.md); the record is therefore unofficial.

Slow: one real training run per workload, 20-50 s each on 2 cores.
"""

from __future__ import annotations

import pytest

from harness.calibrate import tuned_baseline
from harness.records import read_metrics
from harness.registry import Registry
from harness.runner import execute, plan_run

REGISTRY = Registry(entry_points=False)
TINY = sorted(name for name, e in REGISTRY.workloads.items() if "tiny" in e.info.sizes)


@pytest.mark.slow
@pytest.mark.parametrize("workload", TINY)
def test_tuned_baseline_reaches_the_tiny_target(tmp_path, workload):
    size = REGISTRY.workloads[workload].info.sizes["tiny"]
    assert size.target_setting, f"{workload} tiny has no recorded target-setting run: run bench calibrate"
    optimizer, overrides = tuned_baseline(size)
    seeds = {int(k): v for k, v in size.target_setting["steps_to_target"].items() if v is not None}
    seed = min(seeds, key=seeds.get)
    steps = size.target_setting["steps"]
    plan = plan_run(workload, optimizer, size="tiny", seed=seed, output=tmp_path, registry=REGISTRY,
                    overrides=[*overrides, "budget.max_runtime_s=3600", f"budget.max_steps={steps}"])
    result = execute(plan)
    rec = result.record
    assert rec["status"] == "reached", f"{rec['status']}: {rec['reason']}"
    assert rec["steps_to_target"] <= steps
    # The calibration ran this seed: the same eval step here, up to float
    # differences between CPUs (one eval either way).
    assert abs(rec["steps_to_target"] - seeds[seed]) <= (size.eval_every_steps or 0), (rec["steps_to_target"], seeds[seed])
    target = size.target
    rows = read_metrics(result.run_dir)
    assert target.met(rows[-1]) and not any(target.met(r) for r in rows[:-1])
