"""The timed runner: one workload size, one optimizer, one norm, one seed.

Timing follows AlgoPerf's rules:

* untimed: loading data onto the device, building the model and optimizer,
  evaluation, writing records;
* timed: every training step (data selection, forward, backward, update,
  compilation on first steps) and the submission's ``prepare_for_eval`` /
  ``prepare_for_train`` hooks.

The timed loop does no device synchronization, no host transfer and no file
write per step. The device is synchronized and the clock read only at eval
boundaries; the training loss is summed on the device and copied to the host
once per evaluation, which is also when divergence is detected. The only
per-step bookkeeping is one host ``perf_counter()`` read (no sync) so a run
can stop when its timed budget is spent and, for time-based cadences, know
when an evaluation is due.

A run is ``reached`` at the first evaluation whose validation metric meets
the validation target, as in AlgoPerf; a test target, where set, is
reported (``test_target_met``), never waited for.

A watchdog (harness/watchdog.py) bounds every segment between eval
boundaries and every evaluation by a hard limit (``watchdog.factor`` x the
budget, or ``watchdog.limit_s``): a step or an evaluation that does not
return ends the run with status ``error`` and a written record. It is armed
and disarmed at eval boundaries only, outside the clock; its thread sleeps
through the segment, so it adds nothing per step.

Evaluation must leave the model as it found it: every parameter and buffer
is snapshotted on the device just before ``evaluate`` and compared just after
(harness/evalguard.py), at eval boundaries only and outside the clock. Any
change (a norm layer updating running statistics in eval mode, say) ends the
run with status ``error`` and a reason naming the tensor. A submission sees
the task through ``api.TrainingView`` (batches, loss, parameter types): no
validation or test data and no ``evaluate``.

Use it from Python::

    from harness.runner import plan_run, execute
    result = execute(plan_run(workload="cifar", submission="lion", size="tiny"))
    result.record["time_to_target_s"]
"""

from __future__ import annotations

import math
import os
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from harness import api
from harness.config import compose
from harness.errors import OptbenchError, UserInputError
from harness.evalguard import ModelSnapshot, check_evaluation
from harness.records import (
    SCHEMA_VERSION,
    MetricsLog,
    make_run_dir,
    now_iso,
    seal,
    write_json_atomic,
)
from harness.registry import Plugin, Registry, WorkloadEntry, size_of
from harness.seeding import default_threads, derive_seed
from harness.watchdog import Watchdog, WatchdogExpired


class RunFailed(Exception):
    """The harness ended the run (e.g. evaluation changed the model): the
    message is the record's reason, as is."""


EXIT_CODES = {"reached": 0, "budget_exhausted": 0, "diverged": 0, "error": 1, "interrupted": 130}


class Observer(Protocol):
    """Receives progress; called only at untimed moments."""

    def on_start(self, plan: "RunPlan", run_dir: Path) -> None: ...
    def on_eval(self, row: dict[str, Any]) -> None: ...
    def on_end(self, record: dict[str, Any]) -> None: ...


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
    # this machine's seconds when the run starts (harness/speed.py); until
    # then max_runtime_s is what it came to on the calibration's class.
    # "fixed": max_runtime_s is the budget wherever the run happens.
    budget_basis: str = "fixed"
    budget_multiplier: float = 1.0
    budget_note: str = ""  # why a tiny size's budget did not travel, for the record

    @property
    def seed(self) -> int:
        return int(self.config["seed"])


