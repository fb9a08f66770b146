"""Start-up latency: `bench --help`, `bench list`, and `bench run` to its first step.

Each command runs ``--repeats`` times as a fresh process; the median wall time
is printed. The first two must not import torch (checked, not assumed: the
CLI module is imported in a child process and ``sys.modules`` inspected).
For ``bench run`` the time to the first timed step is the process's time up
to the runner's start (process wall minus the runner's own ``wall_s``) plus
the runner's untimed set-up (``setup_s``); it includes interpreter exit, so
it is an upper bound.

Everything runs against a fresh temporary user cache (``OPTBENCH_CACHE_DIR``),
never the real one: ``bench list`` and ``bench run`` are timed warm (after one
untimed call fills the cache, the usual case) and with ``OPTBENCH_CACHE=0``
(what a first call on a machine costs: parse every plugin, generate the data).

    python benchmarks/startup.py [--repeats 5] [--workload cifar]

Ends with ``name=value`` lines. Aim: help and list <= 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
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


def timed(cmd: list[str], repeats: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_to_first_step(workload: str, repeats: int, env: dict[str, str]) -> float:
    first_step = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(bench_exe() + ["run", "--workload", workload, "--size", "tiny", "-o", tmp,
                                          "budget.max_steps=1"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=True)
            proc_s = time.perf_counter() - start
            newest = max(Path(tmp).rglob("run.json"), key=lambda p: p.stat().st_mtime)
            record = json.loads(newest.read_text())
            first_step.append(proc_s - record["wall_s"] + record["setup_s"])
    return statistics.median(first_step)


def heavy_modules_after(code: str, env: dict[str, str]) -> list[str]:
    probe = f"{code}\nimport sys, json; print(json.dumps(sorted(m for m in ('torch', 'numpy', 'pandas', 'wandb', 'submitit', 'scipy') if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workload", default="cifar")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as cache:
        warm = {**os.environ, "OPTBENCH_CACHE_DIR": cache}
        cold = {**warm, "OPTBENCH_CACHE": "0"}
        runs = max(1, args.repeats // 2)

        help_s = timed(bench_exe() + ["--help"], args.repeats, warm)
        timed(bench_exe() + ["list"], 1, warm)  # fills the plugin metadata cache
        list_s = timed(bench_exe() + ["list"], args.repeats, warm)
        list_cold_s = timed(bench_exe() + ["list"], args.repeats, cold)
        help_heavy = heavy_modules_after("import sys; sys.argv=['bench','--help']\nfrom harness import cli\ntry:\n    cli.main()\nexcept SystemExit:\n    pass", warm)
        list_heavy = heavy_modules_after("import sys; sys.argv=['bench','list']\nfrom harness import cli\ntry:\n    cli.main()\nexcept SystemExit:\n    pass", warm)

        run_to_first_step(args.workload, 1, warm)  # fills the data cache
        step_s = run_to_first_step(args.workload, runs, warm)
        step_cold_s = run_to_first_step(args.workload, runs, cold)

    print(f"bench --help      {help_s:6.3f} s   heavy imports: {', '.join(help_heavy) or 'none'}")
    print(f"bench list        {list_s:6.3f} s   heavy imports: {', '.join(list_heavy) or 'none'}")
    print(f"  without cache   {list_cold_s:6.3f} s   (OPTBENCH_CACHE=0: every plugin parsed)")
    print(f"bench run -> step {step_s:6.3f} s   ({args.workload} tiny, data from the cache)")
    print(f"  without cache   {step_cold_s:6.3f} s   (OPTBENCH_CACHE=0: data generated)")
    print(f"help_s={help_s:.3f}")
    print(f"list_s={list_s:.3f}")
    print(f"list_nocache_s={list_cold_s:.3f}")
    print(f"run_to_first_step_s={step_s:.3f}")
    print(f"run_to_first_step_nocache_s={step_cold_s:.3f}")
    print(f"help_imports_torch={int('torch' in help_heavy)}")
    print(f"list_imports_torch={int('torch' in list_heavy)}")
    ok = help_s <= AIM_S and list_s <= AIM_S and "torch" not in help_heavy + list_heavy
    print(f"within_aim={int(ok)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
