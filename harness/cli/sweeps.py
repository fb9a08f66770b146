"""``bench tune``, ``bench score``, ``bench compare``: thin layers over
harness.sweeps.tuning and harness.score.scoring.

Imported by harness/cli/__init__.py to register the commands on its app. Module level
imports only typer, rich and the standard library: ``bench --help`` must not pay
for torch, pandas, scipy or matplotlib; each command imports what it needs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.markup import escape

from harness.api import Status, comparison_sign
from harness.cli.app import user_errors, app, console, err_console, executor_and_run_overrides
from harness.cli.run import _planned_budget


def _fmt_s(seconds: Any) -> str:
    """Seconds for people: a miss is "miss", long times in minutes or hours."""
    try:
        t = float(seconds)
    except (TypeError, ValueError):
        return "—"
    if math.isnan(t):
        return "—"
    if math.isinf(t):
        return "miss"
    if t < 120:
        return f"{t:.2f} s"
    if t < 7200:
        return f"{t / 60:.1f} min"
    return f"{t / 3600:.2f} h"


def _fmt_steps(steps: Any) -> str:
    try:
        s = float(steps)
    except (TypeError, ValueError):
        return "—"
    return "—" if not math.isfinite(s) else f"{s:.0f}"


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# --------------------------------------------------------------------------- #
# bench tune                                                                   #
# --------------------------------------------------------------------------- #


class _RichSweepObserver:
    """Sweep progress: one bar over trials (done / running / reached) and a line
    per finished or skipped trial. Redrawn only at evals and trial ends, so no
    thread competes with the timed loop."""

    def __init__(self, sweep) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.sweep = sweep
        self.reached = 0
        self.progress = Progress(
            TextColumn("[bold]trials[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("done · {task.fields[running]} running · [green]{task.fields[reached]} reached[/]"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[now]}"),
            console=console,
            auto_refresh=False,
        )
        self.task_id = self.progress.add_task("sweep", total=len(sweep.trials), running=0, reached=0, now="")
        self.progress.start()
        self.progress.refresh()

    def _point(self, trial) -> str:
        flat = {**trial.point.get("optimizer", {}), **{f"norm.{k}": v for k, v in trial.point.get("norm", {}).items()}}
        return " ".join(f"{k}={_fmt_value(v)}" for k, v in flat.items()) or "defaults"

    def on_trial_start(self, trial) -> None:
        self.progress.update(self.task_id, running=1, now=f"{trial.name}: starting")
        self.progress.refresh()

    def on_eval(self, trial, row: dict[str, Any]) -> None:
        metric = self.sweep.target["metric"]
        value = row.get(f"validation/{metric}")
        shown = f" · validation/{metric} {value:.4f}" if isinstance(value, (int, float)) else ""
        self.progress.update(self.task_id, now=f"{trial.name}: step {row['step']}{shown}")
        self.progress.refresh()

    def on_trial_end(self, trial, record: dict[str, Any], ran: bool) -> None:
        status = record.get("status", "?")
        if status == Status.REACHED:
            self.reached += 1
        result = f"[{_status_colour(status)}]{status}[/]"
        if status == Status.REACHED:
            result += f" {_fmt_s(record.get('time_to_target_s'))} ({_fmt_steps(record.get('steps_to_target'))} steps)"
        elif status == Status.ERROR:
            result += f" — {record.get('reason', '')}"
        elif status == Status.BUDGET_EXHAUSTED:  # how close it came: "best validation/x v, target > t"
            result += f" — {str(record.get('reason', '')).rpartition('; ')[2]}"
        note = "" if ran else " [dim](finished earlier: skipped)[/]"
        self.progress.console.print(f"  {trial.name:<17} {escape(self._point(trial)):<60} {result}{note}", highlight=False)
        self.progress.update(self.task_id, advance=1, running=0, reached=self.reached, now="")
        self.progress.refresh()

    def stop(self) -> None:
        self.progress.stop()


def _status_colour(status: Any) -> str:
    """A trial's status in its colour (:attr:`Status.colour`); white for
    anything that is not how a run ended (``running``, or no status at all)."""
    known = Status.of(status)
    return known.colour if known is not None and known is not Status.RUNNING else "white"


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _sweep_header(sweep) -> None:
    t = sweep.target
    sign = comparison_sign(t["direction"])
    rules = sweep.ruleset
    deviations = sweep.trials[0].plan.deviations if sweep.trials else []
    console.print(
        f"[bold]bench tune[/] · [cyan]{sweep.label}[/] on [cyan]{sweep.root.parent.name}[/] · ruleset [cyan]{rules.name}[/]"
        f" ({_plural(sweep.studies, 'study', 'studies')} x {_plural(sweep.trials_per_study, 'trial')}, search {rules.search}"
        + (f", search space: {sweep.search_space_source}" if rules.search != "none" else "")
        + ")\n"
        f"  target validation/{t['metric']} {sign} {t['value']:g} · budget "
        + (_planned_budget(sweep.trials[0].plan) if sweep.trials else f"{sweep.max_runtime_s:g} timed s") + " per trial"
        + (f" ({rules.budget_multiplier:g}x the size's)" if rules.budget_multiplier != 1 else "")
        + (f" · [yellow]unofficial: {', '.join(deviations)}[/]" if deviations else "")
        + f"\n  records {sweep.root}\n"
        f"  {len(sweep.to_run)} to run, {len(sweep.trials) - len(sweep.to_run)} finished earlier",
        highlight=False,
    )


def _points_table(sweep):
    from rich.table import Table

    names = []
    for trial in sweep.trials:
        for section in ("optimizer", "norm"):
            for key in trial.point.get(section, {}):
                label = key if section == "optimizer" else f"norm.{key}"
                if (section, key, label) not in names:
                    names.append((section, key, label))
    table = Table(title=f"{sweep.label}: {len(sweep.trials)} trials", title_justify="left")
    for col in ("study", "trial", "seed", *[n[2] for n in names], "trial_id", "will"):
        table.add_column(col, justify="right" if col in ("study", "trial", "seed") else "left", overflow="fold")
    for trial in sweep.trials:
        values = [escape(_fmt_value(trial.point.get(s, {}).get(k, ""))) for s, k, _ in names]
        will = "run" if trial.action == "run" else "skip"
        table.add_row(str(trial.study), str(trial.index), str(trial.seed), *values, trial.trial_id, f"{will}: {trial.why}")
    return table


def _summary_table(result):
    from rich.table import Table

    summary = result.summary
    table = Table(title="per study: fastest trial that reached the target", title_justify="left")
    for col in ("study", "trials", "reached", "best trial", "time to target", "steps"):
        table.add_column(col, overflow="fold")
    for s in summary["studies"]:
        table.add_row(str(s["study"]), str(s["trials"]), str(s["reached"]),
                      "—" if s["best_trial"] is None else str(s["best_trial"]), _fmt_s(s["time_s"]), _fmt_steps(s["steps"]))
    console.print(table)
    console.print(
        f"[bold]time to target[/] (median over {_plural(len(summary['studies']), 'study', 'studies')}): [bold]{_fmt_s(summary['time_s'])}[/]"
        f" · steps {_fmt_steps(summary['steps'])} · {summary['studies_reached']}/{len(summary['studies'])} studies reached",
        highlight=False,
    )


@app.command()
def tune(
    submission: Optional[str] = typer.Option(None, "--submission", "-s", help="Optimizer or norm: a name, a ./file.py, or module:attr. Default: the workload's baseline optimizer."),
    workload: str = typer.Option(..., "--workload", "-w", help="Workload family, e.g. cifar."),
    size: Optional[str] = typer.Option(None, "--size", help="tiny (CPU) or full (GPU). Default: full when CUDA is present, else tiny."),
    norm: Optional[str] = typer.Option(None, "--norm", help="Norm submission to pair with the optimizer. Default: the workload's."),
    ruleset: str = typer.Option("external", "--ruleset", help="external (Halton search over the search space) or self (defaults, 3x budget); or a ruleset YAML file."),
    studies: Optional[int] = typer.Option(None, "--studies", help="Independent repetitions of the search. Default: the ruleset's (3)."),
    trials: Optional[int] = typer.Option(None, "--trials", help="Trials per study. Default: the ruleset's (external 5, self 1)."),
    search_space: Optional[Path] = typer.Option(None, "--search-space", help="AlgoPerf tuning_search_space.json (dict of ranges/feasible_points, or a list of points). Default: the submission's SEARCH_SPACE."),
    output: Path = typer.Option(Path("results"), "--output", "-o", help="Results root."),
    experiment: Optional[str] = typer.Option(None, "--experiment", help="Results sub-directory. Default: the ruleset name."),
    seed: int = typer.Option(0, "--seed", help="Base seed: study and trial seeds derive from it."),
    variant: Optional[str] = typer.Option(None, "--variant", help="Tune a workload variant (bench list), e.g. qk_norm: a sweep of its own, never reusing the base's trials."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the trials and their points; run nothing."),
    executor: str = typer.Option("local", "--executor", help="How trials run: local (one after another, in this process), submitit-local (parallel local processes), slurm (one SLURM job per trial), or an executor YAML file; set its keys as executor.KEY=VALUE overrides (configs/executor/)."),
    wandb: bool = typer.Option(False, "--wandb", help="Track every trial in Weights & Biases, one group per sweep (offline into the run directories when no API key); same as logging.wandb=true."),
    overrides: Optional[List[str]] = typer.Argument(None, help="Config overrides for every trial, e.g. budget.max_steps=200 (makes records unofficial); executor.KEY=VALUE set the executor."),
) -> None:
    """Tune a submission on a workload under a ruleset (studies x trials); resumable."""
    with user_errors():
        from harness.sweeps.executors import preflight
        from harness.sweeps.tuning import plan_sweep, run_sweep

        spec, run_overrides = executor_and_run_overrides(executor, overrides)
        run_overrides += ["logging.wandb=true"] if wandb else []
        sweep = plan_sweep(
            workload, submission, size=size, norm=norm, ruleset=ruleset, studies=studies, trials=trials,
            search_space=search_space, seed=seed, output=output, experiment=experiment, overrides=run_overrides,
            variant=variant,
        )
        _sweep_header(sweep)
        if spec.backend != "inline":
            console.print(f"executor [cyan]{spec.name}[/] ({spec.source})", highlight=False)
        if dry_run:
            console.print(_points_table(sweep))
            if spec.backend == "slurm":
                from harness.sweeps.executors import sbatch_script

                console.print(f"[bold]sbatch script[/] submitit will submit (a job array of the {len(sweep.to_run)} trials to run):")
                console.print(escape(sbatch_script(spec, sweep.root / "submitit", max(1, len(sweep.to_run)))), highlight=False)
            return
        preflight(spec)
        observer = _RichSweepObserver(sweep)
        try:
            result = run_sweep(sweep, observer, spec)
        finally:
            observer.stop()
    if result.submitted:
        console.print(f"submitted {len(result.submitted)} job(s): {', '.join(result.submitted)}; "
                      "rerun the same command to collect the results (finished trials are skipped)", highlight=False)
        return
    _summary_table(result)
    if result.interrupted:
        err_console.print("[yellow]interrupted:[/] rerun the same command to resume (finished trials are skipped)")
        raise typer.Exit(130)
    errors = [t for t in result.ran if t.record.get("status") == Status.ERROR]
    if errors:
        err_console.print(f"[bold red]error:[/] {len(errors)} trial(s) failed; see the lines above (rerun to retry them)")
        raise typer.Exit(1)


# --------------------------------------------------------------------------- #
# bench score                                                                  #
# --------------------------------------------------------------------------- #


def _print_warnings(notes: list[str], limit: int = 20) -> None:
    for note in notes[:limit]:
        err_console.print(f"[yellow]warning:[/] {note}", highlight=False)
    if len(notes) > limit:
        err_console.print(f"[yellow]warning:[/] ... and {len(notes) - limit} more warnings", highlight=False)


def _scores_tables(title: str, result, official: dict | None = None) -> list:
    """The ranked scores, then per base workload each submission's time and
    ratio to the fastest (workloads as rows, so many workloads still fit)."""
    from rich.table import Table

    bases = result.base_workloads
    ranked = Table(title=title, title_justify="left")
    for col, justify in (("rank", "right"), ("submission", "left"), ("score", "right"), ("within 4x", "right")):
        ranked.add_column(col, justify=justify, overflow="fold")
    if official is not None:
        ranked.add_column("official", overflow="fold")
    within = (result.ratios <= result.preset.max_tau).sum(axis=1)
    for rank, (sub, score) in enumerate(result.scores.items(), start=1):
        row = [str(rank), escape(sub), f"[bold]{score:.4f}[/]", f"{int(within[sub])}/{len(bases)}"]
        if official is not None:
            row.append("yes" if official.get(sub, True) else "[yellow]unofficial[/]")
        ranked.add_row(*row)

    with_time = len(result.scores) <= 3  # a cell per submission: room for the time too?
    detail = Table(title="time (x fastest)" if with_time else "time / fastest",
                   title_justify="left")
    detail.add_column("workload", overflow="fold")
    for sub in result.scores.index:
        detail.add_column(escape(sub), justify="right", overflow="fold")
    starred = False
    for w in bases:
        cells = []
        for sub in result.scores.index:
            ratio = result.ratios.loc[sub, w]
            raw = result.times.loc[sub, w] if w in result.times.columns else math.inf
            if math.isfinite(ratio):
                cells.append(f"{_fmt_s(raw)} ({ratio:.2f}x)" if with_time else f"{ratio:.2f}x")
            elif math.isfinite(raw):  # reached, but cut by the 4x rule or by its held-out variant
                cells.append("[red]miss[/]*")
                starred = True
            else:
                cells.append("[red]miss[/]")
        detail.add_row(escape(w), *cells)
    if starred:
        detail.caption = "miss* = reached, but over 4x the fastest\nor missed its held-out variant"
        detail.caption_justify = "left"
    return [ranked, detail]


def _wrote(paths: dict) -> None:
    folder = next(iter(paths.values())).parent
    console.print(f"wrote {folder}/: {', '.join(paths)}", highlight=False)


@app.command()
def score(
    results: Optional[List[Path]] = typer.Argument(None, help="Results directories (any layout): every run.json under them is read."),
    times: Optional[Path] = typer.Option(None, "--times", help="Score a table instead: CSV with submission,workload,time_s (inf = miss), optional ruleset."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Scoring preset naming base workloads and held-out variants, e.g. algoperf_v05 (or a YAML file)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write the leaderboard files. Default: <first results dir>/leaderboard (with --times: none)."),
    allow_mixed_hardware: bool = typer.Option(False, "--allow-mixed-hardware", help="Score records of different hardware_id together (the output says so)."),
    normalize: bool = typer.Option(False, "--normalize", help=(
        "Set hardware classes side by side, approximately: each time divided by its record's speed factor "
        "(its seconds per tuned-baseline step over the reference class's) to seconds of the class the size was "
        "calibrated on; one board per ruleset and reference class. Records without a speed factor (budget in "
        "fixed seconds) are left out, with a warning. Not with --allow-mixed-hardware.")),
    unofficial: bool = typer.Option(False, "--unofficial", help=(
        "Also score the records left out of the official boards (unofficial, another target or budget, not "
        "installed here, no digest) as boards of their own; a workload's records with different targets or "
        "budgets get a column each, never pooled.")),
    algoperf_logs: Optional[Path] = typer.Option(None, "--algoperf-logs", help=(
        "Score AlgoPerf's own logs: <submission>/study_<k>/<workload>_<framework>/trial_<j>/eval_measurements.csv, "
        "timed by their score (accumulated_submission_time) column against AlgoPerf v0.5's validation targets. "
        "Use with --preset algoperf_v05.")),
) -> None:
    """Leaderboard: time to target per workload, performance profiles, benchmark scores.

    Official boards hold only comparable records: official, sealed, and timed
    against the target and budget that define their workload size here. The
    rest are listed (left_out.csv) with the reason each was left out."""
    with user_errors():
        from harness.errors import UserInputError
        from harness.score import scoring

        if algoperf_logs is not None:
            if results or times is not None or normalize:
                raise UserInputError("--algoperf-logs DIR scores AlgoPerf's logs alone: no results directories, --times or --normalize")
            _score_algoperf_logs(algoperf_logs, preset, out)
            return
        if times is not None:
            if results:
                raise UserInputError("give results directories or --times FILE, not both")
            if normalize:
                raise UserInputError("--normalize reads speed factors from records: it does not apply to a --times table")
            _score_times_table(times, preset, out)
            return

        dirs = list(results or [])
        if not dirs:
            raise UserInputError("give one or more results directories (e.g. bench score results/) or --times FILE.csv")
        board = scoring.score_records(dirs, allow_mixed_hardware=allow_mixed_hardware, preset=preset, normalize=normalize,
                                      include_unofficial=unofficial)
        _print_warnings(board.warnings)
        if not board.groups:
            _refuse_empty_board(board, dirs, normalize=normalize, unofficial=unofficial)
        for g in board.groups:
            for table in _scores_tables(_group_title(board, g), g.result, official=g.official):
                console.print(table)
        _hardware_note(board, normalize=normalize, allow_mixed_hardware=allow_mixed_hardware)
        paths = scoring.write_leaderboard(board, out or Path(dirs[0]) / "leaderboard")
        _wrote(paths)


def _score_times_table(times: Path, preset: Optional[str], out: Optional[Path]) -> None:
    """``bench score --times``: score a CSV of times, one board per ruleset in it."""
    from harness.score import scoring

    by_ruleset = scoring.score_times_csv(times, preset)
    for ruleset, result in by_ruleset.items():
        title = f"scores{' · ruleset ' + ruleset if ruleset else ''} · preset {result.preset.name}"
        for table in _scores_tables(title, result):
            console.print(table)
    if out is not None:
        _wrote(scoring.write_scores(by_ruleset, out))


def _score_algoperf_logs(root: Path, preset: Optional[str], out: Optional[Path]) -> None:
    """``bench score --algoperf-logs``: AlgoPerf's eval_measurements.csv files -> times -> scores."""
    from harness.score import algoperf_logs, scoring

    notes: list[str] = []
    times = algoperf_logs.times(root, notes)
    _print_warnings(notes)
    result = scoring.score_times(times, scoring.load_preset(preset))
    for table in _scores_tables(f"AlgoPerf logs {root} · preset {result.preset.name}", result):
        console.print(table)
    if out is not None:
        _wrote(scoring.write_scores({"": result}, out))


