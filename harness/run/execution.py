"""Executing a plan: one workload size, one optimizer, one norm, one seed.

``execute`` reads top to bottom as the run's phases, all untimed but the
training itself (harness/run/loop.py):

1. **machine**: threads, devices, fingerprint, this machine's budget
   (harness/run/speed.py) and the size's model FLOPs per step
   (harness/run/flops.py), measured before any seeding;
2. **load**: the plugins' code and the task's data onto the device; a missing
   dataset stops here, before any record exists;
3. **record**: the run directory and its record (harness/run/records.py,
   built next to its schema), written sealed, with the metrics log opened;
4. **train**: model, norm, optimizer and schedule built, then the timed loop,
   bounded by the watchdog (harness/run/watchdog.py);
5. **finish**: whatever happened, achieved FLOP/s and MFU are set, a
   complete record is written, and a distributed run's processes are torn down.

Use it from Python::

    from harness.run import plan_run, execute
    result = execute(plan_run(workload="cifar", submission="lion", size="tiny"))
    result.record["time_to_target_s"]
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness import api
from harness.api import Status
from harness.common.seeding import default_threads, derive_seed
from harness.run import build, records
from harness.run.loop import NoLog, RunFailed, TimedLoop
from harness.run.plan import RunPlan, plan_run
from harness.run.watchdog import Watchdog, WatchdogExpired


class Observer(Protocol):
    """Receives progress; called only at untimed moments."""

    def on_start(self, plan: RunPlan, run_dir: Path) -> None: ...
    def on_eval(self, row: dict[str, Any]) -> None: ...
    def on_end(self, record: dict[str, Any]) -> None: ...


@dataclass
class RunResult:
    run_dir: Path
    record: dict[str, Any]

    @property
    def status(self) -> str:
        return self.record["status"]

    @property
    def exit_code(self) -> int:
        status = Status.of(self.status)
        return status.exit_code if status else 1


@dataclass
class Machine:
    """What phase 1 decided about where the run happens."""

    seeds: dict[str, int]
    threads: int
    dist: Any  # harness.run.distributed.Dist
    device: Any  # torch.device
    fingerprint: dict[str, Any]
    budget: dict[str, Any]  # the record's budget block
    compute: dict[str, Any] | None = None  # the record's compute block (harness/run/flops.py)


def execute(plan: RunPlan, observer: Observer | None = None, run_dir: Path | None = None,
            extra: dict[str, Any] | None = None) -> RunResult:
    """Run the plan: set up (untimed), train (timed), evaluate (untimed), record.

    Returns the record; ``status`` says how the run ended. A run that fails
    after its directory exists always leaves a complete ``run.json``.

    ``run_dir`` fixes the record directory (sweeps use ``.../study_k/trial_i``;
    an existing ``run.json`` there is replaced); by default a fresh directory
    is made under ``output/experiment/workload-size/label/``. ``extra`` is merged
    into the record (e.g. ``{"tuning": {"ruleset": ..., "study": ..., "trial": ...}}``).
    """
    from harness.run import diagnostics, distributed, tracking
    from harness.run import flops as flops_mod

    wall0, started_at = time.perf_counter(), records.now_iso()
    machine = _set_up_machine(plan)
    main = machine.dist.is_main
    if not main:
        observer = None  # only rank 0 reports, writes and tracks
    optimizer_sub, norm_sub, task = _load(plan, machine)
    run_dir = _run_dir(plan, machine, run_dir)
    record = records.new_record(
        plan, run_dir=run_dir, seeds=machine.seeds, threads=machine.threads, device=machine.device,
        fingerprint=machine.fingerprint, data_sha256=getattr(task, "data_sha256", None), budget=machine.budget,
        deviations=plan.deviations_on(machine.fingerprint.get("hardware_id")),
        distributed=distributed.record_block(machine.dist, plan.size.batch_size), started_at=started_at,
        compute=machine.compute, extra=extra)
    tracker = tracking.for_run(plan.config, record) if main else None
    if tracker is not None:
        record["tracking"] = tracker.start(plan, run_dir, record)  # untimed: counts as set-up
        observer = tracking.Tee(observer, tracker)
    if main:
        records.write_record(run_dir, record)
    metrics_log = records.MetricsLog(run_dir / records.METRICS_FILE) if main else NoLog()
    if observer:
        observer.on_start(plan, run_dir)

    step_task = distributed.ShardedTask(task, machine.dist) if machine.dist.active else task
    limit_s, why = watchdog_limit(plan.config, plan.max_runtime_s)
    record["watchdog_s"] = limit_s
    watchdog = Watchdog(limit_s, why)
    loop = TimedLoop(plan, step_task, machine.device, record, metrics_log, observer, wall0, machine.dist, watchdog)
    ctx = None
    try:
        watchdog.start()  # its thread sleeps until a segment is armed
        ctx = _training_context(plan, machine, task, step_task, optimizer_sub, norm_sub, record)
        loop.diagnostics = diagnostics.for_run(plan.config, task, distributed.unwrap(ctx.model), machine.device)
        record["setup_s"] = time.perf_counter() - wall0
        loop.train(ctx, optimizer_sub)
    except (WatchdogExpired, KeyboardInterrupt, Exception) as exc:
        # Disarm first: an expiry due now must not land in the handling.
        watchdog.disarm()
        loop.close_segment()
        _record_failure(record, exc, watchdog)
    finally:
        watchdog.close()
        metrics_log.close()
        _check_timing(record, loop.segments)
        flops_mod.finish(record.get("compute"), record["steps"], record["timed_s"])
        record["wall_s"] = time.perf_counter() - wall0
        record["finished_at"] = records.now_iso()
        if record["setup_s"] is None:
            record["setup_s"] = record["wall_s"]
        if main:
            records.write_record(run_dir, record)
        ctx = None  # the DDP model must go before its process group
        distributed.teardown(machine.dist)
    if observer:
        observer.on_end(record)
    return RunResult(run_dir, record)


def _set_up_machine(plan: RunPlan) -> Machine:
    """Phase 1: threads, devices, fingerprint, and the budget in this machine's seconds."""
    import torch

    from harness.common.seeding import set_determinism
    from harness.run import distributed
    from harness.run import fingerprint as fp_mod
    from harness.run import flops as flops_mod
    from harness.run import speed as speed_mod

    config = plan.config
    seeds = {purpose: derive_seed(plan.seed, purpose) for purpose in ("model", "data", "submission")}
    # Under torchrun the processes of one node share its cores.
    local_procs = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if distributed.env_world_size() > 1 else 1
    threads = int(config["threads"] or max(1, default_threads() // local_procs))
    distributed.check_batch(plan.size.batch_size, distributed.env_world_size())
    dist_env, device = distributed.setup(build.resolve_device(config["device"]))
    torch.set_num_threads(threads)  # before the fingerprint: threads are part of the hardware class
    fingerprint = fp_mod.collect(world_size=dist_env.world_size)
    budget = {"max_runtime_s": plan.max_runtime_s, "basis": "fixed", "multiplier": plan.budget_multiplier}
    if plan.budget_note:
        budget["note"] = plan.budget_note
    if plan.budget_basis == "reference_work":
        # Before any seeding: measuring (or a cache hit) must not change the run.
        speed = speed_mod.local_speed(plan.workload, plan.size, threads=threads, device=device,
                                      data_dir=build.resolve_data_dir(config), hardware_id=fingerprint.get("hardware_id"))
        budget = speed_mod.local_budget(plan.size, speed, plan.budget_multiplier)
        plan.max_runtime_s = budget["max_runtime_s"]
    # Model FLOPs per step, counted (or cached) on a task and model of its own, in
    # a forked RNG state, before any seeding: the run never sees it.
    compute = flops_mod.compute_block(plan, device, build.resolve_data_dir(config), devices=dist_env.world_size)
    set_determinism(seeds["model"], threads)
    return Machine(seeds, threads, dist_env, device, fingerprint, budget, compute)


def _load(plan: RunPlan, machine: Machine):
    """Phase 2: (optimizer code, norm code, task with its data on the device)."""
    from harness.run import distributed

    optimizer_sub = plan.optimizer.load()
    norm_sub = plan.norm.load()
    task = build.make_task(plan.workload.info.task, plan.size, machine.device, build.resolve_data_dir(plan.config),
                           machine.seeds["data"], synthetic=plan.synthetic,
                           settings=plan.variant_settings if plan.variant else None)  # settings only for a variant
    task.hyperparameters = plan.hp_workload  # before build_model: dropout is the model's
    machine.fingerprint["distributed"] = distributed.describe_devices(machine.dist, machine.device)
    return optimizer_sub, norm_sub, task


def _run_dir(plan: RunPlan, machine: Machine, run_dir: Path | None) -> Path:
    """Phase 3: the record's directory (rank 0 makes it, the others are told)."""
    config = plan.config
    if not machine.dist.is_main:
        return Path(machine.dist.from_main(None))
    if run_dir is None:
        run_dir = records.make_run_dir(
            Path(config["output"]), config["experiment"], plan.workload_dir, plan.label,
            run_name=f"{time.strftime('%Y%m%d-%H%M%S')}-s{plan.seed}",
        )
    else:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / records.METRICS_FILE).unlink(missing_ok=True)  # a rerun starts a fresh stream
    if machine.dist.active:
        machine.dist.from_main(str(run_dir))
    return run_dir


def _training_context(plan: RunPlan, machine: Machine, task, step_task, optimizer_sub, norm_sub,
                      record: dict[str, Any]) -> api.StepContext:
    """Phase 4's set-up, untimed: model with its norm, optimizer and schedule."""
    import torch

    from harness.params import count_parameters, typed_parameters
    from harness.run import distributed

    model = build.build_model(task, norm_sub, plan.hp_norm, machine.device)
    record["model_parameters"] = count_parameters(model)
    params = typed_parameters(model, task.param_types(model))
    sync_bn = bool((plan.config.get("distributed") or {}).get("sync_batchnorm", False))
    model, record["distributed"]["batchnorm"] = distributed.wrap_model(model, machine.dist, machine.device, sync_bn)
    if plan.config.get("compile"):  # after typing the parameters: compiling renames them, not the tensors
        model = torch.compile(model)
    optimizer, schedule = build.build_optimizer(optimizer_sub, params, plan.hp_optimizer, plan.size.step_hint)
    torch.manual_seed(machine.seeds["submission"])
    ctx = api.StepContext(
        model=model, optimizer=optimizer, schedule=schedule, batch=None, step=0, hp=plan.hp_optimizer,
        step_hint=plan.size.step_hint,
        task=api.TrainingView(step_task),  # training only: no held-out data, no evaluate
        grad_clip=plan.hp_workload.get("grad_clip"),
        workload=plan.workload.info.name, seed=machine.seeds["submission"],
    )
    setup = optimizer_sub.hook("setup")
    if setup is not None:  # untimed, as AlgoPerf's init_optimizer_state
        notes = setup(ctx) or {}
        record["optimizer"].update(notes)
        if plan.asked is plan.optimizer:
            record["submission"].update(notes)
    return ctx


def _record_failure(record: dict[str, Any], exc: BaseException, watchdog: Watchdog) -> None:
    """The status, reason and error of a run that did not end at an eval boundary."""
    if isinstance(exc, WatchdogExpired):
        message = watchdog.fired or "step did not return within the watchdog's limit"
        record["status"], record["reason"] = Status.ERROR.value, message
        # The traceback shows where the run's thread was when it was stopped.
        record["error"] = {"type": "WatchdogExpired", "message": message, "traceback": traceback.format_exc()}
    elif isinstance(exc, KeyboardInterrupt):
        record["status"], record["reason"] = Status.INTERRUPTED.value, "interrupted by the user (Ctrl-C)"
    else:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        record["status"] = Status.ERROR.value
        record["reason"] = message if isinstance(exc, RunFailed) else f"{type(exc).__name__}: {message}".rstrip(": ")
        record["error"] = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc(),
                           "plugin_frames": getattr(exc, "plugin_frames", [])}


