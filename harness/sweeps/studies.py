"""Studies beyond time to target: learning-rate sensitivity (issue 18).

``bench study lr`` runs a log-spaced grid of each submission's learning rate,
every other hyperparameter at its default, for a fixed number of steps with no
stop at the target, on ``seeds`` seeds; every point is an ordinary run with an
ordinary record. Records land in::

    <output>/study_lr/<workload>-<size>/<label>/lr_<k>/seed_<s>/

and carry a ``study`` block (``{"kind": "lr", "point_id", "lr_name", "lr", ...}``).
Resuming works as for ``bench tune``: a point's identity (``point_id``) is a
stable hash of the workload size, the submission, optimizer and norm (name and
source sha256), all hyperparameters, the seed, the steps and the eval cadence;
a finished record (``budget_exhausted`` or ``diverged``) with that identity is
skipped, an unfinished or errored one is rerun, and a finished one of another
identity is never replaced (the study is refused before anything runs).

The learning-rate hyperparameter is the one the optimizer's literal metadata
names in ``LR_NAME = "..."``, else ``lr`` or ``learning_rate`` in its DEFAULTS;
an optimizer with none is refused. The grid's default range is the
SEARCH_SPACE's range for it, else 1e-4 to 1e-1. A norm submission is studied
over the learning rate of the optimizer it is paired with (the workload's).

Each run lays its schedule over its own length (``step_hint`` = steps, as
calibration runs do) and runs all its steps: the target is reported, never met
early (the ``_NeverMet`` target of harness/sweeps/calibrate.py). Time to target
is read afterwards from metrics.jsonl: the first evaluation meeting the
workload's real target.

After the runs, three files in ``<output>/study_lr/<workload>-<size>/``:
``lr_sensitivity.csv`` (one row per submission, lr and seed),
``lr_summary.csv`` (one row per submission: LR sensitivity, best lr, its spread
across seeds) and ``lr_sensitivity.png``. The LR sensitivity is Wortsman et al.
2023's (:func:`lr_sensitivity`); docs/studies.md says how each figure is made.

Python::

    from harness.sweeps.studies import lr_study
    result = lr_study("cifar", ["adamw", "lion"], points=5, steps=200)
    result.summary      # one dict per submission
"""

from __future__ import annotations

import ast
import csv
import math
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, Sequence

from harness.api import Status, Target
from harness.common.seeding import stable_hash
from harness.errors import UserInputError
from harness.run.records import RUN_FILE, read_metrics, safe_name
from harness.sweeps.calibrate import UNBOUNDED_S, _NeverMet, time_to
from harness.sweeps.trials import SKIP_STATUSES, existing_trial, run_inline

LR_NAMES = ("lr", "learning_rate")
DEFAULT_RANGE = (1e-4, 1e-1)
EXPERIMENT = "study_lr"
CSV_FILE, SUMMARY_FILE, PLOT_FILE = "lr_sensitivity.csv", "lr_summary.csv", "lr_sensitivity.png"
CSV_COLUMNS = (
    "submission", "optimizer", "lr_name", "lr_index", "lr", "seed", "status", "diverged", "steps",
    "first_metric", "final_metric", "best_metric", "final_loss", "reached_target", "steps_to_target",
    "time_to_target_s", "run_dir",
)
SUMMARY_COLUMNS = (
    "submission", "optimizer", "lr_name", "metric", "direction", "loss", "points", "seeds", "lr_min", "lr_max",
    "init_loss", "best_loss", "lr_sensitivity", "best_lr", "best_lr_final_mean", "best_lr_final_min",
    "best_lr_final_max", "best_lr_spread", "diverged_runs", "reached_runs", "runs",
)


# --------------------------------------------------------------------------- #
# The formula                                                                  #
# --------------------------------------------------------------------------- #


