"""Budgets that travel: a tiny size's budget as reference work, in this machine's seconds.

CPUs differ threefold per step, so a budget in seconds set on one buys three
times the work on another. A tiny size therefore states its budget as work,
``Size.reference_steps`` (the tuned baseline's steps to the target in
calibration), and each machine turns it into seconds::

    budget_s = reference_steps x s_per_step / BUDGET_FRACTION

``s_per_step`` is this machine's seconds per training step of that same tuned
baseline (the size's ``target_setting`` optimizer and hyperparameters, the
workload's default norm), measured outside any run's clock: WARMUP_STEPS steps
(first-call kernel selection), then CHUNKS chunks of CHUNK_STEPS steps, each
timed after a device sync; the fastest chunk sets the figure (as in timeit: a
slower chunk measures other processes, not this machine). The metric stays
wall-clock seconds on the machine that ran; only the budget travels. One
evaluation is timed after the chunks (``eval_s``): budgets ignore it (evaluation
is untimed), a study's time estimate counts it (harness/sweeps/studies.py).

A measurement is cached in the user cache (harness/common/usercache.py) per hardware
class, size, thread count, torch version and the code it ran (the workload's
package and both plugins' sources), so it is taken once per class and retaken
when any of those changes. A probe the run's own contention limits judge
contended (harness/run/timing.py) is used once and not cached. ``bench hw
--speed`` prints every tiny size's figure and its speed factor (local s/step
over the calibration class's).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness import api

from harness.common import usercache
from harness.run import timing
from harness.errors import UserInputError

WARMUP_STEPS = 5
CHUNK_STEPS = 10
CHUNKS = 3
SPEED_DIR = "speed"
FORMAT = 2  # 2: one evaluation's seconds (eval_s) measured too


@dataclass
class Speed:
    """One measurement of the tuned baseline's seconds per step on this machine."""

    workload: str
    size: str
    s_per_step: float
    chunk_s_per_step: list[float]
    method: str
    hardware_id: str | None
    threads: int
    measured_at: str
    key: str
    # One evaluation of the baseline model (untimed in runs): what a study's time
    # estimate adds per evaluation. None in entries written before it was measured.
    eval_s: float | None = None
    contended: str | None = None  # set on a probe taken beside other work (then not cached)
    cached: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _method() -> str:
    return (f"tuned baseline, {WARMUP_STEPS} warm-up steps then the fastest of {CHUNKS} chunks "
            f"of {CHUNK_STEPS} steps, device-synced")


def _task_package_sha(task_spec: str) -> str | None:
    """sha256 of every .py file of the package that holds the workload's Task."""
    import importlib.util

    from harness.plugins.registry import source_sha256

    module = task_spec.partition(":")[0]
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return source_sha256(Path(spec.origin).parent / "__init__.py")


def _baseline(entry, size: api.Size, registry, point=None):
    """(optimizer plugin, hyperparameters, norm plugin) of the size's tuned baseline,
    or of ``point`` = (optimizer name, hyperparameters) (bench calibrate's new one)."""
    if point is None:
        if not size.target_setting:
            raise UserInputError(f"{entry.info.name} {size.name} records no tuned baseline (Size.target_setting)")
        point = (size.target_setting["optimizer"], size.target_setting["hyperparameters"])
    optimizer = registry.submission(point[0], "optimizer")
    hp = api.Hyperparameters({**dict(optimizer.meta.get("DEFAULTS", {})), **dict(point[1])})
    return optimizer, hp, registry.submission(entry.info.default_norm, "norm")


