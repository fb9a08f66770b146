"""Running one benchmark run: plan (harness/run/plan.py), execute
(harness/run/execution.py), the timed loop (harness/run/loop.py), and what a
run needs around it: records, fingerprint, speed, watchdog, evaluation guard,
distributed set-up, tracking.

``from harness.run import plan_run, execute, run`` is the Python API; the
names are imported on first use, so ``import harness.run.records`` stays light.
"""

from __future__ import annotations

from typing import Any

_API = {
    "plan_run": "harness.run.plan", "RunPlan": "harness.run.plan",
    "execute": "harness.run.execution", "run": "harness.run.execution", "RunResult": "harness.run.execution",
}


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'harness.run' has no attribute {name!r}")


__all__ = list(_API)
