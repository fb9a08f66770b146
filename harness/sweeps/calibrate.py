"""Setting a workload size's target and budget: the calibration protocol.

Targets are measured, not guessed. Modelled on AlgoPerf's target setting
(Dahl et al. 2023, section 4: tune the target-setting algorithm with a
quasirandom search, rerun its best point over several seeds, take the median
of the best validation metric), with a budget rule for CPU-sized problems:

1. **Search.** The baseline optimizer (the workload's ``default_optimizer``
   unless told otherwise) runs its DEFAULTS plus ``search - 1`` scrambled
   Halton points of its SEARCH_SPACE, seed 0, each for ``steps`` steps (the
   size's ``step_hint`` by default) with its schedule laid over those steps,
   the size's eval cadence and no target stop. The best point is the one with
   the best validation metric. ``search=0`` skips the search and reruns the
   point the size already records (``Size.target_setting``).
2. **Seeds.** The best point reruns on ``seeds`` seeds (0, 1, ...).
3. **Target.** Each seed's best validation value within the first
   ``budget_fraction`` (0.67) of the steps; the target is the ``quantile``
   (median by default) of those, rounded to 4 significant digits strictly on
   the easier side (a target is met only by a better value). So the median
   seed reaches it by two thirds of the run, and most seeds well within it.
4. **Budget, as reference work.** Each seed's steps-to-target are read off its
   eval curve; ``reference_steps`` is the median seed's (a seed that never
   reached counts as slowest). The budget buys ``reference_steps /
   budget_fraction`` tuned-baseline steps on any machine (harness/run/speed.py
   turns that into each machine's seconds); the size's ``step_hint`` should
   equal it, so rerun with ``--steps`` set to it when they differ by more than
   an eval period. The calibration also measures this machine's seconds per
   step (harness/run/speed.py) and reports the budget in seconds here, beside the
   old rule's (the median seed's timed seconds / budget_fraction), which it
   should reproduce within noise.
5. **Reliability.** The seeds that reach within the budget's steps are
   counted; a target is accepted only when at least 4 of 5 do.

Everything is written to ``<output>/calibration/<workload>-<size>/<optimizer>/``:
every run's record, and ``calibration.json`` with the search, each seed's
curve summary, the target, budget and the coefficient of variation (CV) of
time- and steps-to-target over the seeds that reach it. Runs already finished
there are reused, so an interrupted calibration resumes. The result is a
proposal: a maintainer copies it into the workload's ``Size`` (target,
``reference_steps``, ``step_hint``, ``max_runtime_s``, ``calibration`` text,
``target_setting``), since it changes the benchmark.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from harness import api
from harness.errors import UserInputError
from harness.run.records import RUN_FILE, read_metrics, read_run, safe_name, write_json_atomic
from harness.common.seeding import derive_seed, stable_hash

CALIBRATION_FILE = "calibration.json"
UNBOUNDED_S = 1e9  # calibration runs are limited by steps, not seconds
# How a calibration run ends: it runs its steps (no target stop) or diverges.
_FINISHED_RUN = (api.Status.BUDGET_EXHAUSTED, api.Status.DIVERGED)


class _NeverMet(api.Target):
    """The size's target, reported as usual, but never ending a run early."""

    def met(self, metrics) -> bool:  # noqa: ARG002 - same signature as Target.met
        return False


@dataclass
class CalibrationRun:
    phase: str  # "search" or "seed"
    index: int
    seed: int
    hyperparameters: dict[str, Any]
    run_dir: Path
    record: dict[str, Any] = field(default_factory=dict)
    curve: list[dict[str, Any]] = field(default_factory=list)  # metrics.jsonl rows
    reused: bool = False

    def values(self, metric: str) -> list[float]:
        key = f"validation/{metric}"
        return [float(r[key]) for r in self.curve if key in r and r[key] is not None and math.isfinite(float(r[key]))]


def best_value(values: list[float], direction: str) -> float:
    if not values:
        return -math.inf if direction == "max" else math.inf
    return max(values) if direction == "max" else min(values)


