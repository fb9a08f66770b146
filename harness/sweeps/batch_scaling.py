"""Batch-size scaling (issue 18): steps to the target against the batch size.

``bench study batch`` runs each submission at each batch size (config
``batch_size``: the workloads read ``size.batch_size``), to the workload's
real target, and measures the steps it took. Per batch size the learning
rate is either

* a scaling rule from the submission's default lr at the size's own batch
  ``B0``: ``linear`` lr x B/B0 (Goyal et al. 2017, SGD), ``sqrt`` lr x
  sqrt(B/B0) (Adam-type), ``none`` (the default lr at every batch); or
* a small retune: ``trials`` scrambled Halton points of the lr alone (as
  ``bench tune`` draws them, :func:`harness.sweeps.tuning.search_points`) over
  the submission's SEARCH_SPACE range for it, the same points at every batch
  size; the batch size's steps to target are its fastest trial's.

The step budget of a run is the size's budget in steps at ``B0`` (its
``budget_steps``, else ``step_hint``; ``--steps`` sets it) x max(1, B0/B): a
smaller batch gets proportionally more steps, so perfect scaling fits in the
budget, and a larger batch no fewer than at B0. The schedule is laid over that
budget (``step_hint``). Seconds are not limited: the work per step grows with
the batch. Steps to target are what the study reports; seconds are recorded
but on a CPU (or a shared machine) they say little across batch sizes.

Records land in ``<output>/study_batch/<workload>-<size>/<label>/bs_<B>/<trial>/``
with a ``study`` block (``{"kind": "batch", "point_id", "batch_size", ...}``);
resuming is as for ``bench tune`` (:func:`harness.sweeps.trials.existing_trial`).

The fit (:func:`fit_scaling`) follows Shallue et al. 2019: with S(B) the steps
to target and B_min the smallest batch that reached it, perfect scaling
predicts P(B) = S(B_min) x B_min / B. The **perfect-scaling region** is the
batch sizes from B_min up to the first with S(B) > 1.25 x P(B) (a 25% tolerance
for the eval cadence's rounding and seed noise); the **critical batch size** is
the largest batch before the first with S(B) > 2 x P(B): past it a run needs
more than twice the steps (and examples) perfect scaling promises. Twice the
examples is where McCandlish et al. 2018's model S = S_min (1 + B_noise/B) puts
its critical batch B_noise.
That model is fitted too (least squares of S on 1/B), as ``b_noise``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from harness.api import Status, Target
from harness.common.seeding import derive_seed, stable_hash
from harness.errors import UserInputError
from harness.run.records import RUN_FILE, read_metrics, safe_name
from harness.sweeps.calibrate import UNBOUNDED_S, time_to
from harness.sweeps.studies import (
    _write_csv, checked_overrides, default_lr_range, existing_point, lr_hyperparameter, nproc_of, run_points,
)

EXPERIMENT = "study_batch"
RULES = ("linear", "sqrt", "none")
PERFECT_TOLERANCE, CRITICAL_FACTOR = 1.25, 2.0
CSV_FILE, PLOT_FILE = "batch_scaling.csv", "batch_scaling.png"
CSV_COLUMNS = (
    "submission", "optimizer", "batch_size", "base_batch_size", "lr_name", "lr", "lr_rule", "trials", "runs",
    "reached_runs", "max_steps", "steps_to_target", "time_to_target_s", "examples_to_target", "perfect_steps",
    "efficiency", "perfect_region", "critical_batch_size", "b_noise", "device", "run_dir",
)


def parse_batch_sizes(text: str | Sequence[int]) -> list[int]:
    """``"16,32,64"`` -> [16, 32, 64] (sorted, duplicates dropped); refuses an
    empty list and anything but positive integers."""
    items = [t.strip() for t in text.split(",")] if isinstance(text, str) else list(text)
    sizes = []
    for item in items:
        if item == "":
            continue
        try:
            value = int(item)
            if isinstance(item, float) or (isinstance(item, str) and not item.lstrip("+").isdigit()):
                raise ValueError
        except (TypeError, ValueError):
            raise UserInputError(f"--batch-sizes must be positive integers separated by commas, e.g. 16,32,64; "
                                 f"got {item!r}") from None
        if value < 1:
            raise UserInputError(f"--batch-sizes must be positive integers, got {value}")
        sizes.append(value)
    if not sizes:
        raise UserInputError("--batch-sizes is empty: give at least one batch size, e.g. 16,32,64")
    return sorted(set(sizes))


def scaled_lr(lr0: float, batch: int, base: int, rule: str) -> float:
    """The rule's learning rate at ``batch`` from ``lr0`` at ``base`` (4 significant digits)."""
    ratio = batch / base
    factor = {"linear": ratio, "sqrt": math.sqrt(ratio), "none": 1.0}[rule]
    return float(f"{lr0 * factor:.4g}")


