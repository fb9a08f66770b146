"""``bench study lr``: the LR grid as ordinary records, resuming, the CSVs and
plot, the sensitivity formula, divergence, refusals, a torch-free --help."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from harness import api
from harness.errors import UserInputError
from harness.plugins.registry import Registry
from harness.run.records import read_metrics, read_run
from harness.sweeps.studies import (
    CSV_COLUMNS, SUMMARY_COLUMNS, capped_mean, lr_grid, lr_hyperparameter, lr_sensitivity, lr_study, oriented_loss,
    parse_range, plan_lr_study,
)
from tests import fakes

ROOT = Path(__file__).resolve().parent.parent
SGD = "tests.fakes:PLAIN_SGD"


def _nan_above(ctx):
    """A step whose loss turns nan once the learning rate is above 0.05: a diverging lr."""
    loss = api.default_update(ctx)
    return loss * float("nan") if ctx.optimizer.param_groups[0]["lr"] > 0.05 else loss


FRAGILE_SGD = SimpleNamespace(**{**vars(fakes.PLAIN_SGD), "update": _nan_above})
NO_LR = SimpleNamespace(KIND="optimizer", DEFAULTS={"step_size": 0.1}, SEARCH_SPACE={},
                        make_optimizer=lambda params, hp, step_hint: None)
NAMED_LR = SimpleNamespace(KIND="optimizer", LR_NAME="step_size", DEFAULTS={"step_size": 0.1, "lr": 1.0},
                           SEARCH_SPACE={"step_size": {"min": 1e-3, "max": 1.0, "scaling": "log"}},
                           make_optimizer=lambda params, hp, step_hint: None)


def _registry() -> Registry:
    registry = Registry(entry_points=False)
    # score = steps seen; evals every 2 steps; the target (> 3) is met at step 4
    registry.add_workload(fakes.fake_info(target=3.0, every_steps=2))
    return registry


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_grid_runs_every_lr_and_seed_as_an_ordinary_record_and_resumes(tmp_path):
    registry = _registry()
    result = lr_study("fake", [SGD], points=3, lr_range=(1e-3, 1e-1), steps=6, seeds=2, output=tmp_path,
                      registry=registry)
    assert len(result.ran) == 6 and not result.skipped and not result.interrupted
    root = tmp_path / "study_lr" / "fake-tiny"
    (label,) = result.study.grids  # the fake pairs PLAIN_SGD with a norm not named as the workload names it
    assert label.startswith("PLAIN_SGD")
    for k, lr in enumerate([0.001, 0.01, 0.1]):
        for s in range(2):
            run_dir = root / label / f"lr_{k}" / f"seed_{s}"
            rec = read_run(run_dir)
            assert rec["hyperparameters"]["optimizer"]["lr"] == pytest.approx(lr)
            assert rec["seed"] == s and rec["study"]["lr"] == pytest.approx(lr) and rec["study"]["kind"] == "lr"
            # all the steps: the target (met at step 4) did not end the run
            assert rec["status"] == "budget_exhausted" and rec["steps"] == 6
            assert rec["budget"]["step_hint"] == 6 and rec["target"]["value"] == 3.0
            assert [r["step"] for r in read_metrics(run_dir)] == [2, 4, 6]

    rows = _rows(root / "lr_sensitivity.csv")
    assert list(rows[0]) == list(CSV_COLUMNS) and len(rows) == 6
    assert {(float(r["lr"]), int(r["seed"])) for r in rows} == {(lr, s) for lr in (0.001, 0.01, 0.1) for s in (0, 1)}
    # time to target is read from metrics.jsonl: the first eval beyond 3 is step 4
    assert all(r["reached_target"] == "True" and r["steps_to_target"] == "4" for r in rows)
    assert all(float(r["final_metric"]) == 6.0 and float(r["first_metric"]) == 2.0 for r in rows)
    summary = _rows(root / "lr_summary.csv")
    assert list(summary[0]) == list(SUMMARY_COLUMNS) and len(summary) == 1
    assert summary[0]["loss"] == "1 - score" and float(summary[0]["lr_sensitivity"]) == 0.0
    assert float(summary[0]["best_lr_spread"]) == 0.0
    png = root / "lr_sensitivity.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = lr_study("fake", [SGD], points=3, lr_range=(1e-3, 1e-1), steps=6, seeds=2, output=tmp_path,
                     registry=registry)
    assert not again.ran and len(again.skipped) == 6
    assert len(_rows(root / "lr_sensitivity.csv")) == 6

    # another grid in the same place would replace finished runs: refused, nothing run
    with pytest.raises(UserInputError, match="different study"):
        plan_lr_study("fake", [SGD], points=3, lr_range=(1e-2, 1.0), steps=6, seeds=2, output=tmp_path,
                      registry=registry)


def test_a_diverged_point_is_marked_and_counts_as_the_initial_loss(tmp_path):
    registry = _registry()
    result = lr_study("fake", ["tests.test_studies:FRAGILE_SGD"], points=2, lr_range=(1e-2, 1e-1), steps=4,
                      output=tmp_path, registry=registry)
    by_lr = {r["lr"]: r for r in result.rows}
    assert by_lr[0.1]["status"] == "diverged" and by_lr[0.1]["diverged"] is True
    assert by_lr[0.1]["final_loss"] == math.inf
    assert by_lr[0.01]["diverged"] is False and by_lr[0.01]["status"] == "budget_exhausted"
    s = result.summary[0]
    assert s["diverged_runs"] == 1 and s["best_lr"] == 0.01
    # L_init: the first eval (step 2, score 2) of the smallest lr, as a loss 1 - 2 = -1;
    # the good point ends at score 4 (loss -3): sensitivity = mean(-3, -1) - (-3) = 1
    assert s["init_loss"] == -1.0 and s["best_loss"] == -3.0 and s["lr_sensitivity"] == pytest.approx(1.0)
    csv_rows = _rows(tmp_path / "study_lr" / "fake-tiny" / "lr_sensitivity.csv")
    assert [r["diverged"] for r in sorted(csv_rows, key=lambda r: float(r["lr"]))] == ["False", "True"]


class NanScoreTask(fakes.SleepTask):
    """The fake whose validation score turns nan once the weights do, as a real
    workload's metric does after divergence (written to metrics.jsonl as "nan")."""

    def evaluate(self, model):
        metrics = super().evaluate(model)
        if not all(bool(p.isfinite().all()) for p in model.parameters()):
            metrics = {k: float("nan") for k in metrics}
        return metrics


