"""Planning a run: names resolved, the config composed once, every value typed.

``plan_run`` is where a run's settings are decided and checked, before
anything slow happens, and where a run's *deviations* are decided: every
setting that departs from the size's definition (budget, eval cadence,
target, a hardware class other than the pinned one) is one, and a run with
any is unofficial. Nothing else in the harness decides it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from harness import api
from harness.common.config import check_hyperparameter, compose
from harness.errors import UserInputError
from harness.plugins.registry import Plugin, Registry, WorkloadEntry, size_of
from harness.run.diagnostics import settings as diagnostics_settings


@dataclass
class RunPlan:
    """A fully resolved, validated run; nothing has been written yet."""

    workload: WorkloadEntry
    size: api.Size
    optimizer: Plugin
    norm: Plugin
    asked: Plugin  # the submission named on the command line
    label: str  # results sub-directory for this optimizer/norm pairing
    hp_optimizer: api.Hyperparameters
    hp_norm: api.Hyperparameters
    config: dict[str, Any]
    max_runtime_s: float
    max_steps: int | None
    eval_every_steps: int | None
    eval_every_s: float | None
    deviations: list[str] = field(default_factory=list)
    # "reference_work": the size's budget is tuned-baseline steps, turned into
    # this machine's seconds when the run starts (harness/run/speed.py); until
    # then max_runtime_s is what it came to on the calibration's class.
    # "fixed": max_runtime_s is the budget wherever the run happens.
    budget_basis: str = "fixed"
    budget_multiplier: float = 1.0
    budget_note: str = ""  # why a tiny size's budget did not travel, for the record
    # A workload variant (api.WorkloadInfo.variants): its canonical name and the
    # settings the task is built with; None and {} train the workload itself.
    variant: str | None = None
    variant_settings: dict[str, Any] = field(default_factory=dict)

    @property
    def workload_dir(self) -> str:
        """The results directory of the workload size: ``gpt-tiny``, a variant's
        ``gpt-tiny+qk_norm``, so variant runs never sit with the base's."""
        base = f"{self.workload.info.name}-{self.size.name}"
        return f"{base}+{self.variant}" if self.variant else base
    # The workload hyperparameters given (api.WORKLOAD_HYPERPARAMETERS), also in
    # hp_optimizer as AlgoPerf's hyperparameters hold them; empty: none given.
    hp_workload: api.Hyperparameters = field(default_factory=api.Hyperparameters)

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def synthetic(self) -> bool:
        """Random inputs of the real shapes instead of the dataset (``data.synthetic``):
        a measurement of step time, memory and MFU, with no target (docs/gpu.md)."""
        return bool((self.config.get("data") or {}).get("synthetic"))

    def deviations_on(self, hardware_id: str | None) -> list[str]:
        """The run's deviations once it knows its hardware class: the plan's,
        and a class other than the pinned one (its seconds are another machine's)."""
        pinned = self.config.get("hardware_id")
        if pinned and pinned != hardware_id:
            return [*self.deviations, f"hardware {hardware_id} is not the pinned {pinned}"]
        return list(self.deviations)


def config_deviations(config: Mapping[str, Any]) -> list[str]:
    """What in a composed config departs from the size's definition: budget,
    eval cadence, target. Each makes the run unofficial (``RunPlan.deviations_on``
    adds the hardware pin, known only when the run starts). Diagnostics are one:
    they add a gradient norm to every timed step."""
    found = [f"{k}={v}" for section in ("budget", "eval") for k, v in config[section].items() if v is not None]
    found += ["data.synthetic=true"] if (config.get("data") or {}).get("synthetic") else []
    found += ["compile=true"] if config.get("compile") else []
    found += [f"target.{k}={v}" for k, v in (config.get("target") or {}).items() if v is not None]
    return found + (["diagnostics=true"] if diagnostics_settings(config) is not None else [])