def oriented_loss(value: Any, direction: str) -> float:
    """A metric as a loss, lower is better: itself for a ``min`` metric, ``1 -
    value`` for a ``max`` one (an accuracy becomes the error rate); a missing or
    non-finite value (a diverged run) is ``inf``. LR sensitivity does not depend
    on the choice: ``1 - m`` and ``-m`` differ by a constant, which cancels."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.inf
    if not math.isfinite(v):
        return math.inf
    return 1.0 - v if direction == "max" else v


def capped_mean(losses: Sequence[float], init_loss: float) -> float:
    """The mean over seeds of ``min(L, L_init)``: a diverged seed (inf, nan)
    counts as the initial loss, so one bad seed cannot make the mean infinite."""
    capped = [init_loss if not math.isfinite(x) else min(x, init_loss) for x in losses]
    return statistics.fmean(capped) if capped else math.nan


def lr_sensitivity(final_losses: Sequence[float], init_loss: float) -> float:
    """Wortsman et al. 2023's LR sensitivity over a grid: the mean over the grid of
    ``min(L(eta), L_init) - L*``, with L* the best (lowest) ``min(L(eta), L_init)``.

    ``final_losses`` holds L(eta) per grid point (lower is better; inf or nan for
    a diverged point, which counts as ``init_loss``). 0 means every learning rate
    on the grid does as well as the best one; it grows as the loss rises away
    from the best lr. nan with an empty grid or a non-finite ``init_loss``.
    """
    if not final_losses or not math.isfinite(init_loss):
        return math.nan
    capped = [init_loss if not math.isfinite(x) else min(float(x), init_loss) for x in final_losses]
    best = min(capped)
    return statistics.fmean(c - best for c in capped)


# --------------------------------------------------------------------------- #
# The learning rate and its grid                                               #
# --------------------------------------------------------------------------- #


def declared_lr_name(plugin: Any) -> str | None:
    """``LR_NAME`` of a submission: a top-level literal of its source file, read
    without importing it; for an object plugin (``module:attr``) its attribute."""
    if plugin.source is not None and ":" not in plugin.target:
        try:
            tree = ast.parse(Path(plugin.source).read_bytes())
        except (OSError, SyntaxError, ValueError):
            return None
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "LR_NAME" for t in node.targets):
                try:
                    value = ast.literal_eval(node.value)
                except ValueError:
                    return None
                return value if isinstance(value, str) else None
        return None
    value = getattr(plugin.load(check=False), "LR_NAME", None)
    return value if isinstance(value, str) else None


def lr_hyperparameter(plugin: Any) -> str:
    """The name of an optimizer's learning-rate hyperparameter (``LR_NAME``, else
    ``lr`` or ``learning_rate`` in DEFAULTS); UserInputError when it has none."""
    defaults = dict(plugin.meta.get("DEFAULTS") or {})
    declared = declared_lr_name(plugin)
    if declared is not None:
        if declared not in defaults:
            raise UserInputError(f"{plugin.name}: LR_NAME = {declared!r} is not one of its DEFAULTS "
                                 f"({', '.join(defaults) or 'none'})")
        return declared
    for name in LR_NAMES:
        if name in defaults:
            return name
    raise UserInputError(
        f"{plugin.name} has no learning-rate hyperparameter to study: its DEFAULTS ({', '.join(defaults) or 'none'}) "
        "hold neither 'lr' nor 'learning_rate'; name it in the module with LR_NAME = \"...\"")


def default_lr_range(plugin: Any, lr_name: str) -> tuple[float, float]:
    """The SEARCH_SPACE's range for ``lr_name`` (min-max, or the span of numeric
    feasible points), else :data:`DEFAULT_RANGE`."""
    entry = (plugin.meta.get("SEARCH_SPACE") or {}).get(lr_name)
    if isinstance(entry, dict):
        if "min" in entry and "max" in entry:
            return float(entry["min"]), float(entry["max"])
        points = [float(p) for p in entry.get("feasible_points") or [] if isinstance(p, (int, float)) and p > 0]
        if len(points) > 1:
            return min(points), max(points)
    return DEFAULT_RANGE


def parse_range(text: str) -> tuple[float, float]:
    """``"1e-4:1e-1"`` -> (1e-4, 1e-1)."""
    lo, sep, hi = str(text).partition(":")
    try:
        if not sep:
            raise ValueError
        return float(lo), float(hi)
    except ValueError:
        raise UserInputError(f"--range must be LOW:HIGH, e.g. 1e-4:1e-1; got {text!r}") from None


def lr_grid(lo: float, hi: float, points: int) -> list[float]:
    """``points`` log-spaced learning rates from ``lo`` to ``hi`` (ends included),
    rounded to 4 significant digits."""
    if points < 1:
        raise UserInputError(f"--points must be at least 1, got {points}")
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0 or hi < lo or (hi == lo and points > 1):
        raise UserInputError(f"the learning-rate range must be 0 < LOW < HIGH, got {lo:g}:{hi:g}")
    if points == 1:
        return [float(f"{math.sqrt(lo * hi):.4g}")]
    step = (math.log(hi) - math.log(lo)) / (points - 1)
    return [float(f"{math.exp(math.log(lo) + k * step):.4g}") for k in range(points)]


# --------------------------------------------------------------------------- #
# Planning                                                                     #
# --------------------------------------------------------------------------- #


@dataclass
class LrPoint:
    """One run of the study: a submission at one learning rate and seed."""

    label: str
    lr_name: str
    index: int
    lr: float
    seed: int
    point_id: str
    run_dir: Path
    action: str  # "run" | "skip" | "conflict"
    why: str
    plan: Any = field(repr=False, default=None)
    extra: dict[str, Any] = field(repr=False, default_factory=dict)
    record: dict[str, Any] | None = field(repr=False, default=None)

    @property
    def name(self) -> str:
        return f"{self.label} lr_{self.index}={self.lr:g} seed {self.seed}"

    @property
    def trial_id(self) -> str:  # what the executors key a job and its record by
        return self.point_id


@dataclass
class LrStudy:
    workload: str
    size: str
    root: Path  # <output>/study_lr/<workload>-<size>
    steps: int
    seeds: int
    target: Target  # the workload size's real target (metric, direction, threshold)
    grids: dict[str, list[float]]  # label -> learning rates
    lr_names: dict[str, str]  # label -> hyperparameter name
    optimizers: dict[str, str]  # label -> optimizer name
    points: list[LrPoint]
    variant: str | None = None  # a workload variant (root <workload>-<size>+<variant>)
    overrides: list[str] = field(default_factory=list)  # config key=value for every run (e.g. target.validation=0.9)

    @property
    def to_run(self) -> list[LrPoint]:
        return [p for p in self.points if p.action == "run"]


def plan_lr_study(
    workload: str,
    submissions: Sequence[str],
    *,
    size: str = "tiny",
    points: int = 9,
    lr_range: tuple[float, float] | None = None,
    steps: int | None = None,
    seeds: int = 1,
    output: str | Path = "results",
    variant: str | None = None,
    executor: Any = "local",
    overrides: Sequence[str] = (),
    registry: Any = None,
) -> LrStudy:
    """Resolve the study into runs (grid, seeds, directories, run/skip); run nothing.
    Refuses bad input (no submission, an optimizer without a learning rate, an
    empty grid, a finished record of another study in the way) before any run."""
    from harness.plugins.registry import Registry
    from harness.run import plan_run

    registry = registry or Registry()
    names = list(dict.fromkeys(submissions or []))
    if not names:
        raise UserInputError("give at least one --submission")
    if seeds < 1:
        raise UserInputError(f"--seeds must be at least 1, got {seeds}")
    if steps is not None and steps < 1:
        raise UserInputError(f"--steps must be at least 1, got {steps}")
    overrides = checked_overrides(overrides, ("budget.max_steps", "budget.max_runtime_s"))
    bases = [plan_run(workload, name, size=size, seed=0, output=output, experiment=EXPERIMENT, overrides=overrides,
                      variant=variant, registry=registry) for name in names]
    first = bases[0]
    from harness.run.distributed import check_batch

    check_batch(first.size.batch_size, nproc_of(executor))
    n_steps = int(steps or first.size.step_hint)
    root = Path(output) / EXPERIMENT / safe_name(first.workload_dir)
    study = LrStudy(workload=first.workload.info.name, size=first.size.name, root=root, steps=n_steps, seeds=seeds,
                    target=first.size.target, grids={}, lr_names={}, optimizers={}, points=[], overrides=overrides,
                    variant=first.variant)
    for name, base in zip(names, bases):
        if base.label in study.grids:
            raise UserInputError(f"{name!r} is the same submission as another --submission ({base.label})")
        lr_name = lr_hyperparameter(base.optimizer)
        lo, hi = lr_range or default_lr_range(base.optimizer, lr_name)
        grid = lr_grid(lo, hi, points)
        study.grids[base.label], study.lr_names[base.label] = grid, lr_name
        study.optimizers[base.label] = base.optimizer.name
        for k, lr in enumerate(grid):
            for s in range(seeds):
                study.points.append(_plan_point(study, name, base.label, lr_name, k, lr, s, output, registry))
    _refuse_conflicts(study)
    return study


def _plan_point(study: LrStudy, submission: str, label: str, lr_name: str, k: int, lr: float, seed: int,
                output: str | Path, registry: Any) -> LrPoint:
    """One point: its plan (fixed steps, no target stop), identity, directory and action."""
    from harness.run import plan_run

    plan = plan_run(study.workload, submission, size=study.size, seed=seed, output=output, experiment=EXPERIMENT,
                    overrides=[*study.overrides, f"budget.max_steps={study.steps}", f"budget.max_runtime_s={UNBOUNDED_S:g}"],
                    hyperparameters={"optimizer": {lr_name: lr}}, variant=study.variant, registry=registry)
    # All the steps, the schedule laid over them; the target is reported, never met early.
    plan.size = replace(plan.size, target=_NeverMet(**vars(study.target)), step_hint=study.steps)
    sub_id = lambda p: {"name": p.name, "sha256": p.sha256}  # noqa: E731
    point_id = stable_hash({
        "study": "lr", "workload": study.workload, "size": study.size, "submission": sub_id(plan.asked),
        "optimizer": sub_id(plan.optimizer), "norm": sub_id(plan.norm), "seed": seed, "steps": study.steps,
        "hyperparameters": {"optimizer": dict(plan.hp_optimizer), "norm": dict(plan.hp_norm)},
        "eval": {"every_steps": plan.eval_every_steps, "every_s": plan.eval_every_s},
        **({"variant": plan.variant, "variant_settings": plan.variant_settings} if plan.variant else {}),
        **({"overrides": study.overrides} if study.overrides else {}),
    })
    run_dir = study.root / safe_name(label) / f"lr_{k}" / f"seed_{seed}"
    action, why, record = existing_point(run_dir, point_id)
    extra = {"study": {"kind": "lr", "point_id": point_id, "label": label, "lr_name": lr_name, "lr": lr,
                       "lr_index": k, "points": len(study.grids[label]), "seed": seed, "seeds": study.seeds,
                       "steps": study.steps, "grid": study.grids[label]}}
    return LrPoint(label, lr_name, k, lr, seed, point_id, run_dir, action, why, plan, extra, record)


def checked_overrides(overrides: Sequence[str], owned: Sequence[str]) -> list[str]:
    """The user's config overrides for every run of a study, refusing those of
    the keys the study sets itself (``owned``); the rest are checked by plan_run."""
    for raw in overrides:
        key = str(raw).split("=", 1)[0].lstrip("+~")
        if key in owned:
            raise UserInputError(f"{raw!r}: the study sets {key} itself; use its own option instead")
    return list(overrides)


def existing_point(run_dir: Path, point_id: str) -> tuple[str, str, dict | None]:
    """(action, why, record) for a point directory that may hold an earlier
    record: :func:`harness.sweeps.trials.existing_trial`, which knows a study
    point's ``study.point_id`` as it knows a trial's ``tuning.trial_id``."""
    return existing_trial(run_dir, point_id)


def _refuse_conflicts(study: LrStudy) -> None:
    conflicts = [p for p in study.points if p.action == "conflict"]
    if not conflicts:
        return
    first = conflicts[0]
    old = (first.record or {}).get("study") or {}
    was = (f" (it ran {old.get('lr_name')}={old.get('lr')} for {old.get('steps')} steps; this study runs "
           f"{first.lr_name}={first.lr:g} for {study.steps} steps)") if old else ""
    raise UserInputError(
        f"{len(conflicts)} point directories under {study.root} hold finished runs of a different study "
        f"(first: {first.run_dir}{was}); nothing was run. Give this study its own --output DIR, run it as it "
        "was (the same range, points, steps and code), or move the old results away")


# --------------------------------------------------------------------------- #
# Running                                                                      #
# --------------------------------------------------------------------------- #


class StudyObserver(Protocol):
    """Progress of a study; every call happens between timed segments."""

    def on_point_start(self, point: LrPoint) -> None: ...
    def on_eval(self, point: LrPoint, row: dict[str, Any]) -> None: ...
    def on_point_end(self, point: LrPoint, record: dict[str, Any], ran: bool) -> None: ...


@dataclass
class LrStudyResult:
    study: LrStudy
    ran: list[LrPoint]
    skipped: list[LrPoint]
    interrupted: bool = False
    rows: list[dict[str, Any]] = field(default_factory=list)  # lr_sensitivity.csv
    summary: list[dict[str, Any]] = field(default_factory=list)  # lr_summary.csv
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def errors(self) -> list[LrPoint]:
        return [p for p in self.ran if (p.record or {}).get("status") == Status.ERROR]


def run_points(study: Any, observer: StudyObserver | None = None, executor: Any = "local") -> tuple[list, list, bool]:
    """(ran, skipped, interrupted): every point of a study (lr or batch) marked
    ``run``, finished ones skipped. ``executor="local"`` runs them one after
    another in this process, where a Ctrl-C ends the current run as
    ``interrupted`` (rerun next time) and stops the study; ``submitit-local``
    and ``slurm`` submit them as bench tune's trials are
    (:mod:`harness.sweeps.executors`): the records are the only coordination."""
    from harness.sweeps.executors import preflight, run_trials
    from harness.sweeps.tuning import check_executor

    spec = check_executor(executor)
    preflight(spec)
    as_trials = _AsTrialObserver(observer) if observer else None
    if spec.backend != "inline":
        from types import SimpleNamespace

        as_sweep = SimpleNamespace(trials=study.points, to_run=study.to_run, root=study.root)  # what run_trials reads
        done = run_trials(as_sweep, spec, as_trials)
        return done.ran, done.skipped, done.interrupted
    return run_inline(study.points, as_trials)


class _AsTrialObserver:
    """A study observer as a sweep observer (the executors report ends only)."""

    def __init__(self, observer: StudyObserver) -> None:
        self.observer = observer

    def on_trial_start(self, point: Any) -> None:
        self.observer.on_point_start(point)

    def on_trial_end(self, point: Any, record: dict[str, Any], ran: bool) -> None:
        self.observer.on_point_end(point, record, ran)

    def on_eval(self, point: Any, row: dict[str, Any]) -> None:
        self.observer.on_eval(point, row)


def nproc_of(executor: Any) -> int:
    """Processes per run under ``executor`` (its ``nproc``; 1 in this process)."""
    from harness.sweeps.tuning import check_executor

    return int(check_executor(executor).get("nproc", 1) or 1)


def estimate_s(study: Any) -> tuple[float | None, str]:
    """(seconds, basis): the time the study's unfinished points will take:
    their steps (a batch study's weighted by batch / the size's batch, as the
    work per step grows) x seconds per step, evaluations included. The seconds
    per step come from, in order: the finished runs of this study (timed + eval
    seconds per step, median); this machine's speed probe of the size's tuned
    baseline (:func:`probe_s_per_step`: cached per hardware class, else measured
    now in seconds); the size's calibration (another machine's, evaluations not
    counted)."""
    import statistics

    from harness.run.speed import reference_s_per_step

    if not study.points:
        return None, "no runs"
    base_batch = study.points[0].plan.size.batch_size
    work = lambda p: (p.plan.max_steps or study.steps) * getattr(p, "batch_size", base_batch) / base_batch  # noqa: E731
    done = [(p.record, work(p) / max(1, p.plan.max_steps or study.steps)) for p in study.points
            if p.action == "skip" and p.record and p.record.get("steps")]
    per_step = [(float(r.get("timed_s") or 0) + float(r.get("eval_s") or 0)) / (r["steps"] * scale) for r, scale in done]
    if per_step:
        s, basis = statistics.median(per_step), f"{len(per_step)} finished run(s) of this study"
    else:
        s, busy = probe_s_per_step(study.points[0].plan)
        basis = "this machine's speed probe of the size's baseline" + (", taken beside other work" if busy else "")
        if s is None:
            s, basis = reference_s_per_step(study.points[0].plan.size), "the size's calibration (another machine; evals not counted)"
    if s is None:
        return None, "no finished run and no calibration to go by"
    return sum(work(p) for p in study.to_run) * s, basis


def probe_s_per_step(plan: Any) -> tuple[float | None, bool]:
    """(seconds per step, busy): the size's tuned baseline on this machine at
    the study's thread count, with one evaluation spread over the study's eval
    cadence (harness/run/speed.py: cached per hardware class, else measured,
    which takes seconds); busy when the probe ran beside other work. None for a
    size without a reference-work budget (full sizes), and wherever the probe
    fails: an estimate never stops a study."""
    info = plan.workload.info
    base = info.sizes.get(plan.size.name)
    if base is None or base.reference_steps is None or not base.target_setting or base.device != "cpu":
        return None, False
    import torch

    from harness.common.seeding import default_threads
    from harness.run import build, fingerprint, speed

    threads = int(plan.config.get("threads") or default_threads())
    old_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)  # part of the hardware class, as in a run
        hardware_id = fingerprint.collect().get("hardware_id")
        measured = speed.local_speed(plan.workload, base, threads=threads, device=torch.device("cpu"),
                                     data_dir=build.resolve_data_dir(plan.config), hardware_id=hardware_id)
    except Exception:  # noqa: BLE001 - the estimate falls back to the calibration's figure
        return None, False
    finally:
        torch.set_num_threads(old_threads)
    every = plan.eval_every_steps or base.eval_every_steps
    eval_share = measured.eval_s / every if measured.eval_s and every else 0.0
    return measured.s_per_step + eval_share, measured.contended is not None


def run_lr_study(study: LrStudy, observer: StudyObserver | None = None, executor: Any = "local") -> LrStudyResult:
    """Run the study's unfinished points (:func:`run_points`), then write the
    CSVs and the plot from every record on disk (after a Ctrl-C: the points
    finished so far)."""
    ran, skipped, interrupted = run_points(study, observer, executor)
    out = LrStudyResult(study, ran, skipped, interrupted)
    out.rows, out.summary, out.paths = write_outputs(study)
    return out


def lr_study(
    workload: str,
    submissions: Sequence[str] | str,
    *,
    observer: StudyObserver | None = None,
    executor: Any = "local",
    **kwargs: Any,
) -> LrStudyResult:
    """Plan and run an LR study (the notebook entry point); see :func:`plan_lr_study`."""
    if isinstance(submissions, str):
        submissions = [submissions]
    return run_lr_study(plan_lr_study(workload, submissions, executor=executor, **kwargs), observer, executor)


# --------------------------------------------------------------------------- #
# Reading the runs: the CSVs and the plot                                      #
# --------------------------------------------------------------------------- #


def point_row(study: LrStudy, point: LrPoint) -> dict[str, Any]:
    """One lr_sensitivity.csv row from a point's record and metrics.jsonl."""
    rec = point.record or {}
    metric, direction = study.target.metric, study.target.direction
    key = f"validation/{metric}"
    curve = read_metrics(point.run_dir) if rec else []
    values = [float(r[key]) for r in curve if isinstance(r.get(key), (int, float))]
    finite = [v for v in values if math.isfinite(v)]
    final = values[-1] if values else math.nan
    status = rec.get("status", "not run")
    diverged = status == Status.DIVERGED or (bool(rec) and not math.isfinite(final))
    reach = time_to(curve, metric, study.target.validation, direction) if curve else None
    best = (max(finite) if direction == "max" else min(finite)) if finite else math.nan
    return {
        "submission": point.label, "optimizer": study.optimizers.get(point.label), "lr_name": point.lr_name,
        "lr_index": point.index, "lr": point.lr, "seed": point.seed, "status": status, "diverged": diverged,
        "steps": rec.get("steps"), "first_metric": values[0] if values else math.nan, "final_metric": final,
        "best_metric": best, "final_loss": math.inf if diverged else oriented_loss(final, direction),
        "reached_target": reach is not None, "steps_to_target": reach[1] if reach else None,
        "time_to_target_s": reach[0] if reach else None, "run_dir": str(point.run_dir),
    }