def round_easier(value: float, direction: str, digits: int = 4) -> float:
    """``value`` to ``digits`` significant digits, strictly on the easier side
    (below it for a metric to maximize, above it for one to minimize).

    Strictly, because a target is met only by a *better* value: a run whose
    best equals the target misses it. Metrics like accuracy on 1000 images take
    few values, so seeds often tie with the quantile; they must reach.
    """
    if value == 0 or not math.isfinite(value):
        return value
    scale = 10 ** (math.floor(math.log10(abs(value))) - digits + 1)
    units = round(value / scale, 6)  # 0.964 / 1e-4 is 9639.999..., not 9640
    units = math.ceil(units) - 1 if direction == "max" else math.floor(units) + 1
    return float(f"{units * scale:.{digits}g}")


def round_up_2sig(seconds: float) -> float:
    if seconds <= 0 or not math.isfinite(seconds):
        return seconds
    scale = 10 ** (math.floor(math.log10(seconds)) - 1)
    return float(f"{math.ceil(seconds / scale) * scale:.2g}")


def time_to(curve: list[dict[str, Any]], metric: str, threshold: float, direction: str) -> tuple[float, int] | None:
    """(timed seconds, step) at the first evaluation strictly better than ``threshold``."""
    target = api.Target(metric, threshold, direction)  # the runner's own test of a target
    for row in curve:
        if target.met(row):
            return float(row["timed_s"]), int(row["step"])
    return None


def cv(values: list[float]) -> float | None:
    """Sample coefficient of variation (std / mean); None below two values."""
    if len(values) < 2 or statistics.mean(values) == 0:
        return None
    return statistics.stdev(values) / statistics.mean(values)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def tuned_baseline(size: api.Size) -> tuple[str, dict[str, Any]]:
    """(optimizer, its hyperparameters) of the run a size's target was calibrated
    on: ``plan_run(..., optimizer, hyperparameters={"optimizer": hp})`` runs the tuned baseline."""
    if not size.target_setting:
        raise UserInputError(f"size {size.name!r} records no target-setting run (Size.target_setting)")
    return size.target_setting["optimizer"], dict(size.target_setting["hyperparameters"])


@dataclass
class _Setup:
    """What every run of one calibration shares: the workload size, the
    baseline optimizer, the steps and where the runs go, so that the phases
    below take one argument instead of a dozen."""

    workload: str
    size: str
    entry: Any  # the registry's workload entry
    spec: api.Size
    opt: Any  # the registry's optimizer entry
    opt_spec: str  # how plan_run finds the optimizer again
    steps: int
    output: str | Path
    overrides: tuple[str, ...] | list[str]
    registry: Any
    root: Path
    say: Callable[[str], None]
    variant: str | None = None  # a workload variant's calibration (api.WorkloadInfo.variants)

    @property
    def target(self) -> api.Target:
        """The size's current target: its metric and direction drive the picks."""
        return self.spec.target


@dataclass
class _Reach:
    """The target proposed from the seeds, and how the seeds reach it: what sets
    the reference work and the budget."""

    bests: list[float]  # each seed's best validation value within budget_fraction of the steps
    proposed: float
    reach: list[tuple[float, int] | None]  # each seed's (timed seconds, step) at the target
    times: list[float]  # of the seeds that reached
    steps_to: list[float]  # of the seeds that reached
    budget_setting_time: float | None
    reference_steps: int | None
    budget_steps: int | None
    within_budget: int


