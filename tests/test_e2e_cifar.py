"""End to end: `bench run` on cifar tiny, as a user runs it (slow: real training)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.records import read_metrics, read_run

pytestmark = pytest.mark.slow


def bench_run(tmp_path: Path, *args: str) -> Path:
    out = subprocess.run(
        [sys.executable, "-c", "from harness.cli import main; main()", "run", "--workload", "cifar",
         "--size", "tiny", "--output", str(tmp_path), *args],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    (record,) = list(tmp_path.rglob("run.json"))
    return record.parent


@pytest.mark.parametrize("submission", ["lion"])  # the demo; adamw reaches it too (README)
def test_default_hyperparameters_reach_the_target(tmp_path, submission):
    run_dir = bench_run(tmp_path, "--submission", submission)
    rec = read_run(run_dir)
    assert rec["status"] == "reached", rec["reason"]
    assert rec["official"] is True
    assert 0 < rec["time_to_target_s"] <= rec["budget"]["max_runtime_s"]
    assert rec["steps_to_target"] % rec["budget"]["eval_every_steps"] == 0
    rows = read_metrics(run_dir)
    assert rows[-1]["validation/accuracy"] > rec["target"]["value"]
    assert all(r["validation/accuracy"] <= rec["target"]["value"] for r in rows[:-1])
    json.dumps(rec, allow_nan=False)


def test_same_seed_gives_identical_metrics(tmp_path):
    runs = [bench_run(tmp_path / name, "--submission", "adamw", "--seed", "7", "budget.max_steps=40",
                      "eval.every_steps=20") for name in ("a", "b")]
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("timed_s", "wall_s")} for r in rows]
    a, b = (strip(read_metrics(r)) for r in runs)
    assert len(a) == 2 and a == b
    other = bench_run(tmp_path / "c", "--submission", "adamw", "--seed", "8", "budget.max_steps=40", "eval.every_steps=20")
    assert strip(read_metrics(other)) != a
