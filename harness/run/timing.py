"""Timing that checks itself: was the machine quiet while the clock ran?

A wall-clock benchmark is only as good as the machine's quiet. At every eval
boundary (never per step) the loop reads a :class:`Snapshot`: the clock, the
process's CPU time, and where the OS exposes it (Linux ``/proc/stat``) the
whole machine's busy, idle and steal time. Two snapshots make a segment's
figures, kept in the record's ``timing.per_segment`` (not in ``metrics.jsonl``,
whose rows are the run's deterministic metrics):

* ``steps_per_s``: the segment's throughput (on a GPU, the synced clock's:
  the device's own step rate);
* ``cpu_share``: process CPU time over wall time x torch threads (CPU runs);
* ``others_cpu``: the share of the machine's CPU that other processes used;
* ``steal``: the share the hypervisor gave to other guests.

A run is **contended** when any judged segment (at least ``MIN_SEGMENT_S``
long) breaks one of these limits; it is kept, marked unofficial, with a
deviation naming the segment and the figure. The limits were set from runs on
a quiet 2-core machine (docs/timing.md), so that quiet runs never trip them:

* ``OTHERS_CEILING``: other processes used more than 20% of the machine's CPU.
  Quiet: at most 1.8% (the five tiny workloads' baselines, four other
  optimizers); one CPU hog beside a cifar run: 35-38%.
* ``CPU_SHARE_FLOOR``: the process got under 75% of its threads' time (CPU
  runs). Quiet: 0.98-1.00 (torch's thread pool stays busy between kernels);
  beside one hog: 0.62-0.65, at a third of the quiet step rate.
* ``STEAL_CEILING``: more than 20% of the CPU was stolen by the hypervisor
  (quiet: at most 0.5%).
* ``THROUGHPUT_FLOOR``: the segment ran below half the run's best segment's
  steps per second. The first segment (compilation, warm caches) is excluded
  from the comparison; quiet runs measured 0.74 (gnn, whose batches vary in
  size) to 0.99 of their best. On a GPU this is the check that counts: the
  synced clock's rate is the device's own.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

OTHERS_CEILING = 0.20
STEAL_CEILING = 0.20
THROUGHPUT_FLOOR = 0.5
CPU_SHARE_FLOOR = 0.75
MIN_SEGMENT_S = 0.5  # shorter segments are too short to judge (timer and scheduler noise)
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Snapshot:
    wall: float  # perf_counter seconds
    cpu: float  # this process's CPU seconds (all threads)
    step: int
    machine: tuple[float, float, float] | None  # (total, busy, steal) CPU seconds of the whole machine


def _machine_times() -> tuple[float, float, float] | None:
    """(total, busy, steal) CPU seconds since boot, summed over CPUs; None where unreadable."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(x) for x in fields[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    total = sum(ticks[:8])
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    steal = ticks[7] if len(ticks) > 7 else 0
    return total / _TICKS, (total - idle - steal) / _TICKS, steal / _TICKS


def snapshot(step: int) -> Snapshot:
    """Read at an eval boundary, outside the clock."""
    return Snapshot(time.perf_counter(), time.process_time(), step, _machine_times())


def segment_figures(start: Snapshot, end: Snapshot, threads: int, device_type: str) -> dict[str, Any]:
    """The figures of the segment between two snapshots."""
    wall = end.wall - start.wall
    steps = end.step - start.step
    out: dict[str, Any] = {"steps": steps, "seconds": wall, "steps_per_s": steps / wall if wall > 0 else None}
    if device_type == "cpu" and wall > 0:
        out["cpu_share"] = (end.cpu - start.cpu) / (wall * max(1, threads))
    if start.machine and end.machine:
        total = end.machine[0] - start.machine[0]
        if total > 0:
            busy = end.machine[1] - start.machine[1]
            out["others_cpu"] = max(0.0, busy - (end.cpu - start.cpu)) / total
            out["steal"] = (end.machine[2] - start.machine[2]) / total
    return out


def contention(segments: list[dict[str, Any]]) -> str | None:
    """Why the run's clock cannot be trusted (the first offending segment), or None."""
    judged = [(i, s) for i, s in enumerate(segments, start=1) if (s.get("seconds") or 0) >= MIN_SEGMENT_S]
    rates = [s["steps_per_s"] for i, s in judged if i > 1 and s.get("steps_per_s")]
    best = max(rates, default=None)
    for i, s in judged:
        where = f"segment {i} (steps {s['first_step']}-{s['last_step']}, {s['seconds']:.1f} s)"
        if (s.get("others_cpu") or 0) > OTHERS_CEILING:
            return f"contended: other processes used {s['others_cpu']:.0%} of the CPU in {where}"
        if (s.get("steal") or 0) > STEAL_CEILING:
            return f"contended: the hypervisor stole {s['steal']:.0%} of the CPU in {where}"
        if s.get("cpu_share") is not None and s["cpu_share"] < CPU_SHARE_FLOOR:
            return f"contended: the run got {s['cpu_share']:.0%} of its threads' CPU time in {where}"
        if i > 1 and best and s.get("steps_per_s") and s["steps_per_s"] < THROUGHPUT_FLOOR * best:
            return (f"contended: {where} ran at {s['steps_per_s'] / best:.2f}x the run's best throughput "
                    f"({s['steps_per_s']:.1f} vs {best:.1f} steps/s)")
    return None


__all__ = ["Snapshot", "snapshot", "segment_figures", "contention", "OTHERS_CEILING", "STEAL_CEILING",
           "THROUGHPUT_FLOOR", "CPU_SHARE_FLOOR", "MIN_SEGMENT_S"]
