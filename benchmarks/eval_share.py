"""How much of a run's wall-clock is untimed evaluation?

For each tiny workload, runs its baseline to the target (or the budget) at
the size's default eval cadence and prints eval seconds / wall seconds (and
the same against timed seconds). Evaluation is untimed, so it does not bias
the score, but it is time a user waits: optbench aims at <= 15%.

    python benchmarks/eval_share.py [--workloads cifar gpt ...] [--seed 0]

Ends with ``name=value`` lines.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

AIM = 0.15


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="*", default=None, help="default: every workload with a tiny size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from harness.run.fingerprint import collect
    from harness.plugins.registry import Registry
    from harness.run import execute, plan_run

    registry = Registry()
    names = args.workloads or sorted(n for n, e in registry.workloads.items() if "tiny" in e.info.sizes)
    print(f"hardware {collect()['hardware_id']} · seed {args.seed}")
    print(f"{'workload':<10} {'status':<17} {'evals':>5} {'eval s':>7} {'timed s':>8} {'wall s':>7} {'eval/wall':>9}")
    worst = 0.0
    shares = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            r = execute(plan_run(name, size="tiny", seed=args.seed, output=tmp, registry=registry)).record
            share = r["eval_s"] / r["wall_s"]
            worst = max(worst, share)
            shares[name] = share
            print(f"{name:<10} {r['status']:<17} {r['evals']:>5} {r['eval_s']:>7.2f} {r['timed_s']:>8.2f} "
                  f"{r['wall_s']:>7.2f} {share:>9.1%}")
    for name, share in shares.items():
        print(f"eval_share_{name}={share:.4f}")
    print(f"eval_share_max={worst:.4f}")
    print(f"within_aim={int(worst <= AIM)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
