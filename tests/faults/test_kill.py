"""kill -9 a sweep at random points; rerunning the same command finishes it
without losing, repeating, duplicating or half-writing any trial.

Each kill is a real SIGKILL to a real process (``python -m tests.faults.driver``)
while it is writing real records. Between kills we check what a user would
see: every ``run.json`` parses, and every trial that had finished before a kill
is byte-for-byte the same afterwards (so it was neither rerun nor rewritten).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 10  # the issue asks for >= 10
FINISHED = ("reached", "budget_exhausted", "diverged")


def _driver(output: Path, executor: str) -> list[str]:
    return [sys.executable, "-m", "tests.faults.driver", str(output), "--trials", str(TRIALS), "--executor", executor]


def _records(output: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(output.rglob("run.json"))}


def _finished(records: dict[Path, bytes]) -> dict[Path, bytes]:
    done = {}
    for path, raw in records.items():
        record = json.loads(raw)  # a torn write would fail here
        if record["status"] in FINISHED:
            done[path] = raw
    return done


def _kill_after(output: Path, executor: str, finished_at_least: int, extra_delay_s: float) -> int:
    """Start the sweep, wait until ``finished_at_least`` trials are done, wait
    a little more (landing mid-trial or mid-write), then SIGKILL its process group."""
    proc = subprocess.Popen(
        _driver(output, executor), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,  # so the kill reaches worker processes too
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if len(_finished(_records(output))) >= finished_at_least:
                    break
            except (json.JSONDecodeError, OSError):
                pass  # a reader can race a writer's rename; the next poll sees it whole
            time.sleep(0.02)
        time.sleep(extra_delay_s)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
    return proc.returncode


@pytest.mark.parametrize("executor", ["local", "submitit-local"])
def test_kill_nine_then_rerun_completes_the_sweep(tmp_path, executor):
    rng = random.Random(20261123)
    output = tmp_path / "results"
    kept: dict[Path, bytes] = {}
    kills = 0
    for finished_at_least in (2, 5, 8):
        code = _kill_after(output, executor, finished_at_least, rng.uniform(0.0, 0.4))
        kills += code == -signal.SIGKILL
        records = _records(output)
        done = _finished(records)  # every record parses after a kill
        for path, raw in kept.items():
            assert done.get(path) == raw, f"{path} changed after a later kill: a finished trial was rerun or rewritten"
        kept = done
    assert kills >= 2, "the sweep finished before it could be killed; make the trials slower"

    final = subprocess.run(_driver(output, executor), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-2000:]
    lines = final.stdout.splitlines()
    skipped = [line for line in lines if " skip " in line]
    assert len(skipped) >= len(kept), "finished trials must be skipped, not rerun"

    records = _records(output)
    assert len(records) == TRIALS, sorted(records)  # one record per trial: none lost, none duplicated
    trial_ids = set()
    for path, raw in records.items():
        record = json.loads(raw)
        assert record["status"] == "reached", (path, record["status"], record["reason"])
        trial_ids.add(record["tuning"]["trial_id"])
        rows = [json.loads(line) for line in (path.parent / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == sorted({r["step"] for r in rows}), f"{path.parent}: duplicated eval rows"
        assert rows[-1]["step"] == record["steps"]
    assert len(trial_ids) == TRIALS
    for path, raw in kept.items():
        assert records[path] == raw, f"{path} was rerun although it had finished before a kill"