def step_budget(base_steps: int, batch: int, base: int) -> int:
    """A run's step limit: the budget at the size's batch x max(1, base/batch)."""
    return int(math.ceil(base_steps * max(1.0, base / batch)))


# --------------------------------------------------------------------------- #
# Planning                                                                     #
# --------------------------------------------------------------------------- #


@dataclass
class BatchPoint:
    """One run: a submission at one batch size with one learning rate."""

    label: str
    batch_size: int
    trial: int  # 0.. for a retune; 0 for a rule
    lr_name: str
    lr: float
    point_id: str
    run_dir: Path
    action: str
    why: str
    plan: Any = field(repr=False, default=None)
    extra: dict[str, Any] = field(repr=False, default_factory=dict)
    record: dict[str, Any] | None = field(repr=False, default=None)

    @property
    def name(self) -> str:
        return f"{self.label} bs {self.batch_size} trial {self.trial} lr={self.lr:g}"

    @property
    def trial_id(self) -> str:
        return self.point_id


@dataclass
class BatchStudy:
    workload: str
    size: str
    root: Path
    base_batch: int
    base_steps: int
    batch_sizes: list[int]
    lr_rule: str | None
    trials: int | None
    seed: int
    target: Target
    lr_names: dict[str, str]
    optimizers: dict[str, str]
    points: list[BatchPoint]
    overrides: list[str] = field(default_factory=list)  # config key=value for every run (e.g. target.validation=0.9)

    @property
    def steps(self) -> int:
        return self.base_steps

    @property
    def to_run(self) -> list[BatchPoint]:
        return [p for p in self.points if p.action == "run"]

    @property
    def method(self) -> str:
        return f"retune: {self.trials} Halton trial(s) per batch size" if self.trials else f"lr rule {self.lr_rule}"


def plan_batch_study(
    workload: str,
    submissions: Sequence[str],
    batch_sizes: Sequence[int] | str,
    *,
    size: str = "tiny",
    trials: int | None = None,
    lr_rule: str | None = None,
    steps: int | None = None,
    seed: int = 0,
    output: str | Path = "results",
    executor: Any = "local",
    overrides: Sequence[str] = (),
    registry: Any = None,
) -> BatchStudy:
    """Resolve the study into runs; run nothing. Refuses bad input (no
    submission, an empty or bad batch list, a batch the executor's ``nproc``
    cannot split, both or a bad lr method, a finished record in the way)."""
    from harness.plugins.registry import Registry
    from harness.run import plan_run
    from harness.run.distributed import check_batch

    registry = registry or Registry()
    names = list(dict.fromkeys(submissions or []))
    if not names:
        raise UserInputError("give at least one --submission")
    sizes = parse_batch_sizes(batch_sizes)
    rule, trials = _method(trials, lr_rule)
    if steps is not None and steps < 1:
        raise UserInputError(f"--steps must be at least 1, got {steps}")
    nproc = nproc_of(executor)
    for b in sizes:
        check_batch(b, nproc)
    overrides = checked_overrides(overrides, ("batch_size", "budget.max_steps", "budget.max_runtime_s"))
    bases = [plan_run(workload, n, size=size, seed=seed, output=output, experiment=EXPERIMENT, overrides=overrides,
                      registry=registry) for n in names]
    first = bases[0]
    spec = first.size
    study = BatchStudy(
        workload=first.workload.info.name, size=spec.name,
        root=Path(output) / EXPERIMENT / safe_name(f"{first.workload.info.name}-{spec.name}"),
        base_batch=spec.batch_size, base_steps=int(steps or spec.budget_steps or spec.step_hint), batch_sizes=sizes,
        lr_rule=rule, trials=trials, seed=seed, target=spec.target, lr_names={}, optimizers={}, points=[],
        overrides=overrides)
    for name, base in zip(names, bases):
        if base.label in study.lr_names:
            raise UserInputError(f"{name!r} is the same submission as another --submission ({base.label})")
        lr_name = lr_hyperparameter(base.optimizer)
        study.lr_names[base.label], study.optimizers[base.label] = lr_name, base.optimizer.name
        for b in sizes:
            for k, lr in enumerate(_lrs(study, base, lr_name, b)):
                study.points.append(_plan_point(study, name, base.label, lr_name, b, k, lr, output, registry))
    conflicts = [p for p in study.points if p.action == "conflict"]
    if conflicts:
        raise UserInputError(
            f"{len(conflicts)} point directories under {study.root} hold finished runs of a different study (first: "
            f"{conflicts[0].run_dir}); nothing was run. Give this study its own --output DIR, run it as it was, "
            "or move the old results away")
    return study