def default_size(entry: WorkloadEntry) -> str:
    """``full`` when a CUDA device is present (and the workload has one), else ``tiny``."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_cuda = False
    return "full" if has_cuda and "full" in entry.info.sizes else "tiny"


def plan_run(
    workload: str,
    submission: str | None = None,
    *,
    size: str | None = None,
    norm: str | None = None,
    seed: int | None = None,
    output: str | Path | None = None,
    experiment: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    hyperparameters: Mapping[str, Mapping[str, Any]] | None = None,
    ruleset_multiplier: float | None = None,
    pinned_hardware_id: str | None = None,
    variant: str | None = None,
    registry: Registry | None = None,
) -> RunPlan:
    """Resolve names and compose the config; raise UserInputError on bad input.

    ``submission`` may be an optimizer or a norm; the other half defaults to
    the workload's baseline (``default_optimizer`` / ``default_norm``).

    ``overrides`` are the user's ``key=value`` strings (the CLI's edge); what
    callers know as values comes typed and is never turned into strings:
    ``hyperparameters`` ({"optimizer": {...}, "norm": {...}}, applied over the
    overrides), a ruleset's budget multiplier (``ruleset_multiplier``: the
    ruleset's rule, so not a deviation), hardware pin (``pinned_hardware_id``) and variant (:func:`_variant`).
    """
    registry = registry or Registry()
    entry = registry.workload(workload)
    info = entry.info
    if size is not None:
        size_of(entry, size)  # a misspelled size fails before anything slow
    asked, optimizer_plugin, norm_plugin = _plugins(registry, info, submission, norm)
    # Resolved after the names so typos fail fast; default_size imports torch.
    size_name = size or default_size(entry)
    size_spec = size_of(entry, size_name)

    halves = {"optimizer": optimizer_plugin, "norm": norm_plugin}
    taken, unused = _workload_names(registry, info, optimizer_plugin, overrides, hyperparameters or {})
    config, defaults = _compose(overrides, halves, hyperparameters or {},
                                {"seed": seed, "output": output, "experiment": experiment, "hardware_id": pinned_hardware_id,
                                 "variant": variant}, {"optimizer": taken + unused})
    opt_defaults, norm_defaults = defaults["optimizer"], defaults["norm"]
    deviations = config_deviations(config)
    budget = config["budget"]
    if ruleset_multiplier is not None and budget.get("multiplier") is None:
        budget["multiplier"] = float(ruleset_multiplier)  # the ruleset's rule: recorded, not a deviation
    size_spec, deviations = _as_configured(size_spec, config, optimizer_plugin, info, deviations)
    every_steps, every_s = _cadence(config, size_spec)

    label = _label(info, asked, optimizer_plugin, norm_plugin)
    config["workload"] = {"name": info.name, "size": size_name}
    config["submission"] = {"optimizer": optimizer_plugin.name, "norm": norm_plugin.name, "asked": submission}
    multiplier = float(budget.get("multiplier") or 1.0)
    if multiplier <= 0:
        raise UserInputError(f"budget.multiplier must be positive, got {multiplier}")
    basis, note = _budget_basis(size_spec, budget)
    return RunPlan(
        workload=entry,
        size=size_spec,
        optimizer=optimizer_plugin,
        norm=norm_plugin,
        asked=asked,
        label=label,
        hp_optimizer=api.Hyperparameters({**opt_defaults, **config.get("optimizer", {})}),
        hp_norm=api.Hyperparameters({**norm_defaults, **config.get("norm", {})}),
        config=config,
        max_runtime_s=float(budget["max_runtime_s"] or size_spec.max_runtime_s * multiplier),
        max_steps=budget["max_steps"] or size_spec.max_steps,
        eval_every_steps=every_steps,
        eval_every_s=every_s,
        deviations=deviations,
        budget_basis=basis,
        budget_multiplier=multiplier,
        budget_note=note,
        **_variant(info, config),
        hp_workload=_workload_values(config, taken, optimizer_plugin, unused),
    )


def _label(info: api.WorkloadInfo, asked: Plugin, optimizer: Plugin, norm: Plugin) -> str:
    """The results sub-directory of an optimizer/norm pairing."""
    if asked.kind == "optimizer" and norm.name != info.default_norm:
        return f"{optimizer.name}+{norm.name}"
    return asked.name


def _compose(overrides, halves: Mapping[str, Plugin], hyperparameters: Mapping[str, Mapping[str, Any]],
             settings: Mapping[str, Any], extra: Mapping[str, tuple[str, ...]] | None = None,
             ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(config, each half's DEFAULTS): the user's overrides composed and checked
    against the submissions' DEFAULTS, SEARCH_SPACE and ALIASES (and the
    ``extra`` names a section also accepts: the workload's hyperparameters),
    then the typed settings (seed, output, ...) and hyperparameters over them."""
    defaults = {s: dict(p.meta.get("DEFAULTS") or {}) for s, p in halves.items()}
    # The extra names have no default of the submission's, so any type passes
    # here; _workload_values checks their values.
    names = {s: {**dict.fromkeys((extra or {}).get(s, ())), **d} for s, d in defaults.items()}
    spaces = {s: p.meta.get("SEARCH_SPACE") for s, p in halves.items()}
    aliases = {s: p.meta.get("ALIASES") or {} for s, p in halves.items()}
    config = compose(overrides, names, search_spaces=spaces, aliases=aliases)
    for key, value in settings.items():
        if value is not None:
            config[key] = str(value) if key == "output" else value
    _apply_hyperparameters(config, hyperparameters, names, spaces, aliases)
    return config, defaults