def _blow_up_above(ctx):
    """At an lr above 0.05 the weights become nan (and so the loss and every metric)."""
    loss = api.default_update(ctx)
    if ctx.optimizer.param_groups[0]["lr"] > 0.05:
        with torch.no_grad():
            for p in ctx.model.parameters():
                p.fill_(float("nan"))
    return loss


BLOW_UP_SGD = SimpleNamespace(**{**vars(fakes.PLAIN_SGD), "update": _blow_up_above})


def test_a_point_whose_metrics_went_nan_is_read_back_as_diverged(tmp_path):
    # metrics.jsonl holds "nan" strings (JSON has no NaN): reading them back must not break the study's tables
    registry = Registry(entry_points=False)
    registry.add_workload(fakes.fake_info(target=3.0, every_steps=2, task="tests.test_studies:NanScoreTask"))
    result = lr_study("fake", ["tests.test_studies:BLOW_UP_SGD"], points=2, lr_range=(1e-2, 1e-1), steps=4,
                      output=tmp_path, registry=registry)
    by_lr = {r["lr"]: r for r in result.rows}
    assert by_lr[0.1]["diverged"] is True and by_lr[0.1]["final_loss"] == math.inf
    assert by_lr[0.1]["reached_target"] is False and by_lr[0.01]["diverged"] is False
    nan_rows = read_metrics(by_lr[0.1]["run_dir"])
    assert nan_rows and all(math.isnan(r["validation/score"]) for r in nan_rows)
    assert result.summary[0]["diverged_runs"] == 1 and result.summary[0]["best_lr"] == 0.01


def test_lr_sensitivity_against_a_hand_computed_example():
    # Wortsman et al. 2023: mean over the grid of min(L, L_init) - L*.
    # losses 2.0, 1.0, 1.5, 9.0 (above L_init: capped to 3.0), nan (diverged: 3.0);
    # L* = 1.0; mean of (1.0, 0.0, 0.5, 2.0, 2.0) = 1.1
    assert lr_sensitivity([2.0, 1.0, 1.5, 9.0, math.nan], init_loss=3.0) == pytest.approx(1.1)
    assert lr_sensitivity([1.0, 1.0], init_loss=3.0) == 0.0
    assert lr_sensitivity([math.inf, math.inf], init_loss=3.0) == 0.0  # all diverged: no better lr
    assert math.isnan(lr_sensitivity([], init_loss=3.0))
    assert capped_mean([1.0, math.inf], 3.0) == 2.0
    assert oriented_loss(0.9, "max") == pytest.approx(0.1) and oriented_loss(2.5, "min") == 2.5
    assert oriented_loss(float("nan"), "min") == math.inf and oriented_loss(None, "max") == math.inf


