"""The first thing to run on a GPU: every full size on synthetic data, in one command.

    python benchmarks/gpu_check.py [--steps 200] [--sizes cifar,gnn,gpt,diffusion,grokking]
                                   [--submissions baseline,muon,shampoo] [--no-compile] [--budget-s 480]

For each workload's full size, ``--steps`` training steps on synthetic data
(``data.synthetic=true``: no dataset needed, docs/gpu.md) of the workload's
baseline optimizer, then of muon and shampoo, each through the harness's own
Python API (``plan_run`` / ``execute``), so what is timed is what a run times.
Then the baseline again with ``compile=true`` (torch.compile) where the size
supports it (not gnn: its batches change shape every step, and AlgoPerf does
not compile ogbg either). Every run evaluates twice, at half way and at the
end, so the table shows:

* ``s/step``: the second half's seconds per step (warm-up and compilation are
  in the first half, which ``first s/step`` shows);
* ``MFU`` and achieved TFLOP/s of the whole run (the record's compute block:
  model FLOPs, harness/run/flops.py);
* peak device memory (``torch.cuda.max_memory_allocated``), the seconds of one
  evaluation (the mean of the two) and of set-up.

It is sized for one H100 in under 8 minutes: every size's baseline runs first,
then muon's and shampoo's rows, the compiled ones last, and a row that would end
after ``--budget-s`` seconds (judged by the size's previous row, else the mean
row) is skipped and says so. The output ends with ``name=value`` lines, one per
figure (``gpu_check.<workload>.<submission>[.compile].<figure>=<value>``).

Without a CUDA device it prints one line and exits with status 2: it measured
nothing, and a script waiting for the table must not take silence for one.
``--device cpu`` runs the same rows on the CPU anyway (a dry run of the script
itself, for its tests: use ``--steps 2 --batch-size 2``).
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORKLOADS = ("cifar", "gnn", "gpt", "diffusion", "grokking")
SUBMISSIONS = ("baseline", "muon", "shampoo")
NOT_COMPILED = {"gnn": "batches change shape every step (AlgoPerf does not compile ogbg either)"}
NO_CUDA_EXIT = 2


@dataclass
class Row:
    workload: str
    submission: str  # as asked: "baseline" or a name
    optimizer: str = ""  # the optimizer that ran
    compiled: bool = False
    status: str = ""
    reason: str = ""
    steps: int = 0
    s_per_step: float | None = None  # second half (steady state)
    first_s_per_step: float | None = None  # first half (warm-up, compilation)
    mfu: float | None = None
    achieved_tflops: float | None = None
    peak_mem_gib: float | None = None
    eval_s: float | None = None
    setup_s: float | None = None
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"gpu_check.{self.workload}.{self.submission}" + (".compile" if self.compiled else "")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps per row (even: two halves)")
    parser.add_argument("--sizes", default=",".join(WORKLOADS), help="workloads whose full size to run, comma-separated")
    parser.add_argument("--submissions", default=",".join(SUBMISSIONS),
                        help="optimizers, comma-separated; 'baseline' is each workload's default optimizer")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile rows")
    parser.add_argument("--budget-s", type=float, default=480.0, help="skip a row that would end after this many seconds")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (a dry run of the script)")
    parser.add_argument("--batch-size", type=int, default=None, help="override every size's batch (dry runs)")
    parser.add_argument("--output", default=None, help="results root for the records (default: a temporary directory)")
    args = parser.parse_args(argv)
    args.sizes = [s for s in args.sizes.split(",") if s]
    args.submissions = [s for s in args.submissions.split(",") if s]
    unknown = [s for s in args.sizes if s not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload {unknown[0]!r} (have: {', '.join(WORKLOADS)})")
    if args.steps < 2:
        parser.error("--steps must be at least 2 (two halves)")
    return args


def planned_rows(args: argparse.Namespace) -> list[Row]:
    """Submission by submission, every size's eager row (each size's baseline comes
    first), then the compiled baselines: what time runs out on is the least needed."""
    rows = [Row(w, s) for s in args.submissions for w in args.sizes]
    if args.compile:
        rows += [Row(w, "baseline", compiled=True) for w in args.sizes if w not in NOT_COMPILED]
    return rows


def overrides(args: argparse.Namespace, row: Row) -> list[str]:
    half = max(1, args.steps // 2)
    found = ["data.synthetic=true", f"budget.max_steps={args.steps}", f"eval.every_steps={half}",
             f"device={args.device}"]
    found += [f"batch_size={args.batch_size}"] if args.batch_size and row.workload != "grokking" else []
    return found + (["compile=true"] if row.compiled else [])


def run_row(args: argparse.Namespace, row: Row, output: Path) -> Row:
    """One row: plan, execute, read the record (an error becomes the row's status)."""
    import torch

    from harness.run import execute, plan_run

    start = time.perf_counter()
    cuda = args.device.startswith("cuda")
    try:
        plan = plan_run(row.workload, None if row.submission == "baseline" else row.submission, size="full",
                        overrides=overrides(args, row), output=output, experiment="gpu_check")
        row.optimizer = plan.optimizer.name
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        record = execute(plan).record
        fill(row, record)
        if cuda:
            row.peak_mem_gib = torch.cuda.max_memory_allocated() / 2**30
    except Exception as exc:  # one row's failure (out of memory, a plugin) is that row's result
        row.status, row.reason = "error", f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    finally:
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    row.wall_s = time.perf_counter() - start
    return row


def fill(row: Row, record: dict[str, Any]) -> None:
    """The row's figures from a run record."""
    row.status, row.reason, row.steps = record["status"], record["reason"], record["steps"]
    segments = (record.get("timing") or {}).get("per_segment") or []
    rates = [s["seconds"] / s["steps"] for s in segments if s.get("steps")]
    if rates:
        row.first_s_per_step, row.s_per_step = rates[0], rates[-1]
    compute = record.get("compute") or {}
    row.mfu = compute.get("mfu")
    achieved = compute.get("achieved_flops_per_s")
    row.achieved_tflops = achieved / 1e12 if achieved else None
    row.eval_s = record["eval_s"] / record["evals"] if record.get("evals") else None
    row.setup_s = record.get("setup_s")
    row.extra = {"dtype": compute.get("dtype"), "run_dir": record.get("run_id")}


def _fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "—" if value is None else format(value * scale, spec)


COLUMNS = ("workload", "submission", "compile", "s/step", "first s/step", "MFU", "TFLOP/s", "peak GiB",
           "eval s", "setup s", "dtype", "status")


def table(rows: list[Row]) -> str:
    """The rows as a fixed-width text table."""
    cells = [COLUMNS] + [(
        r.workload, r.submission if r.submission != "baseline" else f"baseline ({r.optimizer or '?'})",
        "on" if r.compiled else "off", _fmt(r.s_per_step, ".4f"), _fmt(r.first_s_per_step, ".4f"),
        _fmt(r.mfu, ".1f", 100) + ("%" if r.mfu is not None else ""), _fmt(r.achieved_tflops, ".1f"),
        _fmt(r.peak_mem_gib, ".2f"), _fmt(r.eval_s, ".2f"), _fmt(r.setup_s, ".1f"), str(r.extra.get("dtype") or "—"),
        r.status if r.status in ("budget_exhausted", "") else f"{r.status}: {r.reason}",
    ) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS) - 1)]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(widths))) + "  " + c[-1] for c in cells)


