"""Timing that checks itself (harness/run/timing.py): a run on a machine that
is not quiet is kept, but marked unofficial with a deviation saying which
segment and by how much; a quiet run stays official.

The figures are read at eval boundaries only (the sync-count test in
tests/test_timed_loop_syncs.py holds the timed loop to that).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from harness.plugins.registry import Registry
from harness.run import execute, plan_run, timing
from tests import fakes


def seg(i, rate=100.0, seconds=1.0, others=0.0, steal=0.0, share=0.9):
    return {"first_step": 10 * i + 1, "last_step": 10 * i + 10, "steps": 10, "seconds": seconds,
            "steps_per_s": rate, "cpu_share": share, "others_cpu": others, "steal": steal}


def test_quiet_segments_are_not_contended():
    # the first segment is slow (warm-up) and excluded; the rest vary by 30%
    assert timing.contention([seg(0, rate=20), seg(1, 100), seg(2, 75), seg(3, 90)]) is None


@pytest.mark.parametrize("bad, words", [
    (dict(others=0.5), "other processes used 50% of the CPU in segment 3 (steps 21-30"),
    (dict(steal=0.3), "the hypervisor stole 30% of the CPU in segment 3"),
    (dict(share=0.2), "the run got 20% of its threads' CPU time in segment 3"),
    (dict(rate=40.0), "segment 3 (steps 21-30, 1.0 s) ran at 0.40x the run's best throughput (40.0 vs 100.0 steps/s)"),
])
def test_each_limit_names_the_segment_and_the_figure(bad, words):
    reason = timing.contention([seg(0), seg(1), seg(2, **bad), seg(3)])
    assert reason is not None and reason.startswith("contended: ") and words in reason


def test_short_segments_are_not_judged():
    assert timing.contention([seg(0), seg(1, others=0.9, seconds=0.3)]) is None


def test_segment_figures_from_two_snapshots():
    a = timing.Snapshot(wall=10.0, cpu=5.0, step=100, machine=(1000.0, 400.0, 1.0))
    b = timing.Snapshot(wall=12.0, cpu=7.0, step=300, machine=(1004.0, 403.0, 1.2))
    f = timing.segment_figures(a, b, threads=2, device_type="cpu")
    assert f["steps"] == 200 and f["steps_per_s"] == pytest.approx(100.0)
    assert f["cpu_share"] == pytest.approx(0.5)  # 2 CPU seconds over 2 s x 2 threads
    assert f["others_cpu"] == pytest.approx(0.25)  # 3 busy seconds, 2 of them ours, out of 4
    assert f["steal"] == pytest.approx(0.05)
    # on a GPU the CPU share means nothing: the host waits on the device
    assert "cpu_share" not in timing.segment_figures(a, b, threads=2, device_type="cuda")


def test_snapshot_reads_this_machine():
    s = timing.snapshot(7)
    assert s.step == 7 and s.cpu > 0
    if sys.platform.startswith("linux"):
        total, busy, steal = s.machine
        assert total > busy >= 0 and steal >= 0


class HogTask(fakes.SleepTask):
    """From step HOG_FROM on, two processes spin beside the run (one per core here)."""

    step_s = 0.06  # segments of 10 steps: 0.6 s, long enough to be judged
    hog_from: int | None = None
    hogs: list = []

    def next_batch(self, step):
        if step == self.hog_from and not HogTask.hogs:
            HogTask.hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
        return super().next_batch(step)


def quiet_machine() -> None:
    """These two tests need a quiet machine to start from (the suite also runs
    beside a busy loop, where every run is rightly contended): skip otherwise."""
    a = timing.snapshot(0)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.5:
        pass
    figures = timing.segment_figures(a, timing.snapshot(0), threads=1, device_type="cpu")
    if figures.get("others_cpu", 0) > 0.05:
        pytest.skip(f"the machine is busy: other processes use {figures['others_cpu']:.0%} of its CPU")


@pytest.fixture
def hog_run(tmp_path):
    quiet_machine()

    def run(hog_from):
        HogTask.hog_from, HogTask.hogs = hog_from, []
        registry = Registry(entry_points=False)
        registry.add_workload(fakes.fake_info(task="tests.test_timing:HogTask", target=1e9, every_steps=10, max_steps=60))
        plan = plan_run("fake", "tests.fakes:PLAIN_SGD", size="tiny", output=tmp_path, registry=registry,
                        overrides=["threads=1"])
        try:
            return execute(plan).record
        finally:
            for hog in HogTask.hogs:
                hog.kill()
                hog.wait()
            HogTask.hogs = []

    return run


def test_a_quiet_run_stays_official(hog_run):
    rec = hog_run(hog_from=None)
    # every segment is long enough to be judged, and none breaks a limit
    assert all(s["seconds"] >= timing.MIN_SEGMENT_S for s in rec["timing"]["per_segment"])
    assert rec["timing"]["contended"] is None and rec["timing"]["segments"] == 6, rec["timing"]
    assert rec["official"] is True and rec["deviations"] == []


def test_a_cpu_hog_started_mid_run_makes_it_contended(hog_run):
    rec = hog_run(hog_from=25)
    reason = rec["timing"]["contended"]
    assert reason is not None and reason.startswith("contended: "), rec["timing"]
    assert reason in rec["deviations"] and rec["official"] is False
    first_step = int(re.search(r"\(steps (\d+)-", reason).group(1))
    assert first_step > 20, reason  # a segment the hogs ran beside (they start at step 26)
    assert rec["status"] == "budget_exhausted"  # kept: the run itself went on