def _measured(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of finished runs (an error or an unrun point measures nothing)."""
    return [r for r in rows if r["status"] in SKIP_STATUSES]


def init_loss(rows: list[dict[str, Any]], direction: str) -> float:
    """L_init, the loss before training, approximated without an extra
    evaluation: the first evaluation of the runs at the grid's smallest learning
    rate (the runs that move least from the initial weights), median over seeds;
    if none is finite, the worst finite first evaluation of any run."""
    measured = [r for r in _measured(rows) if math.isfinite(oriented_loss(r["first_metric"], direction))]
    if not measured:
        return math.nan
    smallest = min(r["lr"] for r in measured)
    firsts = [oriented_loss(r["first_metric"], direction) for r in measured if r["lr"] == smallest]
    return statistics.median(firsts) if firsts else max(oriented_loss(r["first_metric"], direction) for r in measured)


def summarize_submission(study: LrStudy, label: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One lr_summary.csv row: L_init, L*, the LR sensitivity, the best lr (lowest
    mean capped final loss over seeds) and that lr's final metric across seeds."""
    direction = study.target.direction
    mine = _measured([r for r in rows if r["submission"] == label])
    l_init = init_loss(mine, direction)
    by_lr: dict[float, list[dict[str, Any]]] = {}
    for r in mine:
        by_lr.setdefault(r["lr"], []).append(r)
    per_lr = {lr: capped_mean([r["final_loss"] for r in rs], l_init) for lr, rs in sorted(by_lr.items())}
    best_lr = min(per_lr, key=lambda lr: per_lr[lr]) if per_lr and math.isfinite(l_init) else None
    finals = [r["final_metric"] for r in by_lr.get(best_lr, []) if math.isfinite(r["final_metric"])]
    grid = study.grids[label]
    return {
        "submission": label, "optimizer": study.optimizers[label], "lr_name": study.lr_names[label],
        "metric": study.target.metric, "direction": direction,
        "loss": f"1 - {study.target.metric}" if direction == "max" else study.target.metric,
        "points": len(grid), "seeds": study.seeds, "lr_min": grid[0], "lr_max": grid[-1], "init_loss": l_init,
        "best_loss": per_lr[best_lr] if best_lr is not None else math.nan,
        "lr_sensitivity": lr_sensitivity(list(per_lr.values()), l_init), "best_lr": best_lr,
        "best_lr_final_mean": statistics.fmean(finals) if finals else math.nan,
        "best_lr_final_min": min(finals, default=math.nan), "best_lr_final_max": max(finals, default=math.nan),
        "best_lr_spread": (max(finals) - min(finals)) if finals else math.nan,
        "diverged_runs": sum(bool(r["diverged"]) for r in mine), "reached_runs": sum(bool(r["reached_target"]) for r in mine),
        "runs": len(mine),
    }


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows([{c: ("" if r.get(c) is None else r.get(c)) for c in columns} for r in rows])
    tmp.replace(path)


def write_outputs(study: LrStudy) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Path]]:
    """(rows, summary, paths): lr_sensitivity.csv, lr_summary.csv and
    lr_sensitivity.png in the study's root, from every point's record on disk."""
    for point in study.points:
        if point.record is None and (point.run_dir / RUN_FILE).exists():
            action, _, rec = existing_point(point.run_dir, point.point_id)
            point.record = rec if action == "skip" else None
    rows = [point_row(study, p) for p in study.points]
    summary = [summarize_submission(study, label, rows) for label in study.grids]
    paths = {"csv": study.root / CSV_FILE, "summary": study.root / SUMMARY_FILE, "plot": study.root / PLOT_FILE}
    _write_csv(paths["csv"], CSV_COLUMNS, rows)
    _write_csv(paths["summary"], SUMMARY_COLUMNS, summary)
    plot_lr_sensitivity(study, rows, summary, paths["plot"])
    return rows, summary, paths


