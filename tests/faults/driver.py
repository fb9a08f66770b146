"""A real `bench tune`-style sweep on a fast fake workload, for fault tests.

Run as ``python -m tests.faults.driver OUTPUT --trials N [--executor E]``.
The fake workload is registered in-process (it is not a built-in), so this is
the sweep code path of ``bench tune`` minus argument parsing. Each trial
trains ~30 steps of ~10 ms and prints nothing but its own line at the end.
"""

from __future__ import annotations

import argparse
import sys

from harness import api
from harness.plugins.registry import Registry
from harness.sweeps.tuning import plan_sweep, run_sweep
from tests import fakes


class QuickTask(fakes.SleepTask):
    step_s = 0.01
    eval_s = 0.0


def registry() -> Registry:
    reg = Registry(entry_points=False)
    reg.add_workload(fakes.fake_info(task="tests.faults.driver:QuickTask", target=25.0, every_steps=10))
    return reg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("output")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--studies", type=int, default=1)
    parser.add_argument("--executor", default="local")
    parser.add_argument("--submission", default="tests.fakes:PLAIN_SGD")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--experiment", default=None)
    args = parser.parse_args(argv)
    sweep = plan_sweep(
        "fake", args.submission, size="tiny", ruleset="external", studies=args.studies, trials=args.trials,
        seed=args.seed, output=args.output, experiment=args.experiment, registry=registry(),
    )
    result = run_sweep(sweep, executor=args.executor)
    for trial in sweep.trials:
        status = (trial.record or {}).get("status")
        print(f"trial {trial.study}/{trial.index} {trial.action} {status}", flush=True)
    return 130 if result.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