def _method(trials: int | None, lr_rule: str | None) -> tuple[str | None, int | None]:
    if trials is not None and lr_rule is not None:
        raise UserInputError("give either --trials T (a retune per batch size) or --lr-rule, not both")
    if trials is not None:
        if trials < 1:
            raise UserInputError(f"--trials must be at least 1, got {trials}")
        return None, trials
    rule = lr_rule or "linear"
    if rule not in RULES:
        from harness.errors import unknown

        raise unknown("--lr-rule", rule, list(RULES))
    return rule, None


def _lrs(study: BatchStudy, base: Any, lr_name: str, batch: int) -> list[float]:
    """The learning rates a submission runs at ``batch``: the rule's one, or the retune's points."""
    if study.trials is None:
        return [scaled_lr(float(base.hp_optimizer[lr_name]), batch, study.base_batch, study.lr_rule)]
    from harness.sweeps.tuning import search_points

    lo, hi = default_lr_range(base.optimizer, lr_name)
    space = {lr_name: {"min": lo, "max": hi, "scaling": "log"}}
    seed = derive_seed(study.seed, "study_batch", base.label)
    return [float(f"{p[lr_name]:.4g}") for p in search_points(space, study.trials, seed)]


def _plan_point(study: BatchStudy, submission: str, label: str, lr_name: str, batch: int, k: int, lr: float,
                output: str | Path, registry: Any) -> BatchPoint:
    from harness.run import plan_run

    max_steps = step_budget(study.base_steps, batch, study.base_batch)
    plan = plan_run(study.workload, submission, size=study.size, seed=study.seed, output=output, experiment=EXPERIMENT,
                    overrides=[*study.overrides, f"batch_size={batch}", f"budget.max_steps={max_steps}",
                               f"budget.max_runtime_s={UNBOUNDED_S:g}"],
                    hyperparameters={"optimizer": {lr_name: lr}}, registry=registry)
    plan.size = replace(plan.size, step_hint=max_steps)  # the schedule over the run's own budget
    sub_id = lambda p: {"name": p.name, "sha256": p.sha256}  # noqa: E731
    point_id = stable_hash({
        "study": "batch", "workload": study.workload, "size": study.size, "submission": sub_id(plan.asked),
        "optimizer": sub_id(plan.optimizer), "norm": sub_id(plan.norm), "seed": study.seed, "batch_size": batch,
        "max_steps": max_steps, "hyperparameters": {"optimizer": dict(plan.hp_optimizer), "norm": dict(plan.hp_norm)},
        "eval": {"every_steps": plan.eval_every_steps, "every_s": plan.eval_every_s},
        **({"overrides": study.overrides} if study.overrides else {}),
    })
    run_dir = study.root / safe_name(label) / f"bs_{batch}" / (f"trial_{k}" if study.trials else f"rule_{study.lr_rule}")
    action, why, record = existing_point(run_dir, point_id)
    extra = {"study": {"kind": "batch", "point_id": point_id, "label": label, "batch_size": batch,
                       "base_batch_size": study.base_batch, "lr_name": lr_name, "lr": lr, "lr_rule": study.lr_rule,
                       "trial": k, "trials": study.trials, "max_steps": max_steps, "batch_sizes": study.batch_sizes}}
    return BatchPoint(label, batch, k, lr_name, lr, point_id, run_dir, action, why, plan, extra, record)