@dataclass
class RunResult:
    run_dir: Path
    record: dict[str, Any]

    @property
    def status(self) -> str:
        return self.record["status"]

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.status, 1)


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
    registry: Registry | None = None,
) -> RunPlan:
    """Resolve names and compose the config; raise UserInputError on bad input.

    ``submission`` may be an optimizer or a norm; the other half defaults to
    the workload's baseline (``default_optimizer`` / ``default_norm``).
    """
    registry = registry or Registry()
    entry = registry.workload(workload)
    info = entry.info
    if size is not None:
        size_of(entry, size)  # a misspelled size fails before anything slow

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

    # Resolved after the names so typos fail fast; default_size imports torch.
    size_name = size or default_size(entry)
    size_spec = size_of(entry, size_name)

    sites = tuple(norm_plugin.meta.get("SITES", ()))
    unsupported = [s for s in info.norm_sites if s not in sites]
    if unsupported:
        raise UserInputError(
            f"norm {norm_plugin.name!r} supports sites {', '.join(sites) or 'none'}; "
            f"workload {info.name!r} needs {', '.join(info.norm_sites)}"
        )

    opt_defaults = dict(optimizer_plugin.meta.get("DEFAULTS", {}))
    norm_defaults = dict(norm_plugin.meta.get("DEFAULTS", {}) or {})
    cli_overrides = list(overrides)
    if seed is not None:
        cli_overrides.append(f"seed={seed}")
    if output is not None:
        cli_overrides.append(f"output={output}")
    if experiment is not None:
        cli_overrides.append(f"experiment={experiment}")
    config = compose(cli_overrides, {"optimizer": opt_defaults, "norm": norm_defaults})
    hp_opt = api.Hyperparameters({**opt_defaults, **config.get("optimizer", {})})
    hp_norm = api.Hyperparameters({**norm_defaults, **config.get("norm", {})})

    budget, cadence = config["budget"], config["eval"]
    deviations = [f"{k}={v}" for section in ("budget", "eval") for k, v in config[section].items() if v is not None]
    target_override = config.get("target") or {}
    if any(v is not None for v in target_override.values()):
        # A different target is a different benchmark: allowed for quick
        # experiments and tests, recorded, and never official.
        t = size_spec.target
        validation, test = target_override.get("validation"), target_override.get("test")
        size_spec = replace(size_spec, target=replace(
            t,
            validation=t.validation if validation is None else float(validation),
            test=t.test if test is None else float(test),
        ))
        deviations += [f"target.{k}={v}" for k, v in target_override.items() if v is not None]
    every_steps, every_s = cadence["every_steps"], cadence["every_s"]
    if every_steps is None and every_s is None:
        every_steps, every_s = size_spec.eval_every_steps, size_spec.eval_every_s
    watchdog = config.get("watchdog") or {}
    for name, value in (("eval.every_steps", every_steps), ("eval.every_s", every_s), ("budget.max_steps", budget["max_steps"]),
                        ("watchdog.factor", watchdog.get("factor")), ("watchdog.limit_s", watchdog.get("limit_s"))):
        if value is not None and value <= 0:
            raise UserInputError(f"{name} must be positive, got {value}")

    label = asked.name
    if asked.kind == "optimizer" and norm_plugin.name != info.default_norm:
        label = f"{optimizer_plugin.name}+{norm_plugin.name}"
    config["workload"] = {"name": info.name, "size": size_name}
    config["submission"] = {"optimizer": optimizer_plugin.name, "norm": norm_plugin.name, "asked": submission}
    multiplier = float(budget.get("multiplier") or 1.0)
    if multiplier <= 0:
        raise UserInputError(f"budget.multiplier must be positive, got {multiplier}")
    # One process's step time says nothing of several ranks' steps: a run under
    # torchrun keeps the calibration class's seconds (the record says so).
    from harness.distributed import env_world_size

    travels = size_spec.reference_steps is not None and budget["max_runtime_s"] is None
    basis = "reference_work" if travels and env_world_size() == 1 else "fixed"
    note = "distributed run: the calibration class's seconds, not re-measured" if travels and basis == "fixed" else ""
    return RunPlan(
        workload=entry,
        size=size_spec,
        optimizer=optimizer_plugin,
        norm=norm_plugin,
        asked=asked,
        label=label,
        hp_optimizer=hp_opt,
        hp_norm=hp_norm,
        config=config,
        max_runtime_s=float(budget["max_runtime_s"] or size_spec.max_runtime_s * multiplier),
        max_steps=budget["max_steps"] or size_spec.max_steps,
        eval_every_steps=every_steps,
        eval_every_s=every_s,
        deviations=deviations,
        budget_basis=basis,
        budget_multiplier=multiplier,
        budget_note=note,
    )