def calibrate(
    workload: str,
    size: str = "tiny",
    optimizer: str | None = None,
    *,
    search: int = 4,
    seeds: int = 5,
    steps: int | None = None,
    quantile_q: float = 0.5,
    budget_fraction: float = 0.67,
    output: str | Path = "results",
    overrides: tuple[str, ...] | list[str] = (),
    variant: str | None = None,
    registry: Any = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the protocol above and return (and write) the calibration summary.
    ``variant`` calibrates a workload variant, in a directory of its own: what
    target it would reach, for comparison (variants keep the base's target)."""
    _check_protocol(search, seeds, quantile_q, budget_fraction)
    setup = _set_up(workload, size, optimizer, search=search, steps=steps, output=output, overrides=overrides,
                    registry=registry, progress=progress, variant=variant)
    points = _points(setup, search)
    started = time.time()
    searched, best = _search(setup, points, search)
    seeded = [_run_one(setup, "seed", k, k, best.hyperparameters) for k in range(seeds)]
    found = _find_target(setup, seeded, quantile_q, budget_fraction)
    measured = _measure_speed(setup, seeded[0].record, best.hyperparameters)
    protocol = {
        "search_points": search, "seeds": seeds, "steps": setup.steps, "step_hint": setup.steps, "quantile": quantile_q,
        "budget_fraction": budget_fraction, "eval_every_steps": setup.spec.eval_every_steps,
        "eval_every_s": setup.spec.eval_every_s, "overrides": list(overrides),
    }
    summary = _summary(setup, protocol, searched, best, seeded, found, measured, budget_fraction)
    summary["wall_s"] = time.time() - started
    summary["text"] = describe(summary)
    write_json_atomic(setup.root / CALIBRATION_FILE, summary)
    (setup.root / "calibration.md").write_text(markdown(summary))
    summary["path"] = str(setup.root / CALIBRATION_FILE)
    return summary


def _check_protocol(search: int, seeds: int, quantile_q: float, budget_fraction: float) -> None:
    """Refuse protocol settings that cannot calibrate, before anything runs."""
    if search < 0 or seeds < 1:
        raise UserInputError("--search must be at least 0 and --seeds at least 1")
    if not 0 < quantile_q < 1 or not 0 < budget_fraction <= 1:
        raise UserInputError("--quantile must be in (0, 1) and --budget-fraction in (0, 1]")


def _set_up(workload: str, size: str, optimizer: str | None, *, search: int, steps: int | None, output: str | Path,
            overrides: tuple[str, ...] | list[str], registry: Any, progress: Callable[[str], None] | None,
            variant: str | None = None) -> _Setup:
    """Resolve the workload size and the baseline optimizer (with ``search=0``,
    the one the size's recorded point names) and where the runs go."""
    from harness.plugins.registry import Registry, size_of

    registry = registry or Registry()
    entry = registry.workload(workload)
    spec = size_of(entry, size)
    if any(o.split("=", 1)[0].lstrip("+~") == "variant" for o in overrides):
        raise UserInputError("calibrate a variant with --variant NAME, not the override variant=...")
    variant = entry.info.resolve_variant(variant)[0] if variant else None
    if search == 0:
        if not spec.target_setting:
            raise UserInputError(f"--search 0 reruns the size's recorded point, but {workload} {size} records none (Size.target_setting)")
        optimizer = optimizer or spec.target_setting["optimizer"]
    opt = registry.submission(optimizer or entry.info.default_optimizer, "optimizer")
    opt_spec = opt.name if opt.origin in ("builtin", "entry_point") else opt.target  # how plan_run finds it again
    where = f"{workload}-{size}" + (f"+{variant}" if variant else "")
    root = Path(output) / "calibration" / safe_name(where) / safe_name(opt.name)
    return _Setup(workload, size, entry, spec, opt, opt_spec, int(steps or spec.step_hint), output, overrides,
                  registry, root, progress or (lambda _msg: None), variant)


def _points(setup: _Setup, search: int) -> list[dict[str, Any]]:
    """The points to search: the optimizer's DEFAULTS, then ``search - 1``
    Halton points over its SEARCH_SPACE; with ``search=0`` the size's recorded point."""
    from harness.sweeps.tuning import search_points

    defaults = dict(setup.opt.meta.get("DEFAULTS", {}))
    space = setup.opt.meta.get("SEARCH_SPACE") or {}
    if search == 0:
        return [{**defaults, **dict(setup.spec.target_setting["hyperparameters"])}]
    seed = derive_seed("calibrate", setup.workload, setup.size, setup.opt.name)
    return [defaults] + [{**defaults, **p} for p in search_points(space, search - 1, seed=seed)]


def _search(setup: _Setup, points: list[dict[str, Any]], search: int) -> tuple[list[CalibrationRun], CalibrationRun]:
    """(the search runs, the best point's run): every point on seed 0, the best
    by its best validation value; with ``search=0`` no runs and the given point."""
    if search == 0:
        return [], CalibrationRun("given", 0, 0, points[0], setup.root)
    target = setup.target
    searched = [_run_one(setup, "search", i, 0, hp) for i, hp in enumerate(points)]
    pick = max if target.direction == "max" else min  # the first of equals wins, as in the search order
    return searched, pick(searched, key=lambda r: best_value(r.values(target.metric), target.direction))


def _run_one(setup: _Setup, phase: str, index: int, seed: int, hp: dict[str, Any]) -> CalibrationRun:
    """One calibration run for ``steps`` steps with no target stop, or the
    finished run of the same identity already in its directory."""
    from harness.run import execute, plan_run

    run_dir = setup.root / f"{phase}_{index}"
    # "schedule over steps": runs lay the schedule over their own length (step_hint = steps)
    identity = stable_hash([setup.workload, setup.size, setup.opt.name, setup.opt.sha256, setup.steps, seed, hp,
                            list(setup.overrides), "schedule over steps", *([setup.variant] if setup.variant else [])])
    cal = CalibrationRun(phase, index, seed, hp, run_dir)
    if _reuse(cal, identity):
        setup.say(f"{phase} {index} (seed {seed}): reusing the finished run in {run_dir}")
        return cal
    plan = plan_run(
        setup.workload,
        setup.opt_spec,
        size=setup.size,
        seed=seed,
        output=setup.output,
        overrides=[*setup.overrides, f"budget.max_steps={setup.steps}", f"budget.max_runtime_s={UNBOUNDED_S:g}"],
        hyperparameters={"optimizer": hp},
        variant=setup.variant,
        registry=setup.registry,
    )
    plan.size = replace(plan.size, target=_NeverMet(**vars(setup.target)), step_hint=setup.steps)
    setup.say(f"{phase} {index} (seed {seed}): running {setup.steps} steps")
    result = execute(plan, run_dir=run_dir, extra={"calibration": {"identity": identity, "phase": phase, "index": index}})
    cal.record, cal.curve = result.record, read_metrics(run_dir)
    if result.status not in _FINISHED_RUN:
        raise UserInputError(f"calibration run {run_dir} ended {result.status}: {result.record.get('reason')}")
    return cal



def _reuse(cal: CalibrationRun, identity: str) -> bool:
    """Fill ``cal`` from a finished run of the same identity in its directory,
    so an interrupted calibration resumes; False when there is none (or it is unreadable)."""
    if not (cal.run_dir / RUN_FILE).exists():
        return False
    try:
        rec = read_run(cal.run_dir)
        if (rec.get("calibration") or {}).get("identity") == identity and rec.get("status") in _FINISHED_RUN:
            cal.record, cal.curve, cal.reused = rec, read_metrics(cal.run_dir), True
            return True
    except (OSError, json.JSONDecodeError):
        pass  # unreadable: run again
    return False


def _find_target(setup: _Setup, seeded: list[CalibrationRun], quantile_q: float, budget_fraction: float) -> _Reach:
    """The target from the seeds' bests, and the seeds' steps and seconds to it."""
    target, steps = setup.target, setup.steps
    # The target comes from the first budget_fraction of each run: the median
    # seed reaches it by then, so the budget's last third is the margin that
    # lets the slower seeds reach too.
    early = budget_fraction * steps
    bests = [best_value([v for r_, v in _eval_values(r, target.metric) if r_ <= early], target.direction) for r in seeded]
    finite = [b for b in bests if math.isfinite(b)]
    if not finite:
        raise UserInputError("no seed produced a finite validation metric; nothing to calibrate from")
    # quantile_q is the share of seeds meant to reach the target: for a metric
    # to maximize that is the (1 - q) quantile of the seeds' bests.
    q = 1 - quantile_q if target.direction == "max" else quantile_q
    proposed = round_easier(quantile(finite, q), target.direction)
    reach = [time_to(r.curve, target.metric, proposed, target.direction) for r in seeded]
    times = [t for t, _ in filter(None, reach)]
    steps_to = [float(s) for _, s in filter(None, reach)]
    misses = reach.count(None)
    quantile_time, quantile_steps = _at_quantile(times, misses, quantile_q), _at_quantile(steps_to, misses, quantile_q)
    reference_steps = int(quantile_steps) if math.isfinite(quantile_steps) else None
    budget_steps = math.ceil(reference_steps / budget_fraction - 1e-9) if reference_steps else None
    return _Reach(
        bests, proposed, reach, times, steps_to,
        budget_setting_time=quantile_time if math.isfinite(quantile_time) else None,
        reference_steps=reference_steps,
        budget_steps=budget_steps,
        within_budget=sum(1 for x in steps_to if budget_steps and x <= budget_steps),
    )


def _at_quantile(values: list[float], misses: int, quantile_q: float) -> float:
    """The seed at the quantile (the median seed by default), counting the
    ``misses`` seeds that never reached the target as slowest: averaging only
    the seeds that reached would favour the lucky ones."""
    ranked = sorted(values + [math.inf] * misses)
    return ranked[max(0, math.ceil(quantile_q * len(ranked)) - 1)]


def _measure_speed(setup: _Setup, record: dict[str, Any], point: dict[str, Any]):
    """This machine's seconds per step of the tuned point, measured as every
    run will measure it: it turns the reference work into the reference budget."""
    from harness.run import fingerprint
    from harness.run.build import resolve_data_dir
    from harness.common.seeding import default_threads
    from harness.run.speed import local_speed

    threads = int(record.get("threads") or default_threads())
    import torch

    torch.set_num_threads(threads)  # threads are part of the hardware class the speed is cached under
    return local_speed(setup.entry, replace(setup.spec, step_hint=setup.steps), threads=threads, device=_device(record),
                       data_dir=resolve_data_dir({"data_dir": None}), hardware_id=fingerprint.collect().get("hardware_id"),
                       registry=setup.registry, remeasure=True, point=(setup.opt_spec, point))


def _summary(setup: _Setup, protocol: dict[str, Any], searched: list[CalibrationRun], best: CalibrationRun,
             seeded: list[CalibrationRun], found: _Reach, measured: Any, budget_fraction: float) -> dict[str, Any]:
    """calibration.json's contents (less ``wall_s``, ``text`` and ``path``)."""
    target = setup.target
    reference_steps, budget_setting_time = found.reference_steps, found.budget_setting_time
    return {
        "workload": setup.workload,
        "size": setup.size,
        "optimizer": setup.opt.name,
        "optimizer_sha256": setup.opt.sha256,
        "protocol": protocol,
        "hardware_id": (seeded[0].record.get("fingerprint") or {}).get("hardware_id"),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "metric": target.metric,
        "direction": target.direction,
        "search": [
            {"index": r.index, "hyperparameters": r.hyperparameters, "best": best_value(r.values(target.metric), target.direction),
             "status": r.record.get("status")}
            for r in searched
        ],
        "best_point": best.hyperparameters,
        "seeds_detail": [
            {"seed": r.seed, "best": b, "best_whole_run": best_value(r.values(target.metric), target.direction),
             "time_to_target_s": rt[0] if rt else None, "steps_to_target": rt[1] if rt else None,
             "s_per_step": (r.record.get("timed_s") or 0) / max(r.record.get("steps") or 1, 1)}
            for r, b, rt in zip(seeded, found.bests, found.reach)
        ],
        "target": found.proposed,
        "previous_target": target.validation,
        "seeds_reaching": len(found.times),
        # the quantile seed's time (the median seed's at the default quantile 0.5);
        # the key keeps its first name so older calibration files still read
        "median_time_to_target_s": budget_setting_time,
        "median_steps_to_target": statistics.median(found.steps_to) if found.steps_to else None,
        "reference_steps": reference_steps,
        "budget_steps": found.budget_steps,
        "seeds_within_budget": found.within_budget,
        "seconds_per_step": measured.s_per_step,
        "speed": measured.as_dict(),
        "max_runtime_s": float(f"{reference_steps * measured.s_per_step / budget_fraction:.3g}") if reference_steps else None,
        # the rule before budgets travelled: the median seed's timed seconds / budget_fraction
        "time_rule_max_runtime_s": round_up_2sig(budget_setting_time / budget_fraction) if budget_setting_time else None,
        "cv_time_to_target": cv(found.times),
        "cv_steps_to_target": cv(found.steps_to),
    }


def _eval_values(run: CalibrationRun, metric: str) -> list[tuple[int, float]]:
    """(step, validation value) of every evaluation with a finite value."""
    key = f"validation/{metric}"
    return [(int(r["step"]), float(r[key])) for r in run.curve
            if r.get(key) is not None and math.isfinite(float(r[key]))]


def _device(record: dict[str, Any]):
    import torch

    return torch.device(record.get("device") or "cpu")


def markdown(s: dict[str, Any]) -> str:
    """The section of docs/calibration.md for this calibration."""
    p = s["protocol"]
    lines = [
        f"## {s['workload']} {s['size']} ({s['optimizer']}, {s['date']}, `{s['hardware_id']}`)", "",
        f"`bench calibrate -w {s['workload']} --size {s['size']} --search {p['search_points']} --seeds {p['seeds']} "
        f"--steps {p['steps']}` (schedule over {p.get('step_hint', p['steps'])} steps, eval every "
        f"{p['eval_every_steps'] or p['eval_every_s']} {'steps' if p['eval_every_steps'] else 's'}, quantile "
        f"{p['quantile']:g}, budget fraction {p['budget_fraction']:g}).", "",
    ]
    if s["search"]:
        lines += ["| point | hyperparameters | best |", "|---|---|---:|"]
        for r in s["search"]:
            hp = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["hyperparameters"].items())
            lines.append(f"| {r['index']} | {hp} | {r['best']:.4g} |")
        lines.append("")
    else:
        hp = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in s["best_point"].items())
        lines += [f"No search: the size's recorded tuned point, {hp}.", ""]
    lines += [f"| seed | best by {p['budget_fraction']:g} of the run | best of the run | steps to target | "
              "time to target (s) | s/step |", "|---:|---:|---:|---:|---:|---:|"]
    for d in s["seeds_detail"]:
        miss = d["steps_to_target"] is None
        ttt = "miss" if miss else f"{d['time_to_target_s']:.1f}"
        lines.append(f"| {d['seed']} | {d['best']:.4g} | {d.get('best_whole_run', d['best']):.4g} | "
                     f"{'miss' if miss else d['steps_to_target']} | {ttt} | {d['s_per_step']:.4f} |")
    lines += ["", f"**Target {s['target']:g}** (was {s['previous_target']:g}). **Reference work "
              f"{s['reference_steps']} steps**, so the budget buys {s['budget_steps']} steps (the step hint); "
              f"{s['seeds_within_budget']}/{p['seeds']} seeds reach the target within them. Measured step time here "
              f"{s['seconds_per_step'] * 1000:.1f} ms → budget {s['max_runtime_s']:g} s on this class (the old rule, "
              f"median seed's time / {p['budget_fraction']:g}: {s['time_rule_max_runtime_s'] or 0:g} s).", ""]
    return "\n".join(lines)