# --------------------------------------------------------------------------- #
# Running and reading                                                          #
# --------------------------------------------------------------------------- #


@dataclass
class BatchStudyResult:
    study: BatchStudy
    ran: list[BatchPoint]
    skipped: list[BatchPoint]
    interrupted: bool = False
    rows: list[dict[str, Any]] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def errors(self) -> list[BatchPoint]:
        return [p for p in self.ran if (p.record or {}).get("status") == Status.ERROR]


def run_batch_study(study: BatchStudy, observer: Any = None, executor: Any = "local") -> BatchStudyResult:
    """Run the unfinished points, then write batch_scaling.csv and .png from every record on disk."""
    ran, skipped, interrupted = run_points(study, observer, executor)
    out = BatchStudyResult(study, ran, skipped, interrupted)
    out.rows, out.paths = write_outputs(study)
    return out


def batch_study(workload: str, submissions: Sequence[str] | str, batch_sizes: Sequence[int] | str, *,
                observer: Any = None, executor: Any = "local", **kwargs: Any) -> BatchStudyResult:
    """Plan and run a batch-scaling study (the notebook entry point); see :func:`plan_batch_study`."""
    if isinstance(submissions, str):
        submissions = [submissions]
    study = plan_batch_study(workload, submissions, batch_sizes, executor=executor, **kwargs)
    return run_batch_study(study, observer, executor)


def _reach(point: BatchPoint, target: Target) -> tuple[float, int] | None:
    """(timed seconds, steps) at the first evaluation meeting the target, from metrics.jsonl."""
    if not point.record or point.record.get("status") not in (s.value for s in Status if s.is_measurement):
        return None
    return time_to(read_metrics(point.run_dir), target.metric, target.validation, target.direction)


def batch_rows(study: BatchStudy) -> list[dict[str, Any]]:
    """One row per submission and batch size: its fastest trial to the target."""
    rows = []
    for label in study.lr_names:
        for b in study.batch_sizes:
            mine = [p for p in study.points if p.label == label and p.batch_size == b]
            reached = [(r, p) for p in mine if (r := _reach(p, study.target)) is not None]
            best = min(reached, key=lambda rp: (rp[0][1], rp[0][0]), default=None)
            shown = best[1] if best else mine[0]
            rows.append({
                "submission": label, "optimizer": study.optimizers[label], "batch_size": b,
                "base_batch_size": study.base_batch, "lr_name": study.lr_names[label], "lr": shown.lr,
                "lr_rule": study.lr_rule or "", "trials": len(mine),
                "runs": sum(p.record is not None and p.record.get("status") != "running" for p in mine),
                "reached_runs": len(reached), "max_steps": shown.extra["study"]["max_steps"],
                "steps_to_target": best[0][1] if best else None, "time_to_target_s": best[0][0] if best else None,
                "examples_to_target": best[0][1] * b if best else None,
                "device": (shown.record or {}).get("device", ""), "run_dir": str(shown.run_dir),
            })
    for label in study.lr_names:
        mine = [r for r in rows if r["submission"] == label]
        fit = fit_scaling([(r["batch_size"], r["steps_to_target"]) for r in mine])
        for r in mine:
            r.update(perfect_steps=fit["perfect"].get(r["batch_size"]), efficiency=fit["efficiency"].get(r["batch_size"]),
                     perfect_region=r["batch_size"] in fit["perfect_region"],
                     critical_batch_size=fit["critical_batch_size"], b_noise=fit["b_noise"])
    return rows