def _variant(info: api.WorkloadInfo, config: dict[str, Any]) -> dict[str, Any]:
    """RunPlan's ``variant`` and ``variant_settings`` of the config's workload
    variant, ``a+b`` for several (api.WorkloadInfo.resolve_variant), the config
    left naming it canonically; None and {} for the workload itself. A variant
    is not a deviation: it is a workload of its own on the boards, with its base
    size's target and budget."""
    if not config.get("variant"):
        return {"variant": None, "variant_settings": {}}
    name, settings = info.resolve_variant(config["variant"])
    config["variant"] = name
    return {"variant": name, "variant_settings": settings}


def _workload_names(registry: Registry, info: api.WorkloadInfo, optimizer: Plugin, overrides,
                    given: Mapping[str, Mapping[str, Any]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the workload hyperparameters this run accepts among the optimizer's:
    those the workload takes and the optimizer does not call its own; those
    a search space sets that the workload does not take).

    An override naming one the workload does not take is refused: it is the
    user's mistake. A search space (typed ``hyperparameters``, an AlgoPerf
    module's own) may set one for a workload without it, as AlgoPerf's
    spaces set ``dropout_rate`` for every workload and a ResNet has no
    dropout: it is accepted, not applied, and the record says so
    (``config.not_applied``). One the optimizer's update refuses is refused."""
    own = set(optimizer.meta.get("DEFAULTS") or {}) - set(_model_defaults(optimizer))
    taken = tuple(n for n in info.takes() if n not in own)
    asked = [o.split("=", 1)[0].lstrip("+~").partition(".")[2] for o in overrides
             if "=" in o and o.lstrip("+~").startswith("optimizer.")]
    unused: list[str] = []
    for name in [*asked, *(given.get("optimizer") or {}), *_model_defaults(optimizer)]:
        if name not in api.WORKLOAD_HYPERPARAMETERS or name in own:
            continue
        if name not in taken and name not in asked:
            unused += [] if name in unused else [name]
            continue
        if name not in taken:
            takers = sorted(e.info.name for e in registry.workloads.values() if name in e.info.takes())
            raise UserInputError(f"{info.name} takes no {name}; workloads that do: {', '.join(takers) or 'none'}")
        refused = (optimizer.meta.get("REFUSES") or {}).get(name)
        if refused:
            raise UserInputError(f"{optimizer.name} refuses {name}: {refused}")
    return taken, tuple(unused)


def _model_defaults(optimizer: Plugin) -> dict[str, Any]:
    """An AlgoPerf module's dropout rates at its run point: AlgoPerf builds the
    model with the trial's dropout (``init_model_fn``), so the workload takes
    them. Label smoothing and clipping stay the module's own: it passes them to
    ``loss_fn`` and clips itself."""
    if optimizer.meta.get("FORMAT") != "algoperf":
        return {}
    return {n: v for n, v in (optimizer.meta.get("DEFAULTS") or {}).items() if n in ("dropout_rate", "aux_dropout_rate")}


def _workload_values(config: dict[str, Any], taken: tuple[str, ...], optimizer: Plugin,
                     unused: tuple[str, ...] = ()) -> api.Hyperparameters:
    """The workload hyperparameters given, their values checked; those a search
    space set that the workload does not take are noted in the config (and so
    in the record) as not applied."""
    if unused:
        name = config["workload"]["name"]
        config["not_applied"] = {n: f"{name} does not take {n}: set by the search space, not applied (as AlgoPerf)"
                                 for n in unused}
    given = {**_model_defaults(optimizer), **(config.get("optimizer") or {})}
    values = {n: v for n, v in given.items() if n in taken}
    for name, value in values.items():
        problem = api.check_workload_hyperparameter(name, value)
        if problem:
            raise UserInputError(f"optimizer.{name}: {problem}")
    return api.Hyperparameters(values)


def _plugins(registry: Registry, info: api.WorkloadInfo, submission: str | None, norm: str | None):
    """(asked, optimizer, norm): ``submission`` may be either half; the other
    defaults to the workload's baseline, and the norm must fit its sites."""
    asked = registry.submission(submission or info.default_optimizer)
    if asked.kind == "norm":
        if norm is not None:
            raise UserInputError(f"{asked.name!r} is a norm submission; pass an optimizer as --submission with --norm")
        norm_plugin, optimizer_plugin = asked, registry.submission(info.default_optimizer, "optimizer")
    elif asked.kind == "optimizer":
        optimizer_plugin = asked
        norm_plugin = registry.submission(norm or info.default_norm, "norm")
    else:
        raise UserInputError(f"submission {asked.name!r} has unknown KIND {asked.kind!r}")
    sites = tuple(norm_plugin.meta.get("SITES", ()))
    unsupported = [s for s in info.norm_sites if s not in sites]
    if unsupported:
        raise UserInputError(
            f"norm {norm_plugin.name!r} supports sites {', '.join(sites) or 'none'}; "
            f"workload {info.name!r} needs {', '.join(info.norm_sites)}"
        )
    return asked, optimizer_plugin, norm_plugin


def _apply_hyperparameters(config: dict[str, Any], given: Mapping[str, Mapping[str, Any]],
                           defaults: Mapping[str, Mapping[str, Any]],
                           spaces: Mapping[str, Any] | None = None,
                           aliases_of: Mapping[str, Mapping[str, str]] | None = None) -> None:
    """Typed hyperparameters over the composed config; unknown names are refused,
    and so is a value that does not fit its default's type or its SEARCH_SPACE
    entry (the check ``compose`` makes of overrides)."""
    for section, names in defaults.items():
        aliases = (aliases_of or {}).get(section)
        values = {api.canonical_name(k, names, aliases): v for k, v in (given.get(section) or {}).items()}
        unknown_names = sorted(set(values) - set(names))
        if unknown_names:
            raise UserInputError(api.unknown_hyperparameter(section, unknown_names[0], names))
        for name, value in values.items():
            check_hyperparameter(section, name, value, names, (spaces or {}).get(section))
        config[section] = {**(config.get(section) or {}), **values}


def _with_target_overrides(size_spec: api.Size, target_override: Mapping[str, Any]) -> api.Size:
    """The size with ``target.validation`` / ``target.test`` overrides applied.

    A different target is a different benchmark: allowed for quick
    experiments and tests, recorded, and never official (config_deviations)."""
    if all(v is None for v in target_override.values()):
        return size_spec
    t = size_spec.target
    validation, test = target_override.get("validation"), target_override.get("test")
    return replace(size_spec, target=replace(
        t,
        validation=t.validation if validation is None else float(validation),
        test=t.test if test is None else float(test),
    ))


def _with_batch_size(size_spec: api.Size, batch_size: Any, deviations: list[str]) -> tuple[api.Size, list[str]]:
    """The size with config ``batch_size`` as its training batch (the workloads
    read ``size.batch_size``); a batch other than the size's own is a deviation."""
    if batch_size is None:
        return size_spec, deviations
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    if batch_size == size_spec.batch_size:
        return size_spec, deviations
    return replace(size_spec, batch_size=batch_size), [*deviations, f"batch_size={batch_size}"]


def _as_configured(size_spec: api.Size, config: Mapping[str, Any], optimizer: Plugin, info: api.WorkloadInfo,
                   deviations: list[str]) -> tuple[api.Size, list[str]]:
    """The size as this run trains it: target overrides, the batch size
    (``batch_size``, or an AlgoPerf module's choice on a GPU size), synthetic
    data checked."""
    size_spec = _with_target_overrides(size_spec, config.get("target") or {})
    size_spec, deviations = _with_batch_size(size_spec, config.get("batch_size"), deviations)
    _check_synthetic(config, size_spec)
    return _with_submission_batch_size(size_spec, optimizer, info, config), deviations


def _with_submission_batch_size(size_spec: api.Size, optimizer: Plugin, info: api.WorkloadInfo,
                                config: Mapping[str, Any]) -> api.Size:
    """On the GPU sizes an AlgoPerf module chooses its batch size, as in AlgoPerf
    (``get_batch_size`` with AlgoPerf's name of the workload); not a deviation.
    Tiny sizes keep the workload's (their targets and budgets were calibrated
    at it), as does a module that raises for the workload (AlgoPerf's
    baselines raise ValueError for workloads they do not list)."""
    if optimizer.meta.get("FORMAT") != "algoperf" or size_spec.device != "cuda" or config.get("batch_size") is not None:
        return size_spec
    from harness.plugins.algoperf import algoperf_workload_name

    name = algoperf_workload_name(info.name)
    if name is None:
        return size_spec
    try:
        chosen = optimizer.load(check=False).module.get_batch_size(name)
    except Exception:
        return size_spec
    if isinstance(chosen, bool) or not isinstance(chosen, int) or chosen < 1:
        raise UserInputError(f"{optimizer.name}: get_batch_size({name!r}) returned {chosen!r}; AlgoPerf expects a positive int")
    return replace(size_spec, batch_size=chosen)


def _check_synthetic(config: Mapping[str, Any], size_spec: api.Size) -> None:
    """``data.synthetic`` is a boolean, and only for the GPU sizes: a tiny size's
    data ships with optbench or is generated, so there is nothing to stand in for."""
    synthetic = (config.get("data") or {}).get("synthetic")
    if synthetic is not None and not isinstance(synthetic, bool):
        raise UserInputError(f"data.synthetic must be true or false, got {synthetic!r}")
    if synthetic and size_spec.device != "cuda":
        raise UserInputError(
            f"data.synthetic=true (--synthetic-data) is for the GPU sizes (full): size {size_spec.name!r} "
            "needs no download, its data ships with optbench or is generated")


def _cadence(config: Mapping[str, Any], size_spec: api.Size) -> tuple[int | None, float | None]:
    """(eval every steps, eval every seconds): the config's, else the size's; every limit positive."""
    cadence, budget, watchdog = config["eval"], config["budget"], config.get("watchdog") or {}
    every_steps, every_s = cadence["every_steps"], cadence["every_s"]
    if every_steps is None and every_s is None:
        every_steps, every_s = size_spec.eval_every_steps, size_spec.eval_every_s
    for name, value in (("eval.every_steps", every_steps), ("eval.every_s", every_s), ("budget.max_steps", budget["max_steps"]),
                        ("watchdog.factor", watchdog.get("factor")), ("watchdog.limit_s", watchdog.get("limit_s"))):
        if value is not None and value <= 0:
            raise UserInputError(f"{name} must be positive, got {value}")
    return every_steps, every_s


def _budget_basis(size_spec: api.Size, budget: Mapping[str, Any]) -> tuple[str, str]:
    """(basis, note): "reference_work" when the size's budget travels as tuned-
    baseline steps (harness/run/speed.py), else "fixed" seconds.

    One process's step time says nothing of several ranks' steps: a run under
    torchrun keeps the calibration class's seconds (the record says so)."""
    from harness.run.distributed import env_world_size

    travels = size_spec.reference_steps is not None and budget["max_runtime_s"] is None
    basis = "reference_work" if travels and env_world_size() == 1 else "fixed"
    note = "distributed run: the calibration class's seconds, not re-measured" if travels and basis == "fixed" else ""
    return basis, note


__all__ = ["RunPlan", "plan_run", "default_size", "config_deviations"]