def _refuse_empty_board(board, dirs: list[Path], *, normalize: bool, unofficial: bool) -> None:
    """Nothing to score: say why (records left out, none normalisable, or no
    finished records at all) and what would score them."""
    from harness.errors import UserInputError

    if not board.left_out.empty and not unofficial:
        raise UserInputError(f"no record is comparable ({len(board.left_out)} left out, see the warnings); "
                             "--unofficial scores them as boards of their own")
    if normalize and not board.trials.empty:
        raise UserInputError("no record can be normalised (none has a reference-work budget with a speed factor; see the warnings)")
    raise UserInputError(f"no finished records under {', '.join(str(d) for d in dirs)}")


def _group_title(board, g) -> str:
    """A board's title: its ruleset, hardware (normalised, mixed or one class),
    how many records, and whether it is unofficial."""
    from harness.score import scoring

    if g.normalized:
        hw = f"[yellow]{escape(g.hardware_id)}[/]: {_plural(len(g.hardware_ids), 'class', 'classes')} ({', '.join(g.hardware_ids)})"
    elif g.mixed_hardware:
        hw = f"[yellow]mixed hardware ({', '.join(g.hardware_ids)})[/]"
    else:
        hw = f"hardware {g.hardware_id}"
    n = g.records if g.records is not None else int(
        ((board.trials["ruleset"] == g.ruleset) & (board.trials["hardware_id"].isin(g.hardware_ids))).sum())
    title = f"ruleset [cyan]{g.ruleset}[/] · {hw} · {n} record{'s' if n != 1 else ''}"
    if g.board != scoring.OFFICIAL_BOARD:
        title = f"[yellow]unofficial board[/] (records left out of the official ones) · {title}"
    return title


