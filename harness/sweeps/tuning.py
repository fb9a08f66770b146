"""Tuning protocols: AlgoPerf's external tuning and self-tuning, as resumable sweeps.

A *sweep* runs one submission on one workload size under one *ruleset*
(``configs/ruleset/<name>.yaml``) as ``studies x trials`` timed runs:

* **external** - each study draws ``trials`` hyperparameter points from a
  scrambled Halton sequence (``scipy.stats.qmc.Halton``) over the search space,
  seeded by the study's seed, so the points are reproducible and differ between
  studies. The search space is the submission's ``SEARCH_SPACE`` or a file in
  AlgoPerf's ``tuning_search_space.json`` formats (see :func:`load_search_space`).
* **self** - no search: the submission's ``DEFAULTS``, one trial per study, with
  the timed budget multiplied by the ruleset's ``budget_multiplier`` (AlgoPerf
  v0.5: 3x). The multiplied budget is part of the rules, so it does not make the
  record unofficial.

Records land in ``<output>/<experiment>/<workload>-<size>/<label>/study_<k>/trial_<i>/``
(``experiment`` defaults to the ruleset name) and carry a ``tuning`` block::

    "tuning": {"ruleset": "external", "study": 0, "trial": 3, "trial_id": "...",
               "sweep_id": "...", "label": "lion", "search": "halton",
               "study_seed": ..., "base_seed": 0, "budget_multiplier": 1.0,
               "search_space": "submission" | "<file>", "point": {...}}

so any record can be scored later from anywhere (``harness.score.scoring``). A
``sweep.json`` beside the study folders lists the planned trials.

Resuming: a trial's identity (``trial_id``) is a stable hash of what defines it -
workload, size, workload variant (if any), the submission, optimizer and norm
(name and source sha256), all hyperparameters, the seed, the ruleset and the budget/eval settings.
Rerunning the same command skips a trial whose record has that id and a
finished status (``reached``, ``budget_exhausted``, ``diverged``); it reruns
trials with no record, an unreadable one, a ``running`` or ``interrupted`` one
(a crash or Ctrl-C), an ``error`` one (an error is a failure to measure, often
a bug fixed since or a machine fault, not a result), or a record of a
different definition (edited source, other search space): that record is replaced.
Two processes must not run the same sweep at once (no locking).

Per workload, :func:`summarize` gives AlgoPerf's time: the median over studies
of the fastest trial in each study that reached the target; a study where no
trial reached it is a miss (inf).

Python::

    from harness.sweeps.tuning import tune
    result = tune("cifar", "lion", size="tiny", ruleset="external", studies=1, trials=3)
    result.summary        # per-workload time, steps, spread over studies
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

from harness.api import WORKLOAD_HYPERPARAMETERS, canonical_name
from harness.common.config import load_named_yaml, named_configs
from harness.common.seeding import derive_seed, stable_hash
from harness.errors import UserInputError
from harness.plugins.search_space import SearchSpaceError, validate
from harness.run.records import safe_name, write_json_atomic
from harness.sweeps.trials import Sweep, SweepResult, Trial, existing_trial, run_inline, summarize

HP_SECTIONS = ("optimizer", "norm")


# --------------------------------------------------------------------------- #
# Rulesets                                                                     #
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Ruleset:
    name: str
    search: str  # "halton" (external tuning) or "none" (self-tuning: DEFAULTS only)
    studies: int
    trials: int
    budget_multiplier: float = 1.0
    description: str = ""
    hardware_id: str | None = None  # pins the hardware class: trials elsewhere are unofficial


def available_rulesets() -> list[str]:
    return named_configs("ruleset")


def load_ruleset(name_or_path: str | Path) -> Ruleset:
    """A ruleset by name (``configs/ruleset/<name>.yaml``) or from a YAML file."""
    path, data = load_named_yaml("ruleset", name_or_path, "ruleset")
    try:
        ruleset = Ruleset(
            name=str(data.get("name", path.stem)),
            search=str(data.get("search", "halton")),
            studies=int(data.get("studies", 3)),
            trials=int(data.get("trials", 5)),
            budget_multiplier=float(data.get("budget_multiplier", 1.0)),
            description=str(data.get("description", "")),
            hardware_id=str(data["hardware_id"]) if data.get("hardware_id") else None,
        )
    except (TypeError, ValueError) as exc:
        raise UserInputError(f"ruleset {path}: {exc}") from None
    if ruleset.search not in ("halton", "none"):
        raise UserInputError(f"ruleset {path}: search must be 'halton' or 'none', got {ruleset.search!r}")
    if ruleset.budget_multiplier <= 0:
        raise UserInputError(f"ruleset {path}: budget_multiplier must be positive")
    return ruleset


# --------------------------------------------------------------------------- #
# Search spaces and Halton points                                              #
# --------------------------------------------------------------------------- #


def load_search_space(path: str | Path) -> dict[str, Any] | list[dict[str, Any]]:
    """A search space file in AlgoPerf's ``tuning_search_space.json`` formats, unchanged:

    * a dict ``{name: {"min": a, "max": b, "scaling": "log" | "linear"}}`` or
      ``{name: {"feasible_points": [...]}}``;
    * a list of fixed points ``[{name: value, ...}, ...]``.

    ``.yaml``/``.yml`` files holding the same structures are read too. Names are
    the submission's hyperparameter names; prefix ``optimizer.`` or ``norm.`` to
    target the other half of an optimizer/norm pairing.
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"search space file {str(path)!r} does not exist")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            space = yaml.safe_load(path.read_text())
        else:
            space = json.loads(path.read_text())
    except Exception as exc:
        raise UserInputError(f"search space {path}: not valid {'YAML' if path.suffix in ('.yaml', '.yml') else 'JSON'} ({exc})") from None
    try:
        validate(space)
    except SearchSpaceError as exc:
        raise UserInputError(f"search space {path}: {exc}") from None
    return space