def name_values(rows: list[Row]) -> list[str]:
    """``name=value`` lines: every figure of every row (``nan`` where there is none)."""
    lines = []
    for r in rows:
        for name, value in (("s_per_step", r.s_per_step), ("first_s_per_step", r.first_s_per_step), ("mfu", r.mfu),
                            ("achieved_tflops", r.achieved_tflops), ("peak_mem_gib", r.peak_mem_gib),
                            ("eval_s", r.eval_s), ("setup_s", r.setup_s)):
            lines.append(f"{r.key}.{name}={'nan' if value is None else f'{value:.6g}'}")
        lines.append(f"{r.key}.status={r.status or 'skipped'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here, nothing measured (run it on a GPU machine; --device cpu is a dry run)")
        return NO_CUDA_EXIT
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    output = Path(args.output) if args.output else Path(tempfile.mkdtemp(prefix="gpu_check-"))
    print(f"gpu_check on {device_name}: {args.steps} steps a row on synthetic data, records under {output}", flush=True)
    t0, rows = time.perf_counter(), planned_rows(args)
    last_wall: dict[str, float] = {}
    for row in rows:
        # This size's last row, else the mean row so far, says how long this one takes.
        guess = last_wall.get(row.workload, sum(last_wall.values()) / max(1, len(last_wall)))
        projected = time.perf_counter() - t0 + guess
        if projected > args.budget_s:
            row.status, row.reason = "skipped", f"would end past --budget-s {args.budget_s:g}"
            continue
        run_row(args, row, output)
        last_wall[row.workload] = row.wall_s
        print(f"  {row.key}: {row.status} in {row.wall_s:.1f} s", flush=True)
    print(table(rows))
    for line in [f"gpu_check.device={device_name}", f"gpu_check.steps={args.steps}",
                 f"gpu_check.wall_s={time.perf_counter() - t0:.1f}", *name_values(rows)]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
