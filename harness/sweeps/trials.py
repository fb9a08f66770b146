"""What a sweep is made of: planned trials, the sweep, its result, and how a
trial directory that already holds a record is treated when a sweep resumes.

Shared by the planner (harness/sweeps/tuning.py) and the executors
(harness/sweeps/executors.py), which both import it and not each other.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from harness.api import Status
from harness.run.records import RUN_FILE

if TYPE_CHECKING:
    from harness.sweeps.tuning import Ruleset

SKIP_STATUSES = tuple(s.value for s in Status if s.is_measurement)  # finished measurements: never rerun


@dataclass
class Trial:
    """One planned timed run of a sweep, and what to do about it."""

    study: int
    index: int
    seed: int
    study_seed: int
    point: dict[str, dict[str, Any]]  # searched values only: {"optimizer": {...}, "norm": {...}}
    trial_id: str
    run_dir: Path
    action: str  # "run" | "skip"
    why: str  # e.g. "new", "finished earlier (reached)", "previous attempt errored"
    plan: Any = field(repr=False, default=None)  # harness.run.plan.RunPlan
    extra: dict[str, Any] = field(repr=False, default_factory=dict)
    record: dict[str, Any] | None = field(repr=False, default=None)  # the record once run or found

    @property
    def name(self) -> str:
        return f"study {self.study} trial {self.index}"


@dataclass
class Sweep:
    ruleset: Ruleset
    workload: str
    size: str
    label: str
    root: Path  # <output>/<experiment>/<workload>-<size>/<label>
    sweep_id: str
    base_seed: int
    studies: int
    trials_per_study: int
    search_space: Any
    search_space_source: str
    trials: list[Trial]
    target: dict[str, Any]
    max_runtime_s: float

    @property
    def to_run(self) -> list[Trial]:
        return [t for t in self.trials if t.action == "run"]


def record_id(rec: dict[str, Any]) -> str | None:
    """The identity a record was planned under: a tune trial's ``tuning.trial_id``
    or a study point's ``study.point_id`` (sweeps and studies resume alike)."""
    return (rec.get("tuning") or {}).get("trial_id") or (rec.get("study") or {}).get("point_id")


def existing_trial(run_dir: Path, trial_id: str) -> tuple[str, str, dict | None]:
    """(action, why, record) for a trial (or study point) directory that may hold an earlier record."""
    path = run_dir / RUN_FILE
    if not path.exists():
        return "run", "new", None
    try:
        rec = json.loads(path.read_text())
        old_id = record_id(rec)
        status = rec["status"]
    except Exception:
        return "run", "earlier record unreadable", None
    if old_id != trial_id:
        if status in SKIP_STATUSES:
            return "conflict", f"holds a finished run of another sweep or study (id {old_id}, {status})", rec
        return "run", f"definition changed (the unfinished record there, trial_id {old_id}, will be replaced)", None
    if status in SKIP_STATUSES:
        return "skip", f"finished earlier ({status})", rec
    if status == "error":
        return "run", "previous attempt errored", None
    return "run", f"previous attempt {status}", None


class RunObserver:
    """Adapts the runner's per-run observer to a sweep's or a study's observer,
    whose ``on_eval`` takes the planned item (a trial, a study point) first."""

    def __init__(self, observer: Any, item: Any) -> None:
        self.observer, self.item = observer, item

    def on_start(self, plan, run_dir) -> None:
        pass

    def on_eval(self, row: dict[str, Any]) -> None:
        self.observer.on_eval(self.item, row)

    def on_end(self, record: dict[str, Any]) -> None:
        pass


def run_inline(items: Sequence[Any], observer: Any | None) -> tuple[list[Any], list[Any], bool]:
    """(ran, skipped, interrupted): planned runs (tune trials, study points) one
    after another in this process, skipping those already finished, stopping
    at the first interrupted one. ``observer`` has a sweep observer's
    ``on_trial_start`` / ``on_trial_end`` / ``on_eval``."""
    from harness.run import execute

    ran, skipped = [], []
    for item in items:
        if item.action == "skip":
            skipped.append(item)
            if observer:
                observer.on_trial_end(item, item.record, ran=False)
            continue
        if observer:
            observer.on_trial_start(item)
        result = execute(item.plan, RunObserver(observer, item) if observer else None,
                         run_dir=item.run_dir, extra=item.extra)
        item.record = result.record
        ran.append(item)
        if observer:
            observer.on_trial_end(item, result.record, ran=True)
        if result.record["status"] == Status.INTERRUPTED:
            return ran, skipped, True
    return ran, skipped, False


@dataclass
class SweepResult:
    sweep: Sweep
    ran: list[Trial]
    skipped: list[Trial]
    interrupted: bool = False
    submitted: list[str] = field(default_factory=list)  # job ids, when an executor returned without waiting

    @property
    def records(self) -> list[dict[str, Any]]:
        return [t.record for t in self.sweep.trials if t.record is not None]

    @property
    def summary(self) -> dict[str, Any]:
        return summarize(self.records)


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """AlgoPerf's per-workload time for one sweep's records.

    ``{"time_s", "steps", "studies": [{"study", "best_trial", "time_s", "steps"}], ...}``:
    per study the fastest trial that reached the target (inf if none), then the
    median over studies (inf once half or more of the studies missed).
    """
    import statistics

    by_study: dict[Any, list[dict]] = {}
    for rec in records:
        by_study.setdefault((rec.get("tuning") or {}).get("study"), []).append(rec)
    studies = []
    for study, recs in sorted(by_study.items(), key=lambda kv: (kv[0] is None, kv[0])):
        reached = [r for r in recs if r.get("status") == "reached" and r.get("time_to_target_s") is not None]
        best = min(reached, key=lambda r: float(r["time_to_target_s"]), default=None)
        studies.append({
            "study": study, "trials": len(recs), "reached": len(reached),
            "best_trial": (best.get("tuning") or {}).get("trial") if best else None,
            "time_s": float(best["time_to_target_s"]) if best else math.inf,
            "steps": float(best["steps_to_target"]) if best else math.inf,
        })
    # statistics.median matches numpy's for these: the mean of the middle two,
    # which is inf when one of them is inf.
    return {
        "time_s": statistics.median([s["time_s"] for s in studies]) if studies else math.inf,
        "steps": statistics.median([s["steps"] for s in studies]) if studies else math.inf,
        "studies": studies,
        "studies_reached": sum(math.isfinite(s["time_s"]) for s in studies),
    }


__all__ = ["Trial", "Sweep", "SweepResult", "RunObserver", "existing_trial", "record_id", "summarize", "SKIP_STATUSES"]
