"""``bench calibrate``: a thin layer over harness.sweeps.calibrate.

Imported by harness/cli/__init__.py to register the command; module level imports only
typer, rich and the standard library (``bench --help`` must stay torch-free).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from harness.cli.app import user_errors, app, console


@app.command()
def calibrate(
    workload: str = typer.Option(..., "--workload", "-w", help="Workload family, e.g. gpt."),
    size: str = typer.Option("tiny", "--size", help="The size to calibrate."),
    submission: Optional[str] = typer.Option(None, "--submission", "-s", help="Target-setting optimizer. Default: the workload's baseline."),
    search: int = typer.Option(4, "--search", help="Search points: the defaults plus search-1 Halton points of the search space; 0 reruns the size's recorded tuned point."),
    seeds: int = typer.Option(5, "--seeds", help="Seeds the best point reruns on."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Steps per run, and the step_hint its schedule is laid over. Default: the size's step_hint."),
    quantile: float = typer.Option(0.5, "--quantile", help="Share of the seeds meant to reach the target (0.5 = the median best)."),
    budget_fraction: float = typer.Option(0.67, "--budget-fraction", help="Where in the budget the median seed should reach the target."),
    output: Path = typer.Option(Path("results"), "--output", "-o", help="Results root; runs go to <output>/calibration/..."),
    variant: Optional[str] = typer.Option(None, "--variant", help="Calibrate a workload variant (bench list), in a directory of its own; a variant keeps its base's target unless you change it."),
    overrides: Optional[List[str]] = typer.Argument(None, help="Config overrides for every run, e.g. eval.every_steps=50."),
) -> None:
    """Measure a size's target and budget (search, seeds, median best metric, reference steps); resumable.

    Prints the proposed target, budget and calibration text; it does not edit
    the workload: copy them into its Size when you accept them.
    """
    with user_errors():
        from rich.table import Table

        from harness.sweeps.calibrate import calibrate as run_calibration

        def progress(message: str) -> None:
            console.print(f"[dim]{escape(message)}[/]", highlight=False)

        s = run_calibration(
            workload, size, submission, search=search, seeds=seeds, steps=steps, quantile_q=quantile,
            budget_fraction=budget_fraction, output=output, overrides=tuple(overrides or ()), progress=progress,
            variant=variant,
        )
    table = Table(title=f"calibration · {workload} {size} · {s['optimizer']} · {s['metric']} ({s['direction']})")
    early = f"best by {s['protocol']['budget_fraction']:g} of the run"
    for col in ("seed", early, "best of the run", "steps to target", "time to target", "s/step"):
        table.add_column(col, justify="right")
    for d in s["seeds_detail"]:
        table.add_row(
            str(d["seed"]), f"{d['best']:.4g}", f"{d['best_whole_run']:.4g}",
            "miss" if d["steps_to_target"] is None else str(d["steps_to_target"]),
            "miss" if d["time_to_target_s"] is None else f"{d['time_to_target_s']:.1f} s",
            f"{d['s_per_step']:.4f}",
        )
    console.print(table)
    console.print(f"target {s['target']:g} (was {s['previous_target']:g}) · reference_steps {s['reference_steps']} · "
                  f"budget {s['budget_steps']} steps = {s['max_runtime_s']} s here · "
                  f"{s['seeds_within_budget']}/{len(s['seeds_detail'])} seeds reach it within the budget")
    console.print(escape(s["text"]), highlight=False, soft_wrap=True)
    console.print(f"[dim]written: {escape(s['path'])}[/]")