def cache_key(entry, size: api.Size, threads: int, hardware_id: str | None, registry, point=None) -> str:
    """What a measurement depends on; any change misses the cache."""
    import torch

    from harness.common.seeding import stable_hash

    optimizer, hp, norm = _baseline(entry, size, registry, point)
    return stable_hash({
        "format": FORMAT, "method": _method(), "hardware_id": hardware_id, "threads": threads,
        "torch": torch.__version__, "workload": entry.info.name,
        "size": {k: getattr(size, k) for k in ("name", "dataset", "model", "batch_size", "device", "step_hint")},
        "workload_code": _task_package_sha(entry.info.task), "optimizer": optimizer.sha256, "norm": norm.sha256,
        "hyperparameters": dict(hp),
    }, length=24)


@dataclass
class Measured:
    chunks: list[float]  # seconds per step of each timed chunk
    method: str
    eval_s: float  # one evaluation
    contended: str | None  # why the chunks' clock cannot be trusted (harness/run/timing.py), or None


def measure(entry, size: api.Size, threads: int, device, data_dir: Path, registry, point=None) -> Measured:
    """Time the tuned baseline's steps, then one evaluation, and judge whether
    the machine was quiet while the chunks ran (the run's own contention limits).

    Runs in a forked RNG state and restores Python's and numpy's, so measuring
    (or not, on a cache hit) never changes the run that follows.
    """
    import random

    import numpy as np
    import torch

    from harness.params import typed_parameters
    from harness.run.build import build_model, build_optimizer, import_task as _import_task
    from harness.common.seeding import derive_seed

    optimizer_plugin, hp, norm_plugin = _baseline(entry, size, registry, point)
    optimizer_sub, norm_sub = optimizer_plugin.load(), norm_plugin.load()
    update = optimizer_sub.hook("update") or api.default_update
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    py_state, np_state, old_threads = random.getstate(), np.random.get_state(), torch.get_num_threads()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.set_num_threads(threads)
            torch.manual_seed(derive_seed("speed", entry.info.name, size.name))
            task = _import_task(entry.info.task)(size, device, data_dir, derive_seed(0, "data"))
            model = build_model(task, norm_sub, api.Hyperparameters(dict(norm_plugin.meta.get("DEFAULTS", {}) or {})), device)
            params = typed_parameters(model, task.param_types(model))
            optimizer, schedule = build_optimizer(optimizer_sub, params, hp, size.step_hint)
            ctx = api.StepContext(model=model, optimizer=optimizer, schedule=schedule, batch=None, step=0, hp=hp,
                                  step_hint=size.step_hint, task=api.TrainingView(task))  # as in a run
            chunks: list[float] = []
            step = 0
            for chunk in range(-1, CHUNKS):  # chunk -1 is the warm-up
                n = WARMUP_STEPS if chunk < 0 else CHUNK_STEPS
                sync()
                if chunk == 0:
                    first = timing.snapshot(step)
                start = time.perf_counter()
                for _ in range(n):
                    ctx.batch, ctx.step = task.next_batch(step), step
                    update(ctx)
                    step += 1
                sync()
                if chunk >= 0:
                    chunks.append((time.perf_counter() - start) / n)
            contended = _probe_contention(first, timing.snapshot(step), threads, device.type)
            model.eval()
            start = time.perf_counter()
            with torch.no_grad():
                task.evaluate(model)
            sync()
            eval_s = time.perf_counter() - start
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_num_threads(old_threads)
    return Measured(chunks, _method(), eval_s, contended)


def _probe_contention(first: timing.Snapshot, last: timing.Snapshot, threads: int, device_type: str) -> str | None:
    """The timed chunks judged as one segment of a run (harness/run/timing.py)."""
    figures = timing.segment_figures(first, last, threads, device_type)
    reason = timing.contention([{**figures, "first_step": first.step, "last_step": last.step}])
    return None if reason is None else reason.replace("segment 1", "the speed probe", 1)


def _cache_path(key: str) -> Path | None:
    root = usercache.cache_dir()
    return None if root is None else root / SPEED_DIR / f"{key}.json"


