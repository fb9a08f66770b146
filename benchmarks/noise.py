"""Run-to-run noise: how much does time-to-target move between repeats?

Runs one tiny workload with its baseline (or ``--submission``) ``--repeats``
times with the same seed, then once each on as many different seeds, through
the real runner, one after another in this process. Prints, for each group,
the coefficient of variation (CV = std / mean) of time-to-target and of
steps-to-target, and checks that the same seed gave the same steps (the CPU
is deterministic; the clock is not).

    python benchmarks/noise.py [--workload cifar] [--size tiny] [--submission nadamw] [--repeats 5]

Ends with ``name=value`` lines. Run it on a quiet machine: anything else
running shows up as time noise (that is the point of measuring it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.mean(values) if len(values) > 1 and statistics.mean(values) else float("nan")


def one_run(workload: str, size: str, submission: str | None, seed: int, out: Path) -> dict:
    from harness.run import execute, plan_run

    record = execute(plan_run(workload, submission, size=size, seed=seed, output=out)).record
    return {
        "seed": seed,
        "status": record["status"],
        "time": record["time_to_target_s"],
        "steps": record["steps_to_target"],
        "s_per_step": record["timed_s"] / max(record["steps"], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="cifar")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--submission", default=None, help="default: the workload's baseline optimizer")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from harness.run.fingerprint import collect

    groups: dict[str, list[dict]] = {"same seed": [], "different seeds": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            groups["same seed"].append(one_run(args.workload, args.size, args.submission, 0, Path(tmp)))
        for i in range(args.repeats):
            groups["different seeds"].append(one_run(args.workload, args.size, args.submission, 100 + i, Path(tmp)))

    print(f"{args.workload} {args.size} · {args.submission or 'baseline'} · hardware {collect()['hardware_id']}")
    print(f"{'group':<16} {'reached':>8} {'time CV':>8} {'steps CV':>9}  times (s) / steps")
    figures = {}
    for name, runs in groups.items():
        hit = [r for r in runs if r["status"] == "reached"]
        times, steps = [r["time"] for r in hit], [r["steps"] for r in hit]
        detail = ", ".join(f"{r['time']:.1f}/{r['steps']}" if r["status"] == "reached" else r["status"] for r in runs)
        print(f"{name:<16} {len(hit):>5}/{len(runs):<2} {cv(times):>8.1%} {cv(steps):>9.1%}  {detail}")
        key = name.replace(" ", "_")
        figures[f"{key}_time_cv"] = cv(times)
        figures[f"{key}_steps_cv"] = cv(steps)
    same_steps = {r["steps"] for r in groups["same seed"]}
    identical = len(same_steps) == 1
    print(f"same seed -> identical steps-to-target: {'yes' if identical else 'NO: ' + str(sorted(same_steps, key=str))}")
    for k, v in figures.items():
        print(f"{k}={v:.4f}")
    print(f"same_seed_identical_steps={int(identical)}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
