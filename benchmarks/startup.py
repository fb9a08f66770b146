"""Start-up latency: `bench --help`, `bench list`, and `bench run` to its first step.

Each command runs ``--repeats`` times as a fresh process; the median wall time
is printed. The first two must not import torch (checked, not assumed: the
CLI module is imported in a child process and ``sys.modules`` inspected).
For ``bench run`` the time to the first timed step is the process's time up
to the runner's start (process wall minus the runner's own ``wall_s``) plus
the runner's untimed set-up (``setup_s``); it includes interpreter exit, so
it is an upper bound.

    python benchmarks/startup.py [--repeats 5] [--workload cifar]

Ends with ``name=value`` lines. Aim: help and list <= 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AIM_S = 0.5


def bench_exe() -> list[str]:
    exe = shutil.which("bench") or str(Path(sys.executable).parent / "bench")
    return [exe]


def timed(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def heavy_modules_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys, json; print(json.dumps(sorted(m for m in ('torch', 'numpy', 'pandas', 'wandb', 'submitit', 'scipy') if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workload", default="cifar")
    args = parser.parse_args()

    help_s = timed(bench_exe() + ["--help"], args.repeats)
    list_s = timed(bench_exe() + ["list"], args.repeats)
    help_heavy = heavy_modules_after("import sys; sys.argv=['bench','--help']\nfrom harness import cli\ntry:\n    cli.main()\nexcept SystemExit:\n    pass")
    list_heavy = heavy_modules_after("import sys; sys.argv=['bench','list']\nfrom harness import cli\ntry:\n    cli.main()\nexcept SystemExit:\n    pass")

    first_step = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(max(1, args.repeats // 2)):
            start = time.perf_counter()
            subprocess.run(bench_exe() + ["run", "--workload", args.workload, "--size", "tiny", "-o", tmp,
                                          "budget.max_steps=1"], cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=True)
            proc_s = time.perf_counter() - start
            newest = max(Path(tmp).rglob("run.json"), key=lambda p: p.stat().st_mtime)
            record = json.loads(newest.read_text())
            first_step.append(proc_s - record["wall_s"] + record["setup_s"])

    print(f"bench --help      {help_s:6.3f} s   heavy imports: {', '.join(help_heavy) or 'none'}")
    print(f"bench list        {list_s:6.3f} s   heavy imports: {', '.join(list_heavy) or 'none'}")
    print(f"bench run -> step {statistics.median(first_step):6.3f} s   ({args.workload} tiny, includes data set-up)")
    print(f"help_s={help_s:.3f}")
    print(f"list_s={list_s:.3f}")
    print(f"run_to_first_step_s={statistics.median(first_step):.3f}")
    print(f"help_imports_torch={int('torch' in help_heavy)}")
    print(f"list_imports_torch={int('torch' in list_heavy)}")
    ok = help_s <= AIM_S and list_s <= AIM_S and "torch" not in help_heavy + list_heavy
    print(f"within_aim={int(ok)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