def test_grid_range_and_lr_name():
    assert lr_grid(1e-4, 1e-1, 4) == [1e-4, 1e-3, 1e-2, 1e-1]
    assert lr_grid(1e-3, 1e-1, 3) == [1e-3, 1e-2, 1e-1]
    assert parse_range("1e-4:1e-1") == (1e-4, 1e-1)
    for bad in ("1e-4", "a:b"):
        with pytest.raises(UserInputError, match="LOW:HIGH"):
            parse_range(bad)
    with pytest.raises(UserInputError, match="at least 1"):
        lr_grid(1e-4, 1e-1, 0)
    with pytest.raises(UserInputError, match="0 < LOW < HIGH"):
        lr_grid(1e-1, 1e-4, 3)
    registry = Registry(entry_points=False)
    assert lr_hyperparameter(registry.submission(SGD)) == "lr"
    assert lr_hyperparameter(registry.submission("tests.test_studies:NAMED_LR")) == "step_size"
    assert lr_hyperparameter(registry.submission("adamw")) == "lr"


def test_default_range_is_the_search_space_and_a_submission_without_lr_is_refused(tmp_path):
    registry = _registry()
    study = plan_lr_study("fake", [SGD], points=3, steps=4, output=tmp_path, registry=registry)
    assert list(study.grids.values()) == [[1e-3, 1e-2, 1e-1]]  # PLAIN_SGD's SEARCH_SPACE
    assert len(study.to_run) == 3 and not list(tmp_path.iterdir())  # planning runs and writes nothing
    with pytest.raises(UserInputError, match="no learning-rate hyperparameter"):
        plan_lr_study("fake", ["tests.test_studies:NO_LR"], points=3, steps=4, output=tmp_path, registry=registry)
    with pytest.raises(UserInputError, match="at least one"):
        plan_lr_study("fake", [], output=tmp_path, registry=registry)


def test_bench_study_lr_help_does_not_import_torch():
    probe = (
        "import sys\nfrom harness.cli import app\nfrom typer.testing import CliRunner\n"
        "r = CliRunner().invoke(app, ['study', 'lr', '--help'])\n"
        "assert r.exit_code == 0, r.output\nassert '--points' in r.output and '--range' in r.output, r.output\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


def test_the_estimate_counts_steps_and_evaluations_from_this_machines_probe_then_the_studys_runs(tmp_path, monkeypatch):
    from harness.run import speed
    from harness.sweeps.studies import estimate_s

    info = fakes.fake_info(target=3.0, every_steps=2)
    size = api.Size(**{**vars(info.sizes["tiny"]), "reference_steps": 40, "target_setting": {
        "optimizer": SGD, "hyperparameters": {"lr": 0.01}, "hardware_id": "hw-reference", "seconds_per_step": 0.5}})
    registry = Registry(entry_points=False)
    registry.add_workload(api.WorkloadInfo(**{**vars(info), "sizes": {"tiny": size}}))
    study = plan_lr_study("fake", [SGD], points=3, lr_range=(1e-3, 1e-1), steps=6, output=tmp_path, registry=registry)
    seconds, basis = estimate_s(study)
    # 3 runs x 6 steps x (a 0.02 s step + a 0.05 s evaluation every 2 steps); not the calibration's 0.5 s/step
    assert basis == "this machine's speed probe of the size's baseline"
    expected = 3 * 6 * (fakes.STEP_S + fakes.EVAL_S / 2)
    assert expected <= seconds < expected * 1.6
    lr_study("fake", [SGD], points=3, lr_range=(1e-3, 1e-1), steps=6, output=tmp_path, registry=registry)
    more_seeds = plan_lr_study("fake", [SGD], points=3, lr_range=(1e-3, 1e-1), steps=6, seeds=2, output=tmp_path,
                               registry=registry)
    seconds, basis = estimate_s(more_seeds)  # seed 1's three runs, at the finished seed-0 runs' pace
    assert basis == "3 finished run(s) of this study" and seconds > 0
    monkeypatch.setattr(speed, "_probe_contention", lambda *args: "contended: busy")
    monkeypatch.setenv("OPTBENCH_CACHE_DIR", str(tmp_path / "empty-cache"))  # measured afresh, beside "other work"
    busy = plan_lr_study("fake", [SGD], points=2, steps=6, output=tmp_path / "d", registry=registry)
    assert estimate_s(busy)[1] == "this machine's speed probe of the size's baseline, taken beside other work"
    # without a tuned baseline to probe, the size's calibration figure; without that, no estimate
    plain = plan_lr_study("fake", [SGD], points=2, steps=6, output=tmp_path / "c", registry=_registry())
    assert estimate_s(plain) == (None, "no finished run and no calibration to go by")


def test_study_points_are_on_no_board_not_even_an_unofficial_one(tmp_path):
    from harness.score.scoring import score_records

    registry = _registry()
    lr_study("fake", [SGD], points=2, lr_range=(1e-3, 1e-1), steps=4, output=tmp_path, registry=registry)
    sizes = lambda workload, size: registry.workloads[workload].info.sizes[size]  # noqa: E731
    board = score_records([tmp_path], include_unofficial=True, sizes=sizes)
    assert board.groups == [] and len(board.left_out) == 2
    assert all(r.startswith("a point of bench study lr (fixed steps") for r in board.left_out["reason"])