def _map_unit(spec: dict[str, Any], u: float) -> Any:
    """One coordinate of the unit cube onto one hyperparameter."""
    if "feasible_points" in spec:
        points = spec["feasible_points"]
        # A uniform coordinate picks each point with equal probability.
        return points[min(int(u * len(points)), len(points) - 1)]
    lo, hi = float(spec["min"]), float(spec["max"])
    if spec.get("scaling", "linear") == "log":
        value = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    else:
        value = lo + u * (hi - lo)
    return min(max(value, lo), hi)  # exp/log round-off must not step outside the range


def search_points(space: dict[str, Any] | list[dict[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` points of ``space``: scrambled Halton for a dict space (reproducible
    from ``seed``; one dimension per hyperparameter, in the space's order), the
    fixed points in order for a list space (cycling when ``n`` exceeds them)."""
    if n < 0:
        raise ValueError("n must be >= 0")
    if isinstance(space, list):
        return [dict(space[i % len(space)]) for i in range(n)] if space else [{} for _ in range(n)]
    names = list(space)
    if not names or n == 0:
        return [{} for _ in range(n)]
    from scipy.stats import qmc

    # scipy's scrambling draws from numpy's Generator: a 63-bit seed is fine.
    unit = qmc.Halton(d=len(names), scramble=True, seed=seed).random(n)
    return [{name: _py(_map_unit(space[name], float(u))) for name, u in zip(names, row)} for row in unit]


def _py(value: Any) -> Any:
    """numpy scalars -> Python (records and overrides want plain types)."""
    return value.item() if hasattr(value, "item") else value


def _route(point: dict[str, Any], own: str, names: dict[str, set[str]]) -> dict[str, dict[str, Any]]:
    """Split a point into optimizer/norm hyperparameters.

    ``optimizer.x`` / ``norm.x`` go where they say; a bare name goes to the
    asked submission's half, or to the other half if only that one knows it;
    a workload hyperparameter (label_smoothing, ...) goes to the optimizer's.
    """
    routed: dict[str, dict[str, Any]] = {s: {} for s in HP_SECTIONS}
    other = "norm" if own == "optimizer" else "optimizer"
    for key, value in point.items():
        section, _, name = key.partition(".")
        if section in HP_SECTIONS and name:
            routed[section][name] = value
        elif canonical_name(key, names[own]) not in names[own] and (
                canonical_name(key, names[other]) in names[other] or (other == "optimizer" and key in WORKLOAD_HYPERPARAMETERS)):
            # plan_run maps an AlgoPerf name (learning_rate) to the submission's; the
            # workload's (label_smoothing, ...) sit among the optimizer's, as in AlgoPerf
            routed[other][key] = value
        else:
            routed[own][key] = value  # unknown names: plan_run says "did you mean"
    return routed


# --------------------------------------------------------------------------- #
# Planning a sweep                                                             #
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class _TrialBasis:
    """What every trial of one sweep shares: plan_run's arguments, the
    ruleset's budget multiplier and hardware pin, the search space and the
    sweep's identity, so that planning one trial takes one argument."""

    workload: str
    submission: str | None
    norm: str | None
    size: str
    seed: int
    output: str | Path
    experiment: str
    overrides: Sequence[str]
    registry: Any
    rules: Ruleset
    n_studies: int
    n_trials: int
    space: Any
    space_source: str
    own: str  # the asked submission's half of a point: "optimizer" or "norm"
    names: dict[str, set[str]]  # hyperparameter names of each half
    ruleset_multiplier: float | None
    pin: str | None
    identity: dict[str, Any]  # what every trial_id hashes besides the trial's own settings
    sweep_id: str
    label: str
    root: Path
    variant: str | None = None


def plan_sweep(
    workload: str,
    submission: str | None = None,
    *,
    size: str | None = None,
    norm: str | None = None,
    ruleset: str | Path | Ruleset = "external",
    studies: int | None = None,
    trials: int | None = None,
    search_space: str | Path | dict | list | None = None,
    seed: int = 0,
    output: str | Path = "results",
    experiment: str | None = None,
    overrides: Sequence[str] = (),
    variant: str | None = None,
    registry: Any = None,
) -> Sweep:
    """Resolve a sweep into trials (points, seeds, directories, run/skip); run nothing.

    ``overrides`` (``key=value``) apply to every trial, e.g. ``budget.max_steps=50``
    for a quick check (which makes the records unofficial). ``variant`` tunes a
    workload variant: a sweep of its own, in its own directory.
    """
    from harness.plugins.registry import Registry
    from harness.run import plan_run

    registry = registry or Registry()
    rules = ruleset if isinstance(ruleset, Ruleset) else load_ruleset(ruleset)
    n_studies, n_trials = _study_counts(rules, studies, trials, search_space)
    user_keys = _user_keys(overrides)
    experiment = experiment or rules.name

    # A first plan resolves names, size and label, and checks the user's overrides.
    base_plan = plan_run(workload, submission, size=size, norm=norm, seed=seed, output=output,
                         experiment=experiment, overrides=list(overrides), variant=variant, registry=registry)
    space, space_source = _resolve_space(rules, search_space, base_plan.asked)
    basis = _trial_basis(base_plan, rules, user_keys, workload=workload, submission=submission, norm=norm, seed=seed,
                         output=output, experiment=experiment, overrides=overrides, registry=registry,
                         n_studies=n_studies, n_trials=n_trials, space=space, space_source=space_source)
    planned: list[Trial] = []
    for k in range(n_studies):
        study_seed = derive_seed(seed, "study", k) % 2**31
        points = search_points(space, n_trials, study_seed) if rules.search == "halton" else [{}]
        planned += [_plan_trial(basis, k, i, study_seed, raw_point) for i, raw_point in enumerate(points)]
    _refuse_conflicts(planned, basis.root)

    return Sweep(
        ruleset=rules, workload=base_plan.workload.info.name, size=basis.size, label=basis.label, root=basis.root,
        sweep_id=basis.sweep_id, base_seed=seed, studies=n_studies, trials_per_study=n_trials, search_space=space,
        search_space_source=space_source, trials=planned, target=base_plan.size.target.as_dict(),
        max_runtime_s=planned[0].plan.max_runtime_s if planned else base_plan.max_runtime_s,
    )


def _study_counts(rules: Ruleset, studies: int | None, trials: int | None, search_space: Any) -> tuple[int, int]:
    """(studies, trials per study): the ruleset's unless given, checked against
    what the ruleset allows (no search: one trial per study, no search space)."""
    n_studies = rules.studies if studies is None else int(studies)
    n_trials = rules.trials if trials is None else int(trials)
    if n_studies < 1 or n_trials < 1:
        raise UserInputError("--studies and --trials must be at least 1")
    if rules.search == "none":
        if n_trials != 1:
            raise UserInputError(f"ruleset {rules.name!r} runs the submission's defaults once per study: --trials must be 1, got {n_trials}")
        if search_space is not None:
            raise UserInputError(f"ruleset {rules.name!r} does no search: --search-space is not allowed")
    return n_studies, n_trials


def _user_keys(overrides: Sequence[str]) -> set[str]:
    """The config keys the user's overrides set, refusing those the sweep sets
    itself (each trial's seed and directory)."""
    user_keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o}
    for key in ("seed", "output", "experiment"):
        if key in user_keys:
            raise UserInputError(f"{key!r} is set by the sweep; use --{key} instead of the override {key}=...")
    return user_keys


def _resolve_space(rules: Ruleset, search_space: str | Path | dict | list | None, asked: Any) -> tuple[Any, str]:
    """(search space, where it came from): none for a ruleset without search,
    else the given file or object (validated), else the submission's SEARCH_SPACE."""
    if rules.search == "none":
        return {}, "none (defaults)"
    if search_space is None:
        return asked.meta.get("SEARCH_SPACE") or {}, "submission"
    if isinstance(search_space, (str, Path)):
        return load_search_space(search_space), str(search_space)
    try:
        validate(search_space)
    except SearchSpaceError as exc:
        raise UserInputError(f"search space: {exc}") from None
    return search_space, "given"


def _trial_basis(base_plan: Any, rules: Ruleset, user_keys: set[str], *, workload: str, submission: str | None,
                 norm: str | None, seed: int, output: str | Path, experiment: str, overrides: Sequence[str],
                 registry: Any, n_studies: int, n_trials: int, space: Any, space_source: str) -> _TrialBasis:
    """What the trials share, with the sweep's identity (``sweep_id``) and root directory."""
    info, size_spec = base_plan.workload.info, base_plan.size
    # The ruleset's budget multiplier and hardware pin, unless the user set them explicitly.
    # A multiplier, not seconds: a tiny size's budget becomes seconds only on the machine that runs it.
    ruleset_budget = rules.budget_multiplier != 1.0 and not user_keys & {"budget.max_runtime_s", "budget.multiplier"}
    pin = rules.hardware_id if rules.hardware_id and "hardware_id" not in user_keys else None

    sub_id = lambda p: {"name": p.name, "sha256": p.sha256}  # noqa: E731
    identity = {
        "workload": info.name, "size": size_spec.name, "submission": sub_id(base_plan.asked),
        "optimizer": sub_id(base_plan.optimizer), "norm": sub_id(base_plan.norm), "ruleset": rules.name,
        # Only when set: a base sweep's trial_ids stay those it always had.
        **({"variant": base_plan.variant, "variant_settings": base_plan.variant_settings} if base_plan.variant else {}),
    }
    # Tracking settings (logging.*) say where results are mirrored, not what is measured.
    measured = sorted(o for o in overrides if not o.lstrip("+~").startswith("logging."))
    sweep_id = stable_hash({**identity, "base_seed": seed, "search_space": space, "overrides": measured})
    root = Path(output) / safe_name(experiment) / safe_name(base_plan.workload_dir) / safe_name(base_plan.label)
    return _TrialBasis(
        workload=workload, submission=submission, norm=norm, size=size_spec.name, seed=seed, output=output,
        experiment=experiment, overrides=overrides, registry=registry, rules=rules, n_studies=n_studies,
        n_trials=n_trials, space=space, space_source=space_source,
        own="optimizer" if base_plan.asked.kind == "optimizer" else "norm",
        names={"optimizer": set(base_plan.hp_optimizer), "norm": set(base_plan.hp_norm)},
        ruleset_multiplier=rules.budget_multiplier if ruleset_budget else None, pin=pin,
        identity=identity, sweep_id=sweep_id, label=base_plan.label, root=root, variant=base_plan.variant,
    )


def _plan_trial(basis: _TrialBasis, k: int, i: int, study_seed: int, raw_point: dict[str, Any]) -> Trial:
    """Trial ``i`` of study ``k``: its plan, identity, directory and whether it runs."""
    from harness.run import plan_run

    point = _route(raw_point, basis.own, basis.names)
    trial_seed = derive_seed(basis.seed, "study", k, "trial", i) % 2**31
    plan = plan_run(basis.workload, basis.submission, size=basis.size, norm=basis.norm, seed=trial_seed,
                    output=basis.output, experiment=basis.experiment, overrides=basis.overrides, hyperparameters=point,
                    ruleset_multiplier=basis.ruleset_multiplier, pinned_hardware_id=basis.pin, variant=basis.variant,
                    registry=basis.registry)
    trial_id = stable_hash({
        **basis.identity,
        "hyperparameters": {"optimizer": dict(plan.hp_optimizer), "norm": dict(plan.hp_norm)},
        "seed": trial_seed,
        "budget": {"max_runtime_s": plan.max_runtime_s, "max_steps": plan.max_steps,
                   "eval_every_steps": plan.eval_every_steps, "eval_every_s": plan.eval_every_s},
        **({"pinned_hardware_id": plan.config["hardware_id"]} if plan.config.get("hardware_id") else {}),
    })
    run_dir = basis.root / f"study_{k}" / f"trial_{i}"
    action, why, record = existing_trial(run_dir, trial_id)
    rules = basis.rules
    extra = {"tuning": {
        "ruleset": rules.name, "study": k, "trial": i, "trial_id": trial_id, "sweep_id": basis.sweep_id,
        "label": basis.label, "search": rules.search, "studies": basis.n_studies, "trials": basis.n_trials,
        "study_seed": study_seed, "base_seed": basis.seed, "budget_multiplier": rules.budget_multiplier,
        "search_space": basis.space_source, "point": point,
    }}
    return Trial(k, i, trial_seed, study_seed, point, trial_id, run_dir, action, why, plan, extra, record)


def _refuse_conflicts(planned: list[Trial], root: Path) -> None:
    """Finished results are never replaced: a different sweep (another seed,
    search space, budget or code) goes to another directory."""
    conflicts = [t for t in planned if t.action == "conflict"]
    if conflicts:
        first = conflicts[0]
        changed = what_changed(first.record or {}, first)
        raise UserInputError(
            f"{len(conflicts)} trial directories under {root} hold finished trials of a different sweep "
            f"(first: {first.run_dir}: {first.why}); nothing was run. "
            + (f"What differs: {'; '.join(changed)}. " if changed else "")
            + "To start a new sweep, give it its own --experiment NAME or --output DIR; to keep adding to the "
            "old one, run it as it was (the same code and settings), or move the old results away"
        )


def what_changed(old: dict[str, Any], trial: Trial) -> list[str]:
    """What makes ``trial`` a different trial from the finished ``old`` record in
    its directory: plugin code (which file, old and new sha256), workload variant,
    hyperparameters, seed, budget or ruleset, in words."""
    plan, changes = trial.plan, []
    if plan is None:
        return changes
    old_variant = (old.get("variant") or {}).get("name") if isinstance(old.get("variant"), dict) else None
    if old_variant != plan.variant:
        changes.append(f"variant {old_variant or 'none'} -> {plan.variant or 'none'}")
    for role, plugin in (("submission", plan.asked), ("optimizer", plan.optimizer), ("norm", plan.norm)):
        before = old.get(role) if isinstance(old.get(role), dict) else {}
        if before.get("name") not in (None, plugin.name):
            changes.append(f"{role} {before.get('name')} -> {plugin.name}")
        elif before.get("sha256") and before.get("sha256") != plugin.sha256:
            where = plugin.source or before.get("source") or plugin.name
            changes.append(f"{role} {plugin.name}'s source changed ({where}: sha256 "
                           f"{str(before['sha256'])[:12]}... -> {str(plugin.sha256)[:12]}...)")
    now = {"optimizer": dict(plan.hp_optimizer), "norm": dict(plan.hp_norm)}
    then = old.get("hyperparameters") or {}
    for section in ("optimizer", "norm"):
        for name in sorted(set(now[section]) | set((then.get(section) or {}))):
            a, b = (then.get(section) or {}).get(name), now[section].get(name)
            if a != b:
                changes.append(f"{section}.{name} {a!r} -> {b!r}")
    if old.get("seed") is not None and old.get("seed") != trial.seed:
        changes.append(f"seed {old.get('seed')} -> {trial.seed}")
    budget = old.get("budget") or {}
    for key, value in (("max_steps", plan.max_steps), ("eval_every_steps", plan.eval_every_steps),
                       ("eval_every_s", plan.eval_every_s), ("multiplier", plan.budget_multiplier)):
        if key in budget and budget[key] != value:
            changes.append(f"budget.{key} {budget[key]!r} -> {value!r}")
    old_rules = (old.get("tuning") or {}).get("ruleset")
    if old_rules and old_rules != (trial.extra.get("tuning") or {}).get("ruleset"):
        changes.append(f"ruleset {old_rules} -> {(trial.extra.get('tuning') or {}).get('ruleset')}")
    return changes


# --------------------------------------------------------------------------- #
# Running a sweep                                                              #
# --------------------------------------------------------------------------- #


class SweepObserver(Protocol):
    """Progress of a sweep; every call happens between timed segments."""

    def on_trial_start(self, trial: Trial) -> None: ...
    def on_eval(self, trial: Trial, row: dict[str, Any]) -> None: ...
    def on_trial_end(self, trial: Trial, record: dict[str, Any], ran: bool) -> None: ...


def _sweep_manifest(sweep: Sweep) -> dict[str, Any]:
    return {
        "sweep_id": sweep.sweep_id, "ruleset": sweep.ruleset.name, "workload": sweep.workload, "size": sweep.size,
        "label": sweep.label, "base_seed": sweep.base_seed, "studies": sweep.studies,
        "trials_per_study": sweep.trials_per_study, "search_space_source": sweep.search_space_source,
        "search_space": sweep.search_space, "max_runtime_s": sweep.max_runtime_s, "target": sweep.target,
        "trials": [{"study": t.study, "trial": t.index, "seed": t.seed, "trial_id": t.trial_id,
                    "point": t.point, "dir": str(t.run_dir.relative_to(sweep.root))} for t in sweep.trials],
    }


def check_executor(executor: Any) -> Any:
    """An :class:`harness.sweeps.executors.ExecutorSpec` from a name (``configs/executor/``) or a spec."""
    from harness.sweeps.executors import ExecutorSpec, load_executor

    return executor if isinstance(executor, ExecutorSpec) else load_executor(executor)


def run_sweep(sweep: Sweep, observer: SweepObserver | None = None, executor: Any = "local") -> SweepResult:
    """Run every trial marked ``run``, skipping finished ones.

    ``executor="local"`` runs trials one after another in this process;
    ``"submitit-local"`` and ``"slurm"`` (or an ExecutorSpec, see
    :mod:`harness.sweeps.executors`) run them as independent submitit jobs, which
    run :attr:`Trial.plan` with ``execute(plan, run_dir=..., extra=...)``: the
    records layout is the only coordination. Locally, a Ctrl-C ends the current
    trial as ``interrupted`` (rerun next time) and stops the sweep.
    """
    from harness.sweeps.executors import preflight

    spec = check_executor(executor)
    preflight(spec)
    write_json_atomic(sweep.root / "sweep.json", _sweep_manifest(sweep))
    if spec.backend != "inline":
        from harness.sweeps.executors import run_trials

        return run_trials(sweep, spec, observer)
    ran, skipped, interrupted = run_inline(sweep.trials, observer)
    return SweepResult(sweep, ran, skipped, interrupted=interrupted)


def tune(
    workload: str,
    submission: str | None = None,
    *,
    observer: SweepObserver | None = None,
    executor: str = "local",
    **kwargs: Any,
) -> SweepResult:
    """Plan and run a sweep (the notebook entry point); see :func:`plan_sweep` for arguments."""
    return run_sweep(plan_sweep(workload, submission, **kwargs), observer, executor)


__all__ = [
    "Ruleset", "Trial", "Sweep", "SweepResult", "load_ruleset", "available_rulesets", "load_search_space",
    "search_points", "plan_sweep", "run_sweep", "tune", "summarize",
]