def _check_timing(record: dict[str, Any], segments: list[dict[str, Any]]) -> None:
    """Was the machine quiet while the clock ran (harness/run/timing.py)? A
    contended run is kept, and made unofficial with a deviation saying why."""
    from harness.run import timing

    reason = timing.contention(segments)
    rates = [s["steps_per_s"] for s in segments if s.get("steps_per_s")]
    record["timing"] = {
        "segments": len(segments),
        "best_steps_per_s": max(rates, default=None),
        "worst_steps_per_s": min(rates, default=None),
        "max_others_cpu": max((s["others_cpu"] for s in segments if "others_cpu" in s), default=None),
        "max_steal": max((s["steal"] for s in segments if "steal" in s), default=None),
        "min_cpu_share": min((s["cpu_share"] for s in segments if "cpu_share" in s), default=None),
        "contended": reason,
        "per_segment": segments,  # {first_step, last_step, steps, seconds, steps_per_s, cpu_share, others_cpu, steal}
    }
    if reason:
        record["deviations"] = [*record["deviations"], reason]
        record["official"] = False


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


def run(workload: str, submission: str | None = None, observer: Observer | None = None, **kwargs: Any) -> RunResult:
    """Plan and execute in one call (the notebook entry point)."""
    return execute(plan_run(workload, submission, **kwargs), observer)


__all__ = ["RunResult", "Observer", "execute", "run", "watchdog_limit"]