def plot_lr_sensitivity(study: LrStudy, rows: list[dict[str, Any]], summary: list[dict[str, Any]], path: Path) -> None:
    """Final validation metric against lr (log x), one curve per submission (the
    mean over seeds of the finite finals), the seeds as a band (min-max), each
    diverged run an x at the submission's initial value, the target dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric, direction = study.target.metric, study.target.direction
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in summary:
        mine = _measured([r for r in rows if r["submission"] == s["submission"]])
        lrs = sorted({r["lr"] for r in mine})
        finals = {lr: [r["final_metric"] for r in mine if r["lr"] == lr and not r["diverged"]
                       and math.isfinite(r["final_metric"])] for lr in lrs}
        xs = [lr for lr in lrs if finals[lr]]
        line, = ax.plot(xs, [statistics.fmean(finals[lr]) for lr in xs], marker="o", label=f"{s['submission']} "
                        f"(sensitivity {s['lr_sensitivity']:.3g})")
        if study.seeds > 1 and xs:
            ax.fill_between(xs, [min(finals[lr]) for lr in xs], [max(finals[lr]) for lr in xs],
                            color=line.get_color(), alpha=0.2)
        bad = [r["lr"] for r in mine if r["diverged"]]
        if bad:
            at = 1.0 - s["init_loss"] if direction == "max" else s["init_loss"]
            ax.plot(bad, [at if math.isfinite(at) else 0.0] * len(bad), "x", color=line.get_color(), markersize=9)
    ax.axhline(study.target.validation, color="grey", linestyle="--", linewidth=1, label=f"target {study.target.validation:g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"final validation {metric} ({'higher' if direction == 'max' else 'lower'} is better)")
    ax.set_title(f"LR sensitivity · {study.workload} {study.size} · {study.steps} steps · {study.seeds} seed(s)"
                 " · x: diverged")
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = [
    "LrPoint", "LrStudy", "LrStudyResult", "lr_study", "plan_lr_study", "run_lr_study", "lr_sensitivity",
    "oriented_loss", "capped_mean", "lr_hyperparameter", "declared_lr_name", "default_lr_range", "lr_grid",
    "parse_range", "init_loss", "write_outputs", "existing_point", "run_points", "estimate_s", "nproc_of",
]