def _hardware_note(board, *, normalize: bool, allow_mixed_hardware: bool) -> None:
    """Below the boards: what normalised times are, or that several hardware
    classes were scored apart and how to put them together."""
    hardware = sorted({hw for g in board.groups for hw in g.hardware_ids})
    if normalize:
        console.print("[dim]normalised: each time divided by its record's speed factor (seconds per tuned-baseline step "
                      "here over the reference class's); approximate, as one baseline's speed ratio need not hold "
                      "for every submission.[/]")
    elif len(hardware) > 1 and not allow_mixed_hardware:
        console.print(f"[dim]{len(hardware)} hardware classes are scored separately; --allow-mixed-hardware merges them, "
                      "--normalize sets them side by side in reference seconds.[/]")


# --------------------------------------------------------------------------- #
# bench compare                                                                #
# --------------------------------------------------------------------------- #


def _verdict(a: str, b: str, ra, rb) -> str:
    """A plain sentence: who is faster, and whether that is beyond the spread."""
    ta, tb = float(ra["time_s"]), float(rb["time_s"])
    if not math.isfinite(ta) and not math.isfinite(tb):
        return "both missed the target"
    if not math.isfinite(tb):
        return f"only {a} reached the target"
    if not math.isfinite(ta):
        return f"only {b} reached the target"
    faster, ratio = (a, tb / ta) if ta <= tb else (b, ta / tb)
    if int(ra["studies"]) < 2 or int(rb["studies"]) < 2:
        return f"{faster} {ratio:.2f}x faster; one study/seed only, so no spread to judge it against"
    # Overlapping [min, max] over studies: the gap is within what reruns vary by.
    if max(float(ra["time_min_s"]), float(rb["time_min_s"])) <= min(float(ra["time_max_s"]), float(rb["time_max_s"])):
        return f"within the spread across studies: no clear difference ({faster} {ratio:.2f}x faster by median)"
    return f"{faster} {ratio:.2f}x faster, beyond the spread across studies"