def local_speed(entry, size: api.Size, *, threads: int, device, data_dir: Path, hardware_id: str | None,
                registry=None, remeasure: bool = False, point=None) -> Speed:
    """This machine's seconds per tuned-baseline step for ``size``: cached, else measured (and cached).
    ``point`` = (optimizer name, hyperparameters) measures that point instead of the size's baseline."""
    from harness.plugins.registry import Registry

    registry = registry or Registry()
    key = cache_key(entry, size, threads, hardware_id, registry, point)
    path = _cache_path(key)
    if path is not None and path.exists() and not remeasure:
        try:
            cached = json.loads(path.read_text())
            if cached.get("key") == key and cached.get("s_per_step", 0) > 0:
                return Speed(**{**cached, "cached": True})
        except (OSError, ValueError, TypeError):
            pass  # torn or foreign file: measure again
    probe = measure(entry, size, threads, device, data_dir, registry, point)
    speed = Speed(
        workload=entry.info.name, size=size.name, s_per_step=min(probe.chunks), chunk_s_per_step=probe.chunks,
        method=probe.method, hardware_id=hardware_id, threads=threads,
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), key=key, eval_s=round(probe.eval_s, 4),
        contended=probe.contended,
    )
    # A probe beside other work measures them, not this machine: it serves this
    # call (whose run will be judged contended on its own) but is never cached,
    # so it cannot inflate the budgets of the quiet runs that follow.
    if path is not None and probe.contended is None:
        blob = json.dumps(speed.as_dict(), indent=1).encode()
        usercache.write_atomic(path, lambda f: f.write(blob))
    return speed


def reference_s_per_step(size: api.Size) -> float | None:
    """Seconds per tuned-baseline step on the calibration's class, as calibrated."""
    return (size.target_setting or {}).get("seconds_per_step")


def local_budget(size: api.Size, speed: Speed, multiplier: float = 1.0) -> dict[str, Any]:
    """The budget block a record carries for a reference-work budget on this machine."""
    if size.reference_steps is None:
        raise ValueError(f"size {size.name!r} has a budget in seconds, not reference work")
    reference = reference_s_per_step(size)
    seconds = size.reference_steps * speed.s_per_step / api.BUDGET_FRACTION * multiplier
    return {
        "max_runtime_s": round(seconds, 3),
        "basis": "reference_work",
        "reference_steps": size.reference_steps,
        "budget_steps": size.budget_steps,
        "budget_fraction": api.BUDGET_FRACTION,
        "multiplier": multiplier,
        "reference_max_runtime_s": size.max_runtime_s * multiplier,
        "reference_hardware_id": (size.target_setting or {}).get("hardware_id"),
        "reference_s_per_step": reference,
        "speed_factor": round(speed.s_per_step / reference, 4) if reference else None,
        "speed": speed.as_dict(),
    }


def describe(budget: dict[str, Any]) -> str:
    """One line for ``bench run``'s summary."""
    if budget.get("basis") != "reference_work":
        note = f" ({budget['note']})" if budget.get("note") else ""
        return f"budget {budget['max_runtime_s']:g} timed s{note}"
    speed = budget["speed"]
    factor = budget.get("speed_factor")
    where = "cached" if speed.get("cached") else "measured now"
    if speed.get("contended"):
        where = "measured now beside other work (not cached)"
    text = (f"budget {budget['max_runtime_s']:.1f} timed s here = {budget['reference_steps']} reference steps "
            f"x {speed['s_per_step'] * 1000:.1f} ms/step / {budget['budget_fraction']:g}")
    if budget.get("multiplier", 1.0) != 1.0:
        text += f" x {budget['multiplier']:g}"
    if factor:
        text += (f" (speed factor {factor:.2f} against {budget['reference_hardware_id']}, "
                 f"where it is {budget['reference_max_runtime_s']:g} s)")
    return text + f"; step time {where} {speed['measured_at']}"


__all__ = ["Speed", "local_speed", "local_budget", "measure", "describe", "reference_s_per_step"]
