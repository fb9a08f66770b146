"""The defaults leaderboard: every submission of one kind, at its DEFAULTS, on one workload.

One run per submission (seed 0, official target and budget, the size's eval
cadence, default threads), one after the other, and a markdown table of what
happened: status, time and steps to the target, seconds per step, the last
validation metric and the curve at each evaluation. This is how the tables in
docs/first_leaderboards.md are made; it is a first look at which methods run
sanely at their papers' settings, not a comparison (that is `bench tune` then
`bench score`). Run it on a quiet machine: seconds are only worth what the
machine was doing.

    python benchmarks/defaults_board.py --kind norm --workload cifar
    python benchmarks/defaults_board.py --kind norm --workload gpt --only layernorm rmsnorm peri_ln
    python benchmarks/defaults_board.py --kind optimizer --workload cifar --output results/boards

Records stay under ``--output`` (default: a temporary directory), so
`bench score` or pandas can read them afterwards.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int | str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("optimizer", "norm"), required=True)
    parser.add_argument("--workload", required=True)
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--only", nargs="*", default=None, help="these submissions (default: every one that fits)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="where the records go (default: a temporary directory)")
    parser.add_argument("overrides", nargs="*", help="config overrides for every run, e.g. threads=1")
    args = parser.parse_args()

    from harness.run.fingerprint import collect
    from harness.run.records import read_metrics
    from harness.plugins.registry import Registry
    from harness.run import execute, plan_run

    registry = Registry()
    info = registry.workloads[args.workload].info
    size = info.sizes[args.size]
    sites = set(info.norm_sites)
    names = sorted(
        name for name, sub in registry.submissions.items()
        if sub.kind == args.kind and (args.kind == "optimizer" or sites <= set(sub.meta.get("SITES", ())))
    )
    if args.only:
        names = [n for n in args.only if n in names]
        if not names:
            return f"none of {args.only} is a {args.kind} fitting {args.workload}"
    metric = f"validation/{size.target.metric}"
    print(f"{args.kind}s on {args.workload} {args.size}: target {size.target.metric} "
          f"{'>' if size.target.direction == 'max' else '<'} {size.target.validation}, budget {size.max_runtime_s:g} s, "
          f"seed {args.seed}, hardware {collect()['hardware_id']}", flush=True)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        output = args.output or tmp
        for name in names:
            optimizer, norm = (name, None) if args.kind == "optimizer" else (None, name)
            plan = plan_run(args.workload, optimizer, size=args.size, norm=norm, seed=args.seed,
                            output=output, overrides=args.overrides, registry=registry)
            result = execute(plan)
            r = result.record
            curve = [row.get(metric) for row in read_metrics(result.run_dir)]
            s_per_step = r["timed_s"] / r["steps"] if r["steps"] else float("nan")
            rows.append((name, r, curve, s_per_step))
            print(f"  {name:<20} {r['status']:<17} steps {r['steps']:>5}  timed {r['timed_s']:6.1f} s  "
                  f"last {curve[-1] if curve else None}  ({r['reason']})", flush=True)

    order = sorted(rows, key=lambda x: (x[1]["time_to_target_s"] is None, x[1]["time_to_target_s"] or 0.0))
    print()
    print(f"| {args.kind} | status | time to target (s) | steps to target | steps run | s/step | last {metric} | "
          f"{metric} at each eval |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for name, r, curve, s_per_step in order:
        ttt = f"{r['time_to_target_s']:.1f}" if r["time_to_target_s"] is not None else "miss"
        stt = str(r["steps_to_target"]) if r["steps_to_target"] is not None else "—"
        last = f"{curve[-1]:.4f}" if curve and curve[-1] is not None else "—"
        shown = " / ".join(f"{v:.3f}" for v in curve if v is not None)
        print(f"| {name} | {r['status']} | {ttt} | {stt} | {r['steps']} | {s_per_step:.3f} | {last} | {shown} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