@app.command()
def compare(
    a: str = typer.Argument(..., help="First submission (its leaderboard name, e.g. lion or lion+groupnorm)."),
    b: str = typer.Argument(..., help="Second submission."),
    results: Optional[List[Path]] = typer.Argument(None, help="Results directories. Default: results."),
    allow_mixed_hardware: bool = typer.Option(False, "--allow-mixed-hardware", help="Compare records of different hardware_id together."),
    unofficial: bool = typer.Option(False, "--unofficial", help="Also compare records left out of the official boards, on boards of their own."),
) -> None:
    """Two submissions side by side per workload: time and steps to target, ratio, spread."""
    with user_errors():
        from rich.table import Table

        from harness.score import scoring
        from harness.errors import UserInputError, did_you_mean

        dirs = list(results or [Path("results")])
        board = scoring.score_records(dirs, allow_mixed_hardware=allow_mixed_hardware, include_unofficial=unofficial)
        _print_warnings(board.warnings)
        names = {sub for g in board.groups for sub in g.times["submission"]}
        left_out = set(board.left_out["submission"])
        for name in (a, b):
            if name not in names and name in left_out:
                raise UserInputError(f"every record of {name!r} was left out of the official boards (see the warnings); "
                                     "--unofficial compares them on boards of their own")
            if name not in names:
                raise UserInputError(f"no finished records of submission {name!r} under {', '.join(map(str, dirs))}; {did_you_mean(name, names)}")
        shown = 0
        for g in board.groups:
            t = g.times.set_index(["submission", "workload"])
            workloads = sorted({w for (s, w) in t.index if s in (a, b)})
            if not workloads:
                continue
            hw = f"mixed hardware ({', '.join(g.hardware_ids)})" if g.mixed_hardware else f"hardware {g.hardware_id}"
            which = "" if g.board == scoring.OFFICIAL_BOARD else "unofficial board · "
            table = Table(title=escape(f"{which}{a} vs {b} · ruleset {g.ruleset} · {hw}"), title_justify="left")
            for col in ("workload", f"{a}: time [min–max] (steps)", f"{b}: time [min–max] (steps)", f"{b}/{a}", "studies", "verdict"):
                table.add_column(escape(col), overflow="fold")
            for w in workloads:
                rows = [t.loc[(s, w)] if (s, w) in t.index else None for s in (a, b)]

                def cell(r):
                    if r is None:
                        return "not run"
                    spread = f" [{_fmt_s(r['time_min_s'])}–{_fmt_s(r['time_max_s'])}]" if int(r["studies"]) > 1 else ""
                    return escape(f"{_fmt_s(r['time_s'])}{spread} ({_fmt_steps(r['steps'])})")

                ra, rb = rows
                if ra is None or rb is None:
                    ratio, verdict = "—", f"only {a if rb is None else b} ran it here"
                else:
                    ta, tb = float(ra["time_s"]), float(rb["time_s"])
                    ratio = f"{tb / ta:.2f}" if math.isfinite(ta) and math.isfinite(tb) else "—"
                    verdict = _verdict(a, b, ra, rb)
                studies = "/".join("—" if r is None else str(int(r["studies"])) for r in rows)
                table.add_row(escape(w), cell(ra), cell(rb), ratio, studies, escape(verdict))
            console.print(table)
            shown += 1
        if not shown:
            raise UserInputError(f"{a!r} and {b!r} have no records in a common ruleset and hardware class")
