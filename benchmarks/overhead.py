"""Harness overhead: the runner's training throughput against a bare loop.

Runs the same workload size, model, data, optimizer and number of steps twice
per repeat — once through ``harness.run`` and once as a hand-written
PyTorch loop — alternating the order, and prints the throughput ratio
(runner / bare). Evaluation happens once, at the end, in both.

    python benchmarks/overhead.py [--workload cifar] [--size tiny] [--steps 150] [--repeats 5]

The ratio is computed two ways: from the runner's own ``timed_s`` (what a
user reads), and from an outside clock around the whole training phase
(``wall_s - setup_s - eval_s``), which also catches overhead the harness
might hide from its own clock. Ends with ``name=value`` lines.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def bare_loop(workload: str, size: str, submission: str, steps: int, seed: int) -> float:
    """Seconds for ``steps`` training steps written as plainly as possible."""
    import torch

    from harness import api
    from harness.params import typed_parameters
    from harness.plugins.registry import Registry, size_of
    from harness.run.build import import_task as _import_task, resolve_data_dir
    from harness.common.seeding import default_threads, derive_seed, set_determinism

    registry = Registry()
    entry = registry.workload(workload)
    size_spec = size_of(entry, size)
    set_determinism(derive_seed(seed, "model"), default_threads())
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    task = _import_task(entry.info.task)(size_spec, device, resolve_data_dir({}), derive_seed(seed, "data"))
    norm = registry.submission(entry.info.default_norm).load()
    hp_norm = api.Hyperparameters(norm.defaults)
    model = task.build_model(lambda site, n: norm.obj.make_norm(site, n, hp_norm)).to(device)
    opt_sub = registry.submission(submission).load()
    hp = api.Hyperparameters(opt_sub.defaults)
    optimizer = opt_sub.obj.make_optimizer(typed_parameters(model, task.param_types(model)), hp, size_spec.step_hint)
    schedule = opt_sub.obj.make_schedule(optimizer, hp, size_spec.step_hint)
    model.train()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    sync()
    start = time.perf_counter()
    for step in range(steps):
        batch = task.next_batch(step)
        optimizer.zero_grad(set_to_none=True)
        loss = task.loss(model, batch)
        loss.backward()
        optimizer.step()
        schedule.step()
    sync()
    return time.perf_counter() - start


def harness_run(workload: str, size: str, submission: str, steps: int, seed: int, out: Path) -> tuple[float, float]:
    from harness.plugins.registry import Registry
    from harness.run import execute, plan_run

    overrides = [f"budget.max_steps={steps}", f"eval.every_steps={steps}", "budget.max_runtime_s=1e9"]
    plan = plan_run(workload, submission, size=size, seed=seed, output=out, experiment="overhead",
                    overrides=overrides, registry=Registry())
    rec = execute(plan).record
    assert rec["steps"] == steps, rec["reason"]
    return rec["timed_s"], rec["wall_s"] - rec["setup_s"] - rec["eval_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="cifar")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--submission", default="adamw")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path("/tmp/optbench-overhead"))
    args = parser.parse_args()

    bare, timed, outside = [], [], []
    for r in range(args.repeats):
        order = ("bare", "harness") if r % 2 == 0 else ("harness", "bare")
        for which in order:
            if which == "bare":
                bare.append(bare_loop(args.workload, args.size, args.submission, args.steps, seed=r))
            else:
                t, o = harness_run(args.workload, args.size, args.submission, args.steps, r, args.output)
                timed.append(t)
                outside.append(o)
        print(f"repeat {r}: bare {bare[-1]:.3f} s  harness timed {timed[-1]:.3f} s  harness outside-clock {outside[-1]:.3f} s", flush=True)

    med = statistics.median
    ratio = med(bare) / med(timed)  # throughput ratio = inverse time ratio
    ratio_outside = med(bare) / med(outside)
    print(f"bare_s_median={med(bare):.4f}")
    print(f"harness_timed_s_median={med(timed):.4f}")
    print(f"harness_outside_s_median={med(outside):.4f}")
    print(f"overhead_ratio={ratio:.3f}")
    print(f"overhead_ratio_outside_clock={ratio_outside:.3f}")


if __name__ == "__main__":
    main()
