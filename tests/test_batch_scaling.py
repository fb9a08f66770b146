"""Batch size as a run parameter and ``bench study batch``: the override and its
deviation, the grid as ordinary records, resuming, the fit, refusals."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import UserInputError
from harness.plugins.registry import Registry
from harness.run import plan_run
from harness.run.records import read_run
from harness.sweeps.batch_scaling import (
    batch_study, fit_scaling, parse_batch_sizes, plan_batch_study, scaled_lr, step_budget,
)
from harness.sweeps.executors import ExecutorSpec
from tests import fakes

ROOT = Path(__file__).resolve().parent.parent
SGD = "tests.fakes:PLAIN_SGD"


def _registry() -> Registry:
    registry = Registry(entry_points=False)
    # score = steps seen; evals every 2 steps; the target (> 3) is met at step 4; the size's batch is 8
    registry.add_workload(fakes.fake_info(target=3.0, every_steps=2))
    return registry


def test_batch_size_override_is_the_size_batch_and_a_deviation_unless_equal():
    registry = _registry()
    plan = plan_run("fake", SGD, overrides=["batch_size=16"], registry=registry)
    assert plan.size.batch_size == 16 and "batch_size=16" in plan.deviations
    same = plan_run("fake", SGD, overrides=["batch_size=8"], registry=registry)
    assert same.size.batch_size == 8 and same.deviations == []
    for bad in ("batch_size=0", "batch_size=1.5", "batch_size=abc"):
        with pytest.raises(UserInputError, match="batch_size must be a positive integer"):
            plan_run("fake", SGD, overrides=[bad], registry=registry)


def test_batch_grid_with_an_lr_rule_runs_records_and_resumes(tmp_path):
    registry = _registry()
    result = batch_study("fake", [SGD], "2,4,16", lr_rule="linear", steps=6, output=tmp_path, registry=registry)
    assert len(result.ran) == 3 and not result.skipped and not result.interrupted and not result.errors
    root = tmp_path / "study_batch" / "fake-tiny"
    for point in result.ran:
        rec = read_run(point.run_dir)
        assert rec["batch_size"] == point.batch_size and rec["official"] is False
        assert f"batch_size={point.batch_size}" in rec["deviations"]
        assert rec["study"]["lr"] == pytest.approx(0.01 * point.batch_size / 8)  # linear from 0.01 at batch 8
        assert rec["status"] == "reached" and rec["steps_to_target"] == 4  # to the target, not the budget
        assert rec["budget"]["max_steps"] == step_budget(6, point.batch_size, 8)
    with open(root / "batch_scaling.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["batch_size"]) for r in rows] == [2, 4, 16]
    assert all(r["steps_to_target"] == "4" for r in rows)
    # steps do not fall with the batch: only the smallest batch scales perfectly (with itself)
    assert [r["perfect_region"] for r in rows] == ["True", "False", "False"]
    assert rows[0]["critical_batch_size"] == "4"  # 4 steps at batch 4 vs 2 predicted: exactly 2x
    assert (root / "batch_scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = batch_study("fake", [SGD], "2,4,16", lr_rule="linear", steps=6, output=tmp_path, registry=registry)
    assert not again.ran and len(again.skipped) == 3  # a rerun resumes: nothing finished runs twice


def test_retune_draws_the_same_halton_lrs_at_every_batch_size(tmp_path):
    study = plan_batch_study("fake", [SGD], [4, 8], trials=3, output=tmp_path, registry=_registry())
    by_batch = {b: [p.lr for p in study.points if p.batch_size == b] for b in (4, 8)}
    assert len(by_batch[4]) == 3 and by_batch[4] == by_batch[8]
    assert len(set(by_batch[4])) == 3 and all(1e-3 <= lr <= 1e-1 for lr in by_batch[4])  # its SEARCH_SPACE range


def test_fit_finds_the_perfect_region_and_the_critical_batch_on_known_numbers():
    # perfect halving to 64, then diminishing returns; 1024 missed the target
    fit = fit_scaling([(16, 800), (32, 400), (64, 210), (128, 130), (256, 110), (512, 100), (1024, None)])
    assert fit["perfect"][128] == pytest.approx(100.0)
    assert fit["perfect_region"] == [16, 32, 64]  # 130 > 1.25 x 100 at 128
    assert fit["critical_batch_size"] == 128  # 110 > 2 x 50 at 256
    assert fit["efficiency"][512] == pytest.approx(0.25)
    # S = S_min (1 + B_noise / B) exactly: the fit recovers B_noise
    model = fit_scaling([(b, 100 * (1 + 200 / b)) for b in (16, 32, 64, 128, 256)])
    assert model["b_noise"] == pytest.approx(200.0) and model["s_min"] == pytest.approx(100.0)
    assert fit_scaling([(16, None)])["critical_batch_size"] is None


def test_lr_rules():
    assert scaled_lr(0.1, 128, 32, "linear") == pytest.approx(0.4)
    assert scaled_lr(0.1, 128, 32, "sqrt") == pytest.approx(0.2)
    assert scaled_lr(0.1, 128, 32, "none") == pytest.approx(0.1)
    assert step_budget(100, 16, 64) == 400 and step_budget(100, 256, 64) == 100


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_sizes": ""}, "--batch-sizes is empty"),
    ({"batch_sizes": "16,abc"}, "positive integers"),
    ({"batch_sizes": "0,16"}, "positive integers"),
    ({"batch_sizes": "16", "trials": 2, "lr_rule": "sqrt"}, "not both"),
    ({"batch_sizes": "16", "lr_rule": "cubic"}, "unknown --lr-rule 'cubic'"),
    ({"batch_sizes": "16,20", "executor": ExecutorSpec("two", "local", {"nproc": 8})}, "does not split evenly over 8"),
])
def test_bad_input_is_refused_before_anything_runs(tmp_path, kwargs, message):
    args = {"submissions": [SGD], **kwargs}
    with pytest.raises(UserInputError, match=message):
        plan_batch_study("fake", args.pop("submissions"), args.pop("batch_sizes"), output=tmp_path,
                         registry=_registry(), **args)
    assert not (tmp_path / "study_batch").exists()


def test_batch_sizes_parse_sorted_and_unique():
    assert parse_batch_sizes("64, 16,32,16") == [16, 32, 64]


def test_cli_refuses_an_unknown_submission_with_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "harness.cli", "study", "batch", "-s", "adamww", "-w", "cifar",
                          "--batch-sizes", "16,32", "-o", str(tmp_path), "--dry-run"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "did you mean 'adamw'" in lines[0]


def test_a_ctrl_c_or_a_killed_run_is_rerun_and_nothing_finished_twice(tmp_path, monkeypatch):
    registry = _registry()
    kwargs = dict(lr_rule="none", steps=6, output=tmp_path, registry=registry)
    monkeypatch.setattr(fakes.SleepTask, "interrupt_at_step", 2)  # Ctrl-C in the first run
    first = batch_study("fake", [SGD], "4,8", **kwargs)
    assert first.interrupted and len(first.ran) == 1 and first.ran[0].record["status"] == "interrupted"
    monkeypatch.setattr(fakes.SleepTask, "interrupt_at_step", None)
    second = batch_study("fake", [SGD], "4,8", **kwargs)
    assert [p.batch_size for p in second.ran] == [4, 8] and not second.interrupted
    # kill -9 leaves a record that still says "running": that run is rerun, the other skipped
    killed = second.ran[1].run_dir / "run.json"
    killed.write_text(killed.read_text().replace('"status": "reached"', '"status": "running"'))
    third = batch_study("fake", [SGD], "4,8", **kwargs)
    assert [p.batch_size for p in third.ran] == [8] and [p.batch_size for p in third.skipped] == [4]


@pytest.mark.slow
def test_study_points_run_as_submitit_jobs_and_resume(tmp_path):
    from harness.sweeps.executors import load_executor

    spec = load_executor("submitit-local", ["executor.parallel=2"])
    kwargs = dict(lr_rule="none", steps=6, output=tmp_path, registry=_registry(), executor=spec)
    first = batch_study("fake", [SGD], "4,8", **kwargs)
    assert sorted(p.batch_size for p in first.ran) == [4, 8] and not first.errors
    assert [r["steps_to_target"] for r in first.rows] == [4, 4]
    again = batch_study("fake", [SGD], "4,8", **kwargs)
    assert not again.ran and len(again.skipped) == 2


def test_lr_study_refuses_a_batch_the_executor_cannot_split(tmp_path):
    from harness.sweeps.studies import plan_lr_study

    with pytest.raises(UserInputError, match="global batch of 8 does not split evenly over 3"):
        plan_lr_study("fake", [SGD], points=2, output=tmp_path, registry=_registry(),
                      executor=ExecutorSpec("three", "local", {"nproc": 3}))


def test_config_overrides_reach_every_run_but_not_the_keys_the_study_sets(tmp_path):
    registry = _registry()
    result = batch_study("fake", [SGD], "4", lr_rule="none", steps=6, output=tmp_path, registry=registry,
                         overrides=["target.validation=1.0"])  # score > 1 is met at the first eval, step 2
    assert result.rows[0]["steps_to_target"] == 2 and "target.validation=1.0" in result.ran[0].record["deviations"]
    with pytest.raises(UserInputError, match="the study sets batch_size itself"):
        plan_batch_study("fake", [SGD], "4", output=tmp_path, registry=registry, overrides=["batch_size=4"])


@pytest.mark.parametrize("workload, what", [("cifar", "training examples"), ("gnn", "training graphs"),
                                            ("diffusion", "training images")])
def test_a_batch_larger_than_the_training_set_is_one_line_and_writes_nothing(tmp_path, workload, what):
    out = subprocess.run([sys.executable, "-m", "harness.cli", "run", "-w", workload, "batch_size=1000000",
                          "-o", str(tmp_path / "results")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    # the run's header, then one error line: no traceback
    assert "Traceback" not in out.stdout + out.stderr
    error = out.stderr.strip().splitlines()
    assert len(error) == 1 and f"{workload} tiny: batch_size 1000000 exceeds the" in error[0] and what in error[0]
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("run.json"))


def test_batch_study_points_are_on_no_board_not_even_an_unofficial_one(tmp_path):
    from harness.score.scoring import not_a_trial, score_records

    registry = _registry()
    batch_study("fake", [SGD], "4,16", lr_rule="linear", steps=6, output=tmp_path, registry=registry)
    sizes = lambda workload, size: registry.workloads[workload].info.sizes[size]  # noqa: E731
    board = score_records([tmp_path], include_unofficial=True, sizes=sizes)
    assert board.groups == [] and len(board.left_out) == 2
    assert [w.split(":")[0] for w in board.warnings] == ["left out of every board of ruleset untuned"]
    assert all(r.startswith("a point of bench study batch (another batch size)") for r in board.left_out["reason"])
    assert not_a_trial({"calibration": {"phase": "search"}}).startswith("a calibration run")
    assert not_a_trial({"status": "reached", "tuning": {"trial": 0}}) is None