def resolve_data_dir(config: dict[str, Any]) -> Path:
    if config.get("data_dir"):
        return Path(config["data_dir"]).expanduser()
    return Path(os.environ.get("OPTBENCH_DATA", "~/.cache/optbench")).expanduser()


def _resolve_device(name: str):
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(f"device {name!r} requested but CUDA is not available")
    return device


def _import_task(spec: str):
    import importlib

    module, _, cls = spec.partition(":")
    return getattr(importlib.import_module(module), cls)


def watchdog_limit(config: dict[str, Any], max_runtime_s: float) -> tuple[float | None, str]:
    """(seconds a training segment or an evaluation may run, how that was set).

    ``watchdog.limit_s`` when set, else ``watchdog.factor`` x the timed budget;
    None (both null): no watchdog. A segment ends by the budget, so only a step
    (or a hook) that overran the budget many times over trips it.
    """
    settings = config.get("watchdog") or {}
    if settings.get("limit_s") is not None:
        return float(settings["limit_s"]), "watchdog.limit_s"
    if settings.get("factor") is not None:
        factor = float(settings["factor"])
        return factor * max_runtime_s, f"watchdog: {factor:g} x the timed budget of {max_runtime_s:.3g} s"
    return None, ""


def execute(
    plan: RunPlan,
    observer: Observer | None = None,
    run_dir: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> RunResult:
    """Run the plan: set up (untimed), train (timed), evaluate (untimed), record.

    Returns the record; ``status`` says how the run ended. A run that fails
    after its directory exists always leaves a complete ``run.json``.

    ``run_dir`` fixes the record directory (sweeps use ``.../study_k/trial_i``;
    an existing ``run.json`` there is replaced); by default a fresh directory
    is made under ``output/experiment/workload-size/label/``. ``extra`` is merged
    into the record (e.g. ``{"tuning": {"ruleset": ..., "study": ..., "trial": ...}}``).
    """
    import torch

    from harness import distributed
    from harness import fingerprint as fp_mod
    from harness import speed as speed_mod
    from harness import tracking
    from harness.params import count_parameters, typed_parameters
    from harness.seeding import set_determinism

    wall0 = time.perf_counter()
    started_at = now_iso()
    config = plan.config
    seed = plan.seed
    seeds = {purpose: derive_seed(seed, purpose) for purpose in ("model", "data", "submission")}
    # Under torchrun the processes of one node share its cores.
    local_procs = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if distributed.env_world_size() > 1 else 1
    threads = int(config["threads"] or max(1, default_threads() // local_procs))
    distributed.check_batch(plan.size.batch_size, distributed.env_world_size())
    dist_env, device = distributed.setup(_resolve_device(config["device"]))
    main = dist_env.is_main
    torch.set_num_threads(threads)  # before the fingerprint: threads are part of the hardware class
    fingerprint = fp_mod.collect(world_size=dist_env.world_size)
    budget_block = {"max_runtime_s": plan.max_runtime_s, "basis": "fixed", "multiplier": plan.budget_multiplier}
    if plan.budget_note:
        budget_block["note"] = plan.budget_note
    if plan.budget_basis == "reference_work":
        # Before any seeding: measuring (or a cache hit) must not change the run.
        speed = speed_mod.local_speed(plan.workload, plan.size, threads=threads, device=device,
                                      data_dir=resolve_data_dir(config), hardware_id=fingerprint.get("hardware_id"))
        budget_block = speed_mod.local_budget(plan.size, speed, plan.budget_multiplier)
        plan.max_runtime_s = budget_block["max_runtime_s"]
    set_determinism(seeds["model"], threads)
    if not main:
        observer = None  # only rank 0 reports, writes and tracks

    # Untimed set-up 1: data onto the device. A missing dataset stops here,
    # before any record exists.
    optimizer_sub = plan.optimizer.load()
    norm_sub = plan.norm.load()
    task_cls = _import_task(plan.workload.info.task)
    task: api.Task = task_cls(plan.size, device, resolve_data_dir(config), seeds["data"])
    fingerprint["distributed"] = distributed.describe_devices(dist_env, device)
    # A benchmark config may pin a hardware class: a run elsewhere still runs
    # and is recorded, but it is not official (its seconds are another machine's).
    pinned = config.get("hardware_id")
    deviations = list(plan.deviations)
    if pinned and pinned != fingerprint.get("hardware_id"):
        deviations.append(f"hardware {fingerprint.get('hardware_id')} is not the pinned {pinned}")

    if not main:
        run_dir = Path(dist_env.from_main(None))
    elif run_dir is None:
        run_dir = make_run_dir(
            Path(config["output"]),
            config["experiment"],
            f"{plan.workload.info.name}-{plan.size.name}",
            plan.label,
            run_name=f"{time.strftime('%Y%m%d-%H%M%S')}-s{seed}",
        )
    else:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)  # a rerun starts a fresh stream
    if main and dist_env.active:
        dist_env.from_main(str(run_dir))
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_dir.name,
        "experiment": config["experiment"],
        "workload": plan.workload.info.name,
        "size": plan.size.name,
        "submission": plan.asked.provenance(),
        "optimizer": plan.optimizer.provenance(),
        "norm": plan.norm.provenance(),
        "label": plan.label,
        "hyperparameters": {"optimizer": dict(plan.hp_optimizer), "norm": dict(plan.hp_norm)},
        "seed": seed,
        "seeds": seeds,
        "threads": threads,
        "device": str(device),
        "status": "running",
        "reason": "",
        "target": plan.size.target.as_dict(),
        "time_to_target_s": None,
        "steps_to_target": None,
        # The test metric at the eval that met the validation target (null when
        # missed); test_target_met is null too where the size sets no test target.
        "test_target_met": None,
        "test_value_at_target": None,
        "timed_s": 0.0,
        "eval_s": 0.0,
        "setup_s": None,
        "wall_s": None,
        "steps": 0,
        "evals": 0,
        "budget": {
            **budget_block,
            "max_runtime_s": plan.max_runtime_s,
            "max_steps": plan.max_steps,
            "eval_every_steps": plan.eval_every_steps,
            "eval_every_s": plan.eval_every_s,
            "step_hint": plan.size.step_hint,
        },
        "watchdog_s": None,  # set below: the hard limit on one segment or evaluation
        "official": not deviations,
        "deviations": deviations,
        "pinned_hardware_id": pinned,
        "model_parameters": None,
        "final_metrics": {},
        "error": None,
        "fingerprint": fingerprint,
        "data_sha256": getattr(task, "data_sha256", None),
        "distributed": {
            "world_size": dist_env.world_size,
            "backend": dist_env.backend,
            "launcher": dist_env.launcher,
            "global_batch": plan.size.batch_size,
            "batch_per_rank": plan.size.batch_size // dist_env.world_size,
            "batchnorm": None,  # set once the model is built: none | single-process | per-rank | sync
            "clock": "max over ranks, agreed at eval boundaries" if dist_env.active else "single process",
        },
        "config": config,
        "started_at": started_at,
        "finished_at": None,
        **(extra or {}),
    }
    tracker = tracking.for_run(config, record) if main else None
    if tracker is not None:
        record["tracking"] = tracker.start(plan, run_dir, record)  # untimed: counts as set-up
        observer = tracking.Tee(observer, tracker)
    if main:
        write_json_atomic(run_dir / "run.json", seal(record))
    metrics_log = MetricsLog(run_dir / "metrics.jsonl") if main else _NoLog()
    if observer:
        observer.on_start(plan, run_dir)

    step_task = distributed.ShardedTask(task, dist_env) if dist_env.active else task
    limit_s, why = watchdog_limit(config, plan.max_runtime_s)
    record["watchdog_s"] = limit_s
    watchdog = Watchdog(limit_s, why)
    loop = _Loop(plan, step_task, device, record, metrics_log, observer, wall0, dist_env, watchdog)
    try:
        watchdog.start()  # its thread sleeps until a segment is armed
        # Untimed set-up 2: model, norm transform, optimizer, schedule.
        model = build_model(task, norm_sub, plan.hp_norm, device)
        record["model_parameters"] = count_parameters(model)
        params = typed_parameters(model, task.param_types(model))
        sync_bn = bool((config.get("distributed") or {}).get("sync_batchnorm", False))
        model, record["distributed"]["batchnorm"] = distributed.wrap_model(model, dist_env, device, sync_bn)
        optimizer, schedule = build_optimizer(optimizer_sub, params, plan.hp_optimizer, plan.size.step_hint)
        torch.manual_seed(seeds["submission"])
        record["setup_s"] = time.perf_counter() - wall0
        ctx = api.StepContext(
            model=model,
            optimizer=optimizer,
            schedule=schedule,
            batch=None,
            step=0,
            hp=plan.hp_optimizer,
            step_hint=plan.size.step_hint,
            task=api.TrainingView(step_task),  # training only: no held-out data, no evaluate
        )
        loop.train(ctx, optimizer_sub)
    except WatchdogExpired:
        # Disarm first in every handler: an expiry due now must not land in here.
        watchdog.disarm()
        loop.close_segment()
        message = watchdog.fired or "step did not return within the watchdog's limit"
        record["status"], record["reason"] = "error", message
        # The traceback shows where the run's thread was when it was stopped.
        record["error"] = {"type": "WatchdogExpired", "message": message, "traceback": traceback.format_exc()}
    except KeyboardInterrupt:
        watchdog.disarm()
        loop.close_segment()
        record["status"], record["reason"] = "interrupted", "interrupted by the user (Ctrl-C)"
    except Exception as exc:
        watchdog.disarm()
        loop.close_segment()
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        record["status"] = "error"
        record["reason"] = message if isinstance(exc, RunFailed) else f"{type(exc).__name__}: {message}".rstrip(": ")
        record["error"] = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
    finally:
        watchdog.close()
        metrics_log.close()
        record["wall_s"] = time.perf_counter() - wall0
        record["finished_at"] = now_iso()
        if record["setup_s"] is None:
            record["setup_s"] = record["wall_s"]
        if main:
            write_json_atomic(run_dir / "run.json", seal(record))
        model = optimizer = schedule = params = ctx = None  # the DDP model must go before its process group
        distributed.teardown(dist_env)
    if observer:
        observer.on_end(record)
    return RunResult(run_dir, record)


def build_model(task: api.Task, norm_sub, hp_norm: api.Hyperparameters, device):
    """The workload's model with the norm submission at every norm site, on ``device``, in train mode."""
    norm_hook = norm_sub.obj.make_norm
    supported = set(norm_sub.sites)

    def norm_factory(site: str, num_features: int):
        if site not in supported:
            raise UserInputError(f"norm {norm_sub.name!r} does not support site {site!r}")
        return norm_hook(site, num_features, hp_norm)

    model = task.build_model(norm_factory)
    transform = norm_sub.hook("transform_model")
    if transform is not None:
        model = transform(model, hp_norm) or model
    model = model.to(device)
    model.train()
    return model


def build_optimizer(optimizer_sub, params, hp: api.Hyperparameters, step_hint: int):
    """(optimizer, schedule or None) of an optimizer submission."""
    optimizer = optimizer_sub.obj.make_optimizer(params, hp, step_hint)
    make_schedule = optimizer_sub.hook("make_schedule")
    return optimizer, (make_schedule(optimizer, hp, step_hint) if make_schedule else None)


class _NoLog:
    """Ranks other than 0 write no metrics."""

    def append(self, row: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class _Loop:
    """The timed training loop and its eval boundaries."""

    def __init__(self, plan, task, device, record, metrics_log, observer, wall0: float, dist=None, watchdog=None) -> None:
        import torch

        from harness.distributed import Dist

        self.dist = dist or Dist()
        self.watchdog = watchdog or Watchdog(None)
        self.plan, self.task, self.device = plan, task, device
        self.record, self.metrics_log, self.observer = record, metrics_log, observer
        self.torch = torch
        self.wall0 = wall0
        self.timed = 0.0
        self.segment_start: float | None = None
        self.best_validation: float | None = None  # for the record's reason when a run misses
        self._sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def _now(self) -> float:
        self._sync()
        return time.perf_counter()

    def open_segment(self) -> None:
        # Armed once per segment, before the clock starts: the watchdog costs
        # the timed loop nothing per step.
        self.watchdog.arm("step")
        self.segment_start = self._now()

    def close_segment(self) -> None:
        """Stop the clock (after a device sync) and add the segment to timed."""
        if self.segment_start is not None:
            self.timed += self._now() - self.segment_start
            self.segment_start = None
        self.watchdog.disarm()
        self.record["timed_s"] = self.timed

    def track_best(self, metrics: dict[str, float]) -> None:
        target = self.plan.size.target
        value = metrics.get(f"validation/{target.metric}")
        if value is None or not math.isfinite(value):
            return
        if self.best_validation is None or (value > self.best_validation if target.direction == "max" else value < self.best_validation):
            self.best_validation = value

    def train(self, ctx: api.StepContext, sub) -> None:
        torch, plan, record = self.torch, self.plan, self.record
        update = sub.hook("update") or api.default_update
        prepare_for_eval = sub.hook("prepare_for_eval")
        prepare_for_train = sub.hook("prepare_for_train")
        budget_s, max_steps = plan.max_runtime_s, plan.max_steps
        every_steps, every_s = plan.eval_every_steps, plan.eval_every_s
        next_eval_s = every_s
        loss_sum = torch.zeros((), device=self.device)
        steps_since_eval = 0
        step = 0
        perf_counter = time.perf_counter
        dist = self.dist
        # Under DDP every rank must stop at the same step without talking per
        # step: boundaries are step counts agreed at the previous boundary.
        lockstep = None
        if dist.active:
            from harness.distributed import next_boundary_step, unwrap

            lockstep = next_boundary_step(0, 0.0, None, every_steps, max_steps, next_eval_s, budget_s)
            segment_from = (0, 0.0)  # (step, timed) at the last boundary

        self.open_segment()
        while True:
            # ---- timed: one training step ---------------------------------- #
            ctx.batch = self.task.next_batch(step)
            ctx.step = step
            loss = update(ctx)
            loss_sum += loss.detach()
            step += 1
            steps_since_eval += 1
            record["steps"] = step
            if lockstep is not None:
                if step < lockstep:
                    continue
            else:
                # Host clock only (no device sync): is a boundary due?
                elapsed = self.timed + (perf_counter() - self.segment_start)
                out_of_budget = elapsed >= budget_s or (max_steps is not None and step >= max_steps)
                due = (every_steps is not None and step % every_steps == 0) or (
                    next_eval_s is not None and elapsed >= next_eval_s
                )
                if not (due or out_of_budget):
                    continue
            if prepare_for_eval is not None:
                prepare_for_eval(ctx)
            self.close_segment()

            # ---- untimed: evaluate, record, decide ------------------------- #
            if dist.active:  # the slowest rank's clock; the loss over the global batch
                self.timed = record["timed_s"] = dist.agree_max(self.timed, self.device)
                loss_sum = dist.mean(loss_sum)
            train_loss = float((loss_sum / steps_since_eval).item())
            eval_start = perf_counter()
            metrics = problem = None
            if dist.is_main:
                self.watchdog.arm("evaluation")
                with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                    ctx.model.eval()
                    with torch.no_grad():
                        model = unwrap(ctx.model) if dist.active else ctx.model
                        # Evaluation must not change the model: compared on the
                        # device, before and after, untimed (harness/evalguard.py).
                        snapshot = ModelSnapshot(model)
                        metrics = {k: float(v) for k, v in self.task.evaluate(model).items()}
                        problem = check_evaluation(snapshot, model)
                    ctx.model.train()
                self.watchdog.disarm()
            metrics, problem = dist.from_main((metrics, problem))  # every rank stops together
            record["eval_s"] += perf_counter() - eval_start
            record["evals"] += 1
            if problem is not None:
                raise RunFailed(problem)
            lr = ctx.optimizer.param_groups[0].get("lr") if hasattr(ctx.optimizer, "param_groups") else None
            row = {"step": step, "timed_s": self.timed, "train/loss": train_loss, "lr": lr, **metrics}
            target = plan.size.target
            if target.test is not None:  # reported at every eval; only the validation target ends a run
                row["test_target_met"] = target.test_met(metrics)
            row["wall_s"] = time.perf_counter() - self.wall0
            self.metrics_log.append(row)
            record["final_metrics"] = metrics
            self.track_best(metrics)
            if self.observer:
                self.observer.on_eval(row)

            if not math.isfinite(train_loss):
                record["status"], record["reason"] = "diverged", f"training loss became {train_loss} by step {step}"
                return
            if target.met(metrics) and self.timed <= budget_s:
                record["status"] = "reached"
                record["time_to_target_s"], record["steps_to_target"] = self.timed, step
                record["reason"] = f"validation {target.metric} {metrics.get('validation/' + target.metric):.4g} met the target {target.validation:g} at step {step}"
                record["test_target_met"] = target.test_met(metrics)
                record["test_value_at_target"] = metrics.get(f"test/{target.metric}")
                if record["test_target_met"] is not None:
                    record["reason"] += f"; {describe_test_target(target, metrics)}"
                return
            if self.timed >= budget_s:
                record["status"] = "budget_exhausted"
                record["reason"] = f"timed budget of {budget_s:g} s spent at step {step}; {short_of_target(target, metrics, self.best_validation)}"
                return
            if max_steps is not None and step >= max_steps:
                record["status"] = "budget_exhausted"
                record["reason"] = f"step limit of {max_steps} reached; {short_of_target(target, metrics, self.best_validation)}"
                return
            while next_eval_s is not None and next_eval_s <= self.timed:
                next_eval_s += every_s
            if lockstep is not None:
                s_per_step = (self.timed - segment_from[1]) / max(1, step - segment_from[0])
                lockstep = next_boundary_step(step, self.timed, s_per_step, every_steps, max_steps, next_eval_s, budget_s)
                segment_from = (step, self.timed)
            loss_sum.zero_()
            steps_since_eval = 0
            self.open_segment()
            if prepare_for_train is not None:
                prepare_for_train(ctx)


def short_of_target(target: api.Target, metrics: dict[str, float], best: float | None) -> str:
    """Why a run that ran out of budget missed: its best validation value against the target."""
    key, sign = f"validation/{target.metric}", (">" if target.direction == "max" else "<")
    if target.met(metrics):  # met at this very evaluation, but the clock had run out before it
        return f"{key} {metrics[key]:.4g} met the target {sign} {target.validation:g} only after the budget"
    if best is None:
        return f"no finite {key} (target {sign} {target.validation:g})"
    return f"best {key} {best:.4g}, target {sign} {target.validation:g}"


def describe_test_target(target: api.Target, metrics: dict[str, float]) -> str:
    """The test metric against its target at the eval that met the validation target
    (reported as AlgoPerf does; it does not decide ``reached``)."""
    value, sign = metrics.get(f"test/{target.metric}"), (">" if target.direction == "max" else "<")
    shown = f"{value:.4g}" if isinstance(value, (int, float)) else "missing"
    verdict = "met" if target.test_met(metrics) else "missed"
    return f"test {target.metric} {shown} {verdict} its target {sign} {target.test:g}"


def run(workload: str, submission: str | None = None, observer: Observer | None = None, **kwargs: Any) -> RunResult:
    """Plan and execute in one call (the notebook entry point)."""
    return execute(plan_run(workload, submission, **kwargs), observer)


__all__ = ["RunPlan", "RunResult", "plan_run", "execute", "run", "OptbenchError"]
