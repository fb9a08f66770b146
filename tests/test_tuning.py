"""Tuning sweeps: Halton points, AlgoPerf search-space files, rulesets, resuming,
and a tiny end-to-end tune -> score on the fake workload."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from typer.testing import CliRunner

from harness import api
from harness.errors import UserInputError
from harness.run.records import read_run, write_json_atomic
from harness.plugins.registry import Registry
from harness.sweeps.tuning import load_ruleset, load_search_space, plan_sweep, search_points, summarize, tune
from tests import fakes

ROOT = Path(__file__).resolve().parent.parent
SGD = "tests.fakes:PLAIN_SGD"


def _slow_update(ctx):
    fakes.busy_wait(fakes.STEP_S)  # twice the fake's step cost
    return api.default_update(ctx)


SLOW_SGD = SimpleNamespace(**{**vars(fakes.PLAIN_SGD), "update": _slow_update})


def _registry() -> Registry:
    registry = Registry(entry_points=False)
    # score = steps seen; evals every 5 steps; the target (> 5) is met at step 10
    registry.add_workload(fakes.fake_info(target=5.0, every_steps=5))
    return registry


# --------------------------------------------------------------------------- #
# Points                                                                       #
# --------------------------------------------------------------------------- #

SPACE = {
    "lr": {"min": 1e-4, "max": 1e-1, "scaling": "log"},
    "momentum": {"min": 0.8, "max": 0.99, "scaling": "linear"},
    "warmup": {"feasible_points": [0.02, 0.05, 0.1]},
    "nesterov": {"feasible_points": [True]},
}


def test_halton_points_are_reproducible_and_inside_the_space():
    a, b = search_points(SPACE, 16, seed=7), search_points(SPACE, 16, seed=7)
    assert a == b
    assert search_points(SPACE, 16, seed=8) != a  # another study, other points
    assert search_points(SPACE, 5, seed=7) == a[:5]  # more trials later extend the same sequence
    for p in a:
        assert list(p) == list(SPACE)
        assert 1e-4 <= p["lr"] <= 1e-1 and 0.8 <= p["momentum"] <= 0.99
        assert p["warmup"] in (0.02, 0.05, 0.1) and p["nesterov"] is True
        assert type(p["lr"]) is float
    # quasirandom: every feasible point shows up, and log scaling spreads decades evenly
    assert {p["warmup"] for p in a} == {0.02, 0.05, 0.1}
    decades = [math.floor(math.log10(p["lr"])) for p in a]
    assert all(4 <= decades.count(d) <= 7 for d in (-4, -3, -2))  # ~16/3 per decade
    lows = sum(p["momentum"] < 0.895 for p in a)
    assert 6 <= lows <= 10  # linear: about half below the midpoint


def test_list_space_cycles_and_empty_space_gives_defaults():
    fixed = [{"lr": 0.1}, {"lr": 0.2}]
    assert search_points(fixed, 5, seed=0) == [{"lr": 0.1}, {"lr": 0.2}, {"lr": 0.1}, {"lr": 0.2}, {"lr": 0.1}]
    assert search_points({}, 3, seed=0) == [{}, {}, {}]


def test_algoperf_search_space_files_are_read_unchanged(tmp_path):
    # the shapes of AlgoPerf's tuning_search_space.json files (paper baselines: a
    # dict of ranges and feasible points; prize-qualification baselines: a list)
    algoperf_dict = {
        "learning_rate": {"min": 1e-4, "max": 1e-2, "scaling": "log"},
        "one_minus_beta1": {"min": 1e-2, "max": 0.45, "scaling": "log"},
        "beta2": {"feasible_points": [0.999]},
        "warmup_factor": {"feasible_points": [0.05]},
        "weight_decay": {"min": 1e-5, "max": 1.0, "scaling": "log"},
        "label_smoothing": {"feasible_points": [0.1, 0.2]},
        "dropout_rate": {"min": 0.0, "max": 0.1, "scaling": "linear"},
    }
    algoperf_list = [
        {"dropout_rate": 0.0, "label_smoothing": 0.1, "learning_rate": 0.0017486387539278373, "one_minus_beta1": 0.06733926164,
         "beta2": 0.9955159689799007, "weight_decay": 0.08121616522670176, "warmup_factor": 0.02},
        {"dropout_rate": 0.0, "label_smoothing": 0.2, "learning_rate": 0.0014446807792420305, "one_minus_beta1": 0.0529512107,
         "beta2": 0.9949504793105925, "weight_decay": 0.21631115226898035, "warmup_factor": 0.02},
    ]
    (tmp_path / "d.json").write_text(json.dumps(algoperf_dict, indent=2))
    (tmp_path / "l.json").write_text(json.dumps(algoperf_list, indent=2))
    d = load_search_space(tmp_path / "d.json")
    assert d == algoperf_dict
    points = search_points(d, 5, seed=1)
    assert all(1e-4 <= p["learning_rate"] <= 1e-2 and p["beta2"] == 0.999 for p in points)
    assert search_points(load_search_space(tmp_path / "l.json"), 3, seed=1)[2] == algoperf_list[0]
    (tmp_path / "bad.json").write_text('{"lr": {"min": 1, "max": 0.1, "scaling": "log"}}')
    with pytest.raises(UserInputError, match="greater than max"):
        load_search_space(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text('{"lr": ')
    with pytest.raises(UserInputError, match="not valid JSON"):
        load_search_space(tmp_path / "broken.json")


def test_search_space_file_drives_the_sweep_and_names_are_checked(tmp_path):
    registry = _registry()
    (tmp_path / "s.json").write_text(json.dumps({"lr": {"min": 0.2, "max": 0.3, "scaling": "linear"}}))
    sweep = plan_sweep("fake", SGD, size="tiny", studies=2, trials=2, search_space=tmp_path / "s.json",
                       output=tmp_path, registry=registry)
    assert [(t.study, t.index) for t in sweep.trials] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for t in sweep.trials:
        assert 0.2 <= t.plan.hp_optimizer["lr"] <= 0.3
        assert t.plan.hp_optimizer["lr"] == t.point["optimizer"]["lr"]  # exact round trip through the override
        assert t.action == "run" and t.why == "new"
    assert len({t.trial_id for t in sweep.trials}) == 4 and len({t.seed for t in sweep.trials}) == 4
    again = plan_sweep("fake", SGD, size="tiny", studies=2, trials=2, search_space=tmp_path / "s.json",
                       output=tmp_path, registry=registry)
    assert [t.trial_id for t in again.trials] == [t.trial_id for t in sweep.trials]
    other_seed = plan_sweep("fake", SGD, size="tiny", studies=1, trials=1, seed=1, output=tmp_path, registry=registry)
    assert other_seed.trials[0].trial_id not in {t.trial_id for t in sweep.trials}

    # AlgoPerf's names are the submission's (tests/test_algoperf_names.py); a name nobody knows is refused.
    (tmp_path / "l.json").write_text(json.dumps([{"optimizer.lr": 0.5}, {"learning_rte": 0.1}]))
    with pytest.raises(UserInputError, match="unknown optimizer hyperparameter 'learning_rte'"):
        plan_sweep("fake", SGD, size="tiny", studies=1, trials=2, search_space=tmp_path / "l.json",
                   output=tmp_path, registry=registry)


# --------------------------------------------------------------------------- #
# Rulesets                                                                     #
# --------------------------------------------------------------------------- #


def test_rulesets_ship_with_algoperf_defaults():
    ext, self_ = load_ruleset("external"), load_ruleset("self")
    assert (ext.search, ext.studies, ext.trials, ext.budget_multiplier) == ("halton", 3, 5, 1.0)
    assert (self_.search, self_.trials, self_.budget_multiplier) == ("none", 1, 3.0)
    with pytest.raises(UserInputError, match="did you mean 'self'"):
        load_ruleset("selff")


def test_self_tuning_runs_defaults_with_three_times_the_budget_officially(tmp_path):
    registry = _registry()
    sweep = plan_sweep("fake", SGD, size="tiny", ruleset="self", studies=2, output=tmp_path, registry=registry)
    assert len(sweep.trials) == 2 and all(t.point == {"optimizer": {}, "norm": {}} for t in sweep.trials)
    for t in sweep.trials:
        assert dict(t.plan.hp_optimizer) == fakes.PLAIN_SGD.DEFAULTS
        assert t.plan.max_runtime_s == 3 * 30.0 and t.plan.deviations == []
    assert sweep.trials[0].run_dir.parts[-5:-2] == ("self", "fake-tiny", sweep.label)
    with pytest.raises(UserInputError, match="--trials must be 1"):
        plan_sweep("fake", SGD, size="tiny", ruleset="self", trials=2, output=tmp_path, registry=registry)
    with pytest.raises(UserInputError, match="no search"):
        plan_sweep("fake", SGD, size="tiny", ruleset="self", search_space={"lr": {"feasible_points": [1]}},
                   output=tmp_path, registry=registry)
    result = tune("fake", SGD, size="tiny", ruleset="self", studies=1, output=tmp_path, registry=registry)
    rec = result.records[0]
    assert rec["official"] is True and rec["budget"]["max_runtime_s"] == 90.0
    assert rec["tuning"]["ruleset"] == "self" and rec["tuning"]["budget_multiplier"] == 3.0
    assert rec["experiment"] == "self"


def test_a_ruleset_can_pin_the_hardware_class(tmp_path):
    pinned = tmp_path / "pinned.yaml"
    pinned.write_text("name: external\nsearch: halton\nstudies: 1\ntrials: 2\nhardware_id: hw-000000000000\n")
    assert load_ruleset(pinned).hardware_id == "hw-000000000000"
    registry = _registry()
    sweep = plan_sweep("fake", SGD, size="tiny", ruleset=str(pinned), output=tmp_path / "r", registry=registry)
    assert all(t.plan.config["hardware_id"] == "hw-000000000000" for t in sweep.trials)
    unpinned = plan_sweep("fake", SGD, size="tiny", ruleset="external", studies=1, trials=2, output=tmp_path / "r",
                          registry=registry)
    assert [t.trial_id for t in unpinned.trials] != [t.trial_id for t in sweep.trials]  # a pin is part of the identity
    rec = tune("fake", SGD, size="tiny", ruleset=str(pinned), output=tmp_path / "r", registry=registry).records[0]
    assert rec["official"] is False and "is not the pinned hw-000000000000" in rec["deviations"][0]
    # the pin does not hide a budget the user changed
    sweep = plan_sweep("fake", SGD, size="tiny", ruleset=str(pinned), overrides=["budget.max_runtime_s=5"],
                       output=tmp_path / "u", registry=registry)
    assert all(t.plan.deviations == ["max_runtime_s=5"] for t in sweep.trials)


# --------------------------------------------------------------------------- #
# Resuming                                                                     #
# --------------------------------------------------------------------------- #


class _Events:
    def __init__(self):
        self.ended: list[tuple[str, bool]] = []
        self.evals = 0

    def on_trial_start(self, trial):
        pass

    def on_eval(self, trial, row):
        self.evals += 1

    def on_trial_end(self, trial, record, ran):
        self.ended.append((trial.name, ran))


def test_rerunning_a_sweep_skips_finished_trials_and_reruns_the_rest(tmp_path):
    registry = _registry()
    kwargs = dict(size="tiny", studies=1, trials=3, output=tmp_path, registry=registry)
    events = _Events()
    first = tune("fake", SGD, observer=events, **kwargs)
    assert [t.record["status"] for t in first.ran] == ["reached"] * 3
    assert events.ended == [(f"study 0 trial {i}", True) for i in range(3)] and events.evals == 6
    dirs = [t.run_dir for t in first.sweep.trials]
    assert dirs[1] == tmp_path / "external" / "fake-tiny" / first.sweep.label / "study_0" / "trial_1"
    rec = read_run(dirs[1])
    assert rec["tuning"]["trial"] == 1 and rec["tuning"]["trial_id"] == first.sweep.trials[1].trial_id
    assert rec["seed"] == first.sweep.trials[1].seed
    assert rec["hyperparameters"]["optimizer"]["lr"] == first.sweep.trials[1].point["optimizer"]["lr"]
    assert json.loads((first.sweep.root / "sweep.json").read_text())["trials"][1]["trial_id"] == rec["tuning"]["trial_id"]
    stamp = lambda d: (d / "run.json").stat().st_mtime_ns  # noqa: E731
    before = [stamp(d) for d in dirs]

    events = _Events()
    second = tune("fake", SGD, observer=events, **kwargs)
    assert second.ran == [] and len(second.skipped) == 3
    assert events.ended == [(f"study 0 trial {i}", False) for i in range(3)]
    assert [stamp(d) for d in dirs] == before
    assert summarize(second.records)["time_s"] == summarize(first.records)["time_s"]

    # a lost record and a crashed (still "running") one are run again, only those
    (dirs[0] / "run.json").unlink()
    crashed = read_run(dirs[1])
    crashed["status"] = "running"
    write_json_atomic(dirs[1] / "run.json", crashed)
    third = tune("fake", SGD, **kwargs)
    assert [t.index for t in third.ran] == [0, 1] and [t.index for t in third.skipped] == [2]
    assert stamp(dirs[2]) == before[2]
    assert [t.record["tuning"]["trial_id"] for t in third.ran] == [t.trial_id for t in first.sweep.trials[:2]]
    assert read_run(dirs[1])["status"] == "reached"

    # errors are retried; an unfinished record of another definition is replaced
    errored = read_run(dirs[0])
    errored["status"] = "error"
    write_json_atomic(dirs[0] / "run.json", errored)
    stale = read_run(dirs[2])
    stale["tuning"]["trial_id"] = "0123456789ab"
    stale["status"] = "interrupted"
    write_json_atomic(dirs[2] / "run.json", stale)
    plan = plan_sweep("fake", SGD, **kwargs)
    assert [(t.action, t.why.split(" (")[0].split(":")[0]) for t in plan.trials] == [
        ("run", "previous attempt errored"), ("skip", "finished earlier"), ("run", "definition changed")]

    # ...but a finished trial of another sweep is never replaced: the budget is
    # part of a trial's identity, so this is another sweep, and it is refused.
    before = [stamp(d) for d in dirs[:2]]
    with pytest.raises(UserInputError, match="finished trials of a different sweep.*--experiment") as err:
        plan_sweep("fake", SGD, overrides=["budget.max_steps=40"], **kwargs)
    assert "What differs: budget.max_steps None -> 40" in str(err.value)
    assert [stamp(d) for d in dirs[:2]] == before
    changed = plan_sweep("fake", SGD, overrides=["budget.max_steps=40"], **{**kwargs, "experiment": "other"})
    assert all(t.action == "run" for t in changed.trials)


def test_a_changed_plugin_file_is_named_when_a_finished_sweep_is_refused(tmp_path):
    from harness.plugins.scaffold import new_submission

    path = new_submission("sha_opt", directory=tmp_path / "code").files[0]
    kwargs = dict(size="tiny", studies=1, trials=1, output=tmp_path / "res", registry=_registry())
    tune("fake", str(path), **kwargs)
    old_sha = read_run(next((tmp_path / "res").rglob("run.json")).parent)["optimizer"]["sha256"]
    path.write_text(path.read_text() + "\n# a comment changes the sha256, so the trial's identity\n")
    with pytest.raises(UserInputError) as err:
        plan_sweep("fake", str(path), **kwargs)
    message = str(err.value)
    assert f"optimizer sha_opt's source changed ({path}: sha256 {old_sha[:12]}..." in message
    assert "--experiment NAME" in message and "run it as it was" in message


def test_summarize_is_the_median_over_studies_of_the_fastest_reaching_trial():
    def rec(study, trial, status, t=None):
        return {"status": status, "time_to_target_s": t, "steps_to_target": None if t is None else 10 * t,
                "tuning": {"study": study, "trial": trial}}

    recs = [rec(0, 0, "reached", 3.0), rec(0, 1, "reached", 2.0), rec(1, 0, "diverged"), rec(1, 1, "budget_exhausted"),
            rec(2, 0, "reached", 5.0)]
    s = summarize(recs)
    assert s["time_s"] == 5.0 and s["steps"] == 50.0 and s["studies_reached"] == 2
    assert [(x["study"], x["best_trial"]) for x in s["studies"]] == [(0, 1), (1, None), (2, 0)]
    assert math.isinf(summarize(recs[:4])["time_s"])


# --------------------------------------------------------------------------- #
# CLI                                                                          #
# --------------------------------------------------------------------------- #


def test_help_of_the_sweep_commands_imports_nothing_heavy():
    probe = (
        "import sys\nfrom harness.cli import app\nfrom typer.testing import CliRunner\n"
        "for args in (['--help'], ['tune', '--help'], ['score', '--help'], ['compare', '--help']):\n"
        "    r = CliRunner().invoke(app, args)\n    assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('torch', 'pandas', 'scipy', 'matplotlib', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


def test_bench_tune_dry_run_prints_the_points_and_runs_nothing(tmp_path):
    from harness.cli import app

    args = ["tune", "-s", "lion", "-w", "cifar", "--size", "tiny", "--studies", "2", "--trials", "2", "-o", str(tmp_path)]
    r = CliRunner().invoke(app, [*args, "--dry-run"], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    rows = [line for line in r.output.splitlines() if "run: new" in line]
    assert len(rows) == 4 and "weight_decay" in r.output and "4 to run" in r.output
    assert not any(tmp_path.iterdir())
    r2 = CliRunner().invoke(app, [*args, "--dry-run"], env={"COLUMNS": "250"})
    assert [line for line in r2.output.splitlines() if "run: new" in line] == rows  # reproducible
    r = CliRunner().invoke(app, [*args, "--ruleset", "self"], env={"COLUMNS": "250"})
    assert r.exit_code == 2 and "--trials must be 1" in r.output
    r = CliRunner().invoke(app, [*args, "--executor", "slurm"], env={"COLUMNS": "250"})
    assert r.exit_code == 2 and "not available" in r.output


@pytest.mark.slow
def test_tune_two_optimizers_then_score_gives_a_consistent_leaderboard(tmp_path):
    """The issue's tiny end-to-end, on the fake workload (cifar tiny does not
    reach its target within a test's time on 2 CPU cores): tune two optimizers,
    1 study x 3 trials each, then `bench score`."""
    from harness.cli import app
    from harness.score.scoring import score_times

    registry = _registry()
    for sub in (SGD, "tests.test_tuning:SLOW_SGD"):
        result = tune("fake", sub, size="tiny", studies=1, trials=3, output=tmp_path, registry=registry)
        assert summarize(result.records)["studies_reached"] == 1
    out = tmp_path / "board"
    # The fake workload is not installed where `bench score` looks: its records
    # cannot be checked against a definition, so they make no official board.
    r = CliRunner().invoke(app, ["score", str(tmp_path), "--out", str(out)], env={"COLUMNS": "200"})
    assert r.exit_code == 2 and "no record is comparable (6 left out" in r.output and "--unofficial" in r.output
    r = CliRunner().invoke(app, ["score", str(tmp_path), "--unofficial", "--out", str(out)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    scores = pd.read_csv(out / "scores.csv")
    assert len(scores) == 2 and set(scores["ruleset"]) == {"external"} and set(scores["board"]) == {"unofficial"}
    assert scores.loc[0, "submission"].startswith("PLAIN_SGD") and scores.loc[0, "score"] == 1.0
    assert scores.loc[1, "submission"].startswith("SLOW_SGD") and 0.5 < scores.loc[1, "score"] < 0.8
    ttt = pd.read_csv(out / "time_to_target.csv")
    assert set(ttt["steps"]) == {10.0} and (ttt["trials"] == 3).all()
    slow = ttt.set_index("submission").loc[scores.loc[1, "submission"]]
    assert 1.7 < slow["ratio"] < 2.3  # twice the step cost
    # the score is the one the table implies
    again = score_times(ttt[["submission", "workload", "time_s"]])
    assert again.scores[scores.loc[1, "submission"]] == pytest.approx(scores.loc[1, "score"], abs=1e-12)
    assert (out / "profile.png").stat().st_size > 10_000
    assert len(pd.read_parquet(out / "trials.parquet")) == 6
    for name in scores["submission"]:
        assert name in r.output


def test_bench_tune_says_how_close_a_miss_came(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from harness.cli import sweeps as cli_sweeps

    buffer = io.StringIO()
    monkeypatch.setattr(cli_sweeps, "console", Console(file=buffer, width=250, color_system=None))
    sweep = plan_sweep("fake", SGD, size="tiny", studies=1, trials=1, output=tmp_path, registry=_registry())
    observer = cli_sweeps._RichSweepObserver(sweep)
    record = {"status": "budget_exhausted",
              "reason": "timed budget of 30 s spent at step 900; best validation/score 20, target > 25"}
    observer.on_trial_end(sweep.trials[0], record, ran=True)
    observer.stop()
    assert "budget_exhausted — best validation/score 20, target > 25" in buffer.getvalue()
