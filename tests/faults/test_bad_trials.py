"""A sweep survives trials that diverge, raise, run out of memory or hang:
each gets an honest status and reason, counts as a miss, and the sweep goes on."""

from __future__ import annotations

import math

from harness.sweeps.tuning import plan_sweep, run_sweep, summarize
from tests.faults.driver import registry

SUBMISSION = "tests.faults.bad_submissions"


def test_failing_trials_are_recorded_and_the_sweep_goes_on(tmp_path):
    sweep = plan_sweep(
        "fake", SUBMISSION, size="tiny", ruleset="external", studies=1, trials=5, output=tmp_path,
        overrides=["budget.max_runtime_s=1.0"], registry=registry(),
    )
    result = run_sweep(sweep)
    by_mode = {t.record["hyperparameters"]["optimizer"]["mode"]: t.record for t in sweep.trials}
    assert set(by_mode) == {"ok", "nan", "raise", "oom", "hang"}  # every trial ran

    assert by_mode["ok"]["status"] == "reached"
    assert by_mode["nan"]["status"] == "diverged" and "nan" in by_mode["nan"]["reason"]
    assert by_mode["raise"]["status"] == "error"
    # The reason names the plugin, the step, the exception and where it was raised.
    reason = by_mode["raise"]["reason"]
    assert "update raised at step 8 (ctx.step 7): RuntimeError: submission bug at step 7" in reason
    assert "bad_submissions.py:" in reason
    assert by_mode["raise"]["error"]["traceback"]  # the full story stays in the record
    assert by_mode["oom"]["status"] == "error" and "OutOfMemoryError: CUDA out of memory" in by_mode["oom"]["reason"]
    assert by_mode["hang"]["status"] == "budget_exhausted"
    assert "timed budget of 1 s spent at step 4" in by_mode["hang"]["reason"]
    for mode in ("nan", "raise", "oom", "hang"):
        assert by_mode[mode]["time_to_target_s"] is None

    # The sweep's time is the healthy trial's; the failures are misses, not zeros.
    summary = summarize(result.records)
    assert math.isclose(summary["time_s"], by_mode["ok"]["time_to_target_s"])
    assert not result.interrupted