def fit_scaling(points: Sequence[tuple[int, float | None]], tolerance: float = PERFECT_TOLERANCE,
                factor: float = CRITICAL_FACTOR) -> dict[str, Any]:
    """The perfect-scaling region and the critical batch size of (batch, steps
    to target) pairs (None: missed); see the module docstring for the definitions.

    Returns ``{"perfect": {B: P(B)}, "efficiency": {B: P(B)/S(B)}, "perfect_region": [B...],
    "critical_batch_size": B or None, "b_noise": fitted B_noise or None, "s_min": fitted S_min or None}``.
    """
    reached = sorted((int(b), float(s)) for b, s in points if s is not None and math.isfinite(float(s)) and s > 0)
    out: dict[str, Any] = {"perfect": {}, "efficiency": {}, "perfect_region": [], "critical_batch_size": None,
                           "b_noise": None, "s_min": None}
    if not reached:
        return out
    b_min, s0 = reached[0]
    out["perfect"] = {b: s0 * b_min / b for b, _ in reached}
    out["efficiency"] = {b: out["perfect"][b] / s for b, s in reached}
    in_region, below_critical = True, True
    for b, s in reached:
        ratio = s / out["perfect"][b]
        in_region = in_region and ratio <= tolerance
        below_critical = below_critical and ratio <= factor
        if in_region:
            out["perfect_region"].append(b)
        if below_critical:
            out["critical_batch_size"] = b
    out["s_min"], out["b_noise"] = _fit_noise_model(reached)
    return out


def _fit_noise_model(reached: list[tuple[int, float]]) -> tuple[float | None, float | None]:
    """Least squares of S = a + c/B (McCandlish et al. 2018's S_min (1 + B_noise/B)):
    (S_min = a, B_noise = c/a); None where fewer than 2 batches or a, c are not positive."""
    if len(reached) < 2:
        return None, None
    xs, ys = [1.0 / b for b, _ in reached], [s for _, s in reached]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None, None
    c = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    a = my - c * mx
    return (a, c / a) if a > 0 and c > 0 else (None, None)


def write_outputs(study: BatchStudy) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """batch_scaling.csv and batch_scaling.png in the study's root, from every point's record on disk."""
    for point in study.points:
        if point.record is None and (point.run_dir / RUN_FILE).exists():
            action, _, rec = existing_point(point.run_dir, point.point_id)
            point.record = rec if action == "skip" else None
    rows = batch_rows(study)
    paths = {"csv": study.root / CSV_FILE, "plot": study.root / PLOT_FILE}
    _write_csv(paths["csv"], CSV_COLUMNS, rows)
    plot_batch_scaling(study, rows, paths["plot"])
    return rows, paths


def plot_batch_scaling(study: BatchStudy, rows: list[dict[str, Any]], path: Path) -> None:
    """Steps to target against batch size, log-log, one curve per submission,
    its perfect-scaling line (slope -1 through its smallest batch) dotted and its
    critical batch size ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label in study.lr_names:
        mine = [r for r in rows if r["submission"] == label and r["steps_to_target"] is not None]
        if not mine:
            continue
        xs, ys = [r["batch_size"] for r in mine], [r["steps_to_target"] for r in mine]
        crit_b = mine[0]["critical_batch_size"]
        at_end = ">= " if crit_b == max(xs) else ""  # the grid's largest batch: a lower bound
        line, = ax.plot(xs, ys, marker="o", label=f"{label} (critical {at_end}{crit_b})")
        ax.plot(xs, [r["perfect_steps"] for r in mine], linestyle=":", color=line.get_color(), linewidth=1)
        crit = [r for r in mine if r["batch_size"] == r["critical_batch_size"]]
        if crit:
            ax.plot([crit[0]["batch_size"]], [crit[0]["steps_to_target"]], "o", markersize=13, fillstyle="none",
                    color=line.get_color())
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel(f"steps to validation {study.target.metric} {study.target.validation:g}")
    ax.set_title(f"batch scaling · {study.workload} {study.size} · {study.method} · dotted: perfect scaling",
                 fontsize="medium")
    if ax.get_legend_handles_labels()[0]:  # no curve when nothing reached the target yet
        ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = [
    "BatchPoint", "BatchStudy", "BatchStudyResult", "plan_batch_study", "run_batch_study", "batch_study",
    "fit_scaling", "parse_batch_sizes", "scaled_lr", "step_budget", "batch_rows", "write_outputs",
]