def describe(s: dict[str, Any]) -> str:
    """The paragraph that goes into the Size's ``calibration=`` text."""
    seeds = ", ".join(
        f"{d['best']:.4g}" + (f"@{d['steps_to_target']}" if d["steps_to_target"] is not None else "(miss)")
        for d in s["seeds_detail"]
    )
    point = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in s["best_point"].items())
    cv_t = f"{s['cv_time_to_target']:.1%}" if s["cv_time_to_target"] is not None else "n/a"
    cv_s = f"{s['cv_steps_to_target']:.1%}" if s["cv_steps_to_target"] is not None else "n/a"
    p = s["protocol"]
    med = f"{s['median_time_to_target_s']:.1f}" if s["median_time_to_target_s"] else "n/a"
    searched = (f"searched over {p['search_points']} points (defaults + Halton)" if p["search_points"]
                else "at its recorded tuned point (no search)")
    return (
        f"bench calibrate, {s['date']} on {s['hardware_id']}: {s['optimizer']} {searched}, {p['steps']} steps each "
        f"with step_hint {p.get('step_hint', p['steps'])}; best point {point}; rerun on {p['seeds']} seeds: best "
        f"validation {s['metric']} (and steps to the target) {seeds}. Target = the {p['quantile']:.0%} quantile of the "
        f"seeds' bests within the first {p['budget_fraction']:g} of the steps, rounded: {s['target']:g}. "
        f"Reference work = the median seed's {s.get('reference_steps')} steps; the budget buys "
        f"{s.get('reference_steps')} / {p['budget_fraction']:g} = {s.get('budget_steps')} steps, within which "
        f"{s.get('seeds_within_budget')}/{p['seeds']} seeds reach it. Here that is {s['max_runtime_s']} s at "
        f"{(s.get('seconds_per_step') or 0) * 1000:.1f} ms/step (median seed {med} s / {p['budget_fraction']:g} = "
        f"{s.get('time_rule_max_runtime_s') or 0:.3g} s). CV of time-to-target {cv_t}, of steps-to-target {cv_s}."
    )


__all__ = ["calibrate", "describe", "round_easier", "time_to", "cv", "quantile"]
