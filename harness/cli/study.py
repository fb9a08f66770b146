"""``bench study``: studies beyond time to target, thin over harness.sweeps.studies.

Imported by harness/cli/__init__.py to register the sub-app on ``app``. Module
level imports only typer, rich and the standard library: ``bench study --help``
must not pay for torch or matplotlib.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.markup import escape

from harness.api import Status, comparison_sign
from harness.cli.app import app, console, err_console, executor_and_run_overrides, user_errors
from harness.cli.sweeps import _fmt_s, _status_colour

study_app = typer.Typer(no_args_is_help=True, help="Studies the source papers run: learning-rate sensitivity, batch-size scaling.")
app.add_typer(study_app, name="study")

EXECUTOR_HELP = ("How the runs go: local (one after another, in this process), submitit-local (parallel local "
                 "processes), slurm (one SLURM job per run), or an executor YAML file (configs/executor/).")


class _RichStudyObserver:
    """One bar over the grid's runs, with the time left estimated from the
    runs so far, and a line per finished or skipped run; redrawn only at evals
    and run ends, so no thread competes with the timed loop."""

    def __init__(self, study) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.study = study
        self.progress = Progress(
            TextColumn("[bold]runs[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("left"), TimeRemainingColumn(), TextColumn("{task.fields[now]}"),
            console=console, auto_refresh=False,
        )
        self.task_id = self.progress.add_task("study", total=len(study.points), now="")
        self.progress.start()
        self.progress.refresh()

    def on_point_start(self, point) -> None:
        self.progress.update(self.task_id, now=f"{point.name}: starting")
        self.progress.refresh()

    def on_eval(self, point, row: dict[str, Any]) -> None:
        value = row.get(f"validation/{self.study.target.metric}")
        shown = f" · validation/{self.study.target.metric} {value:.4f}" if isinstance(value, (int, float)) else ""
        self.progress.update(self.task_id, now=f"{point.name}: step {row['step']}{shown}")
        self.progress.refresh()

    def on_point_end(self, point, record: dict[str, Any], ran: bool) -> None:
        status = (record or {}).get("status", "?")
        final = ((record or {}).get("final_metrics") or {}).get(f"validation/{self.study.target.metric}")
        shown = f" · final {final:.4g}" if isinstance(final, (int, float)) else ""
        if status == Status.ERROR:
            shown += f" — {escape(str(record.get('reason', '')))}"
        note = "" if ran else " [dim](finished earlier: skipped)[/]"
        self.progress.console.print(f"  {escape(point.name):<40} [{_status_colour(status)}]{status}[/]{shown}{note}",
                                    highlight=False)
        # Skipped runs take no time: leaving them out keeps the estimate honest.
        self.progress.update(self.task_id, advance=1, now="")
        if not ran:
            task = self.progress.tasks[0]
            task.total -= 1
            task.completed -= 1
        self.progress.refresh()

    def stop(self) -> None:
        self.progress.stop()


def _header(study) -> None:
    t = study.target
    console.print(
        f"[bold]bench study lr[/] · [cyan]{study.root.name}[/] · {study.steps} steps per run, no stop at "
        f"the target (validation/{t.metric} {comparison_sign(t.direction)} {t.validation:g}) · {study.seeds} seed(s)",
        highlight=False)
    for label, grid in study.grids.items():
        console.print(f"  [cyan]{escape(label)}[/] {study.lr_names[label]}: {len(grid)} points "
                      f"{grid[0]:g} .. {grid[-1]:g}", highlight=False)
    _footer(study)


def _footer(study) -> None:
    """Where the records go, what is left to run and how long it should take."""
    from harness.sweeps.studies import estimate_s

    console.print(f"  records {study.root}\n  {len(study.to_run)} to run, {len(study.points) - len(study.to_run)} "
                  "finished earlier", highlight=False)
    if study.to_run:
        seconds, basis = estimate_s(study)
        shown = f"~{_fmt_s(seconds)}" if seconds is not None else "unknown"
        bound = "at most " if hasattr(study, "batch_sizes") else ""  # a batch study stops at the target
        console.print(f"  estimate: {bound}{shown} (from {escape(basis)})", highlight=False)


def _fmt(value: Any, spec: str = ".4g") -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(v) else format(v, spec)


def _summary_table(result) -> None:
    from rich.table import Table

    metric = result.study.target.metric
    table = Table(title=f"LR sensitivity (Wortsman et al. 2023; loss = {escape(result.summary[0]['loss']) if result.summary else metric})",
                  title_justify="left")
    for col in ("submission", "sensitivity", "L_init", "L*", "best lr", f"final {metric} at best lr [min–max]",
                "diverged", "reached"):
        table.add_column(escape(col), overflow="fold")
    for s in result.summary:
        spread = f"{_fmt(s['best_lr_final_mean'])} [{_fmt(s['best_lr_final_min'])}–{_fmt(s['best_lr_final_max'])}]"
        table.add_row(escape(s["submission"]), _fmt(s["lr_sensitivity"]), _fmt(s["init_loss"]), _fmt(s["best_loss"]),
                      _fmt(s["best_lr"], "g"), spread, f"{s['diverged_runs']}/{s['runs']}", f"{s['reached_runs']}/{s['runs']}")
    console.print(table)
    partial = [s["submission"] for s in result.summary if s["runs"] < s["points"] * s["seeds"]]
    if partial:
        err_console.print(f"[yellow]warning:[/] the grid of {escape(', '.join(partial))} is not complete (runs not "
                          "finished): its figures cover the finished runs only", highlight=False)
    reached = [r for r in result.rows if r["reached_target"]]
    if reached:
        fastest = min(reached, key=lambda r: r["time_to_target_s"])
        console.print(f"fastest to target: {escape(fastest['submission'])} at lr {fastest['lr']:g} (seed {fastest['seed']}): "
                      f"{_fmt_s(fastest['time_to_target_s'])}, {fastest['steps_to_target']} steps", highlight=False)
    for key in ("csv", "summary", "plot"):
        console.print(f"wrote {result.paths[key]}", highlight=False)


@study_app.command("lr")
def lr(
    submission: List[str] = typer.Option(..., "--submission", "-s", help="Optimizer (or norm: then its optimizer's lr) to study; repeat for several."),
    workload: str = typer.Option(..., "--workload", "-w", help="Workload family, e.g. cifar."),
    size: str = typer.Option("tiny", "--size", help="Workload size."),
    points: int = typer.Option(9, "--points", help="Learning rates on the grid (log-spaced, ends included)."),
    lr_range: Optional[str] = typer.Option(None, "--range", help="LOW:HIGH, e.g. 1e-4:1e-1. Default: the submission's SEARCH_SPACE range for its lr, else 1e-4:1e-1."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Steps per run (all of them: no stop at the target). Default: the size's step_hint."),
    seeds: int = typer.Option(1, "--seeds", help="Seeds per learning rate (0, 1, ...)."),
    variant: Optional[str] = typer.Option(None, "--variant", help="Study a workload variant (bench list), e.g. qk_norm: records go to OUTPUT/study_lr/WORKLOAD-SIZE+VARIANT/."),
    output: Path = typer.Option(Path("results"), "--output", "-o", help="Results root: records go to OUTPUT/study_lr/WORKLOAD-SIZE/."),
    executor: str = typer.Option("local", "--executor", help=EXECUTOR_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the grid and what would run; run nothing."),
    overrides: Optional[List[str]] = typer.Argument(None, help="Config overrides for every run, e.g. target.validation=0.9 (records unofficial anyway); executor.KEY=VALUE set the executor."),
) -> None:
    """Learning-rate sensitivity: final validation metric over a log-spaced lr grid; resumable."""
    with user_errors():
        from harness.sweeps.studies import parse_range, plan_lr_study, run_lr_study

        spec, run_overrides = executor_and_run_overrides(executor, overrides)
        study = plan_lr_study(workload, submission, size=size, points=points,
                              lr_range=parse_range(lr_range) if lr_range else None, steps=steps, seeds=seeds,
                              output=output, executor=spec, overrides=run_overrides, variant=variant)
        _header(study)
        if dry_run:
            _dry_run(study)
            return
        result = _run_with_bar(study, lambda observer: run_lr_study(study, observer, spec))
    _summary_table(result)
    _exit_status(result)


def _dry_run(study) -> None:
    for p in study.points:
        console.print(f"  {escape(p.name):<40} {p.action}: {escape(p.why)}", highlight=False)


def _run_with_bar(study, run):
    observer = _RichStudyObserver(study)
    try:
        return run(observer)
    finally:
        observer.stop()


def _exit_status(result) -> None:
    if result.interrupted:
        err_console.print("[yellow]interrupted:[/] rerun the same command to resume (finished runs are skipped)")
        raise typer.Exit(130)
    if result.errors:
        err_console.print(f"[bold red]error:[/] {len(result.errors)} run(s) failed; see the lines above (rerun to retry them)")
        raise typer.Exit(1)


# --------------------------------------------------------------------------- #
# bench study batch                                                            #
# --------------------------------------------------------------------------- #


def _batch_header(study) -> None:
    t = study.target
    console.print(
        f"[bold]bench study batch[/] · [cyan]{study.workload}-{study.size}[/] · batch sizes "
        f"{', '.join(map(str, study.batch_sizes))} (the size's own: {study.base_batch}) · {escape(study.method)} · to "
        f"validation/{t.metric} {comparison_sign(t.direction)} {t.validation:g}", highlight=False)
    console.print(f"  step budget {study.base_steps} at batch {study.base_batch}, x {study.base_batch}/B below it; "
                  "seconds unlimited", highlight=False)
    for label, lr_name in study.lr_names.items():
        lrs = sorted({p.lr for p in study.points if p.label == label})
        console.print(f"  [cyan]{escape(label)}[/] {lr_name}: {', '.join(f'{x:g}' for x in lrs)}", highlight=False)
    _footer(study)


def _batch_table(result) -> None:
    from rich.table import Table

    rows = result.rows
    cpu = any(str(r["device"]).startswith("cpu") for r in rows) or not any(r["device"] for r in rows)
    table = Table(title="steps to target per batch size (perfect: steps perfect scaling from the smallest batch "
                  "predicts; efficiency = perfect / steps)", title_justify="left")
    for col in ("submission", "batch", "lr", "steps", "perfect", "efficiency", "region", "reached"):
        table.add_column(col)
    for r in rows:
        table.add_row(escape(r["submission"]), str(r["batch_size"]), _fmt(r["lr"], "g"), _fmt(r["steps_to_target"], ".0f"),
                      _fmt(r["perfect_steps"], ".0f"), _fmt(r["efficiency"], ".2f"),
                      "perfect" if r["perfect_region"] else "", f"{r['reached_runs']}/{r['trials']}")
    console.print(table)
    for label in dict.fromkeys(r["submission"] for r in rows):
        r = next(x for x in rows if x["submission"] == label)
        largest = max((x["batch_size"] for x in rows if x["submission"] == label and x["steps_to_target"]), default=None)
        at_end = ">= " if r["critical_batch_size"] and r["critical_batch_size"] == largest else ""  # a lower bound
        console.print(f"{escape(label)}: critical batch size {at_end}{r['critical_batch_size'] or '—'} (largest batch within 2x "
                      f"the steps of perfect scaling); fitted B_noise {_fmt(r['b_noise'], '.0f')}", highlight=False)
    if cpu:
        console.print("[dim]on CPU the study reports steps to target, not seconds: seconds per step grow with the "
                      "batch and say nothing of a parallel device[/]", highlight=False)
    for key in ("csv", "plot"):
        console.print(f"wrote {result.paths[key]}", highlight=False)


@study_app.command("batch")
def batch(
    submission: List[str] = typer.Option(..., "--submission", "-s", help="Optimizer (or norm) to study; repeat for several."),
    workload: str = typer.Option(..., "--workload", "-w", help="Workload family, e.g. cifar."),
    batch_sizes: str = typer.Option(..., "--batch-sizes", help="Comma-separated batch sizes, e.g. 16,32,64,128,256."),
    size: str = typer.Option("tiny", "--size", help="Workload size."),
    trials: Optional[int] = typer.Option(None, "--trials", help="Retune the lr per batch size with T Halton trials (over its SEARCH_SPACE range)."),
    lr_rule: Optional[str] = typer.Option(None, "--lr-rule", help="Scale the default lr from the size's batch: linear, sqrt or none (default linear, unless --trials)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Step budget at the size's own batch (x B0/B below it). Default: the size's budget in steps."),
    seed: int = typer.Option(0, "--seed", help="Seed of every run."),
    output: Path = typer.Option(Path("results"), "--output", "-o", help="Results root: records go to OUTPUT/study_batch/WORKLOAD-SIZE/."),
    executor: str = typer.Option("local", "--executor", help=EXECUTOR_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the grid and what would run; run nothing."),
    overrides: Optional[List[str]] = typer.Argument(None, help="Config overrides for every run, e.g. target.validation=0.9 (records unofficial anyway); executor.KEY=VALUE set the executor."),
) -> None:
    """Batch-size scaling: steps to target per batch size, perfect-scaling region, critical batch; resumable."""
    with user_errors():
        from harness.sweeps.batch_scaling import plan_batch_study, run_batch_study

        spec, run_overrides = executor_and_run_overrides(executor, overrides)
        study = plan_batch_study(workload, submission, batch_sizes, size=size, trials=trials, lr_rule=lr_rule,
                                 steps=steps, seed=seed, output=output, executor=spec, overrides=run_overrides)
        _batch_header(study)
        if dry_run:
            _dry_run(study)
            return
        result = _run_with_bar(study, lambda observer: run_batch_study(study, observer, spec))
    _batch_table(result)
    _exit_status(result)
