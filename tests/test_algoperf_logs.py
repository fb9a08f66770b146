"""`bench score --algoperf-logs`: AlgoPerf's own eval_measurements.csv files,
in AlgoPerf's layout and columns, timed and scored as AlgoPerf's scoring code
does (earliest-reaching trial per study by eval index, inclusive target,
median over studies)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from harness.errors import UserInputError
from harness.score import algoperf_logs
from harness.score.scoring import score_times

COLUMNS = ["accumulated_eval_time", "accumulated_logging_time", "accumulated_submission_time", "global_step",
           "preemption_count", "score", "total_duration", "train/loss", "validation/{m}", "validation/num_examples"]


def write_trial(root, submission, workload, study, trial, metric, values, seconds, framework="pytorch"):
    """One trial's eval_measurements.csv, as AlgoPerf's submission_runner writes it."""
    path = root / submission / f"study_{study}" / f"{workload}_{framework}" / f"trial_{trial}" / "eval_measurements.csv"
    path.parent.mkdir(parents=True)
    rows = []
    for i, (value, t) in enumerate(zip(values, seconds)):
        rows.append({"accumulated_eval_time": 1.0 * i, "accumulated_logging_time": 0.0, "accumulated_submission_time": t,
                     "global_step": 100 * (i + 1), "preemption_count": 0, "score": t, "total_duration": t + i,
                     "train/loss": 1.0, f"validation/{metric}": value, "validation/num_examples": 1000})
    pd.DataFrame(rows, columns=[c.format(m=metric) for c in COLUMNS]).to_csv(path, index=False)


@pytest.fixture
def logs(tmp_path):
    root = tmp_path / "logs"
    m = "mean_average_precision"  # ogbg: target 0.28098, higher is better
    # submission a, study 0: trial 1 reaches at eval index 1 (t=20), trial 0 at index 2 (t=15, earlier in time
    # but later in evals): AlgoPerf takes the earliest eval index -> 20
    write_trial(root, "a", "ogbg", 0, 0, m, [0.1, 0.2, 0.29], [5, 10, 15])
    write_trial(root, "a", "ogbg", 0, 1, m, [0.1, 0.28098, 0.3], [10, 20, 30])  # equal to the target counts
    write_trial(root, "a", "ogbg", 1, 0, m, [0.1, 0.3, 0.3], [12, 24, 36])  # -> 24
    write_trial(root, "b", "ogbg", 0, 0, m, [0.3, 0.3], [40, 80])  # -> 40
    write_trial(root, "b", "ogbg", 1, 0, m, [0.1, 0.2], [40, 80])  # -> miss
    # wmt (bleu > 30.8491), jax this time
    write_trial(root, "a", "wmt", 0, 0, "bleu", [20.0, 31.0], [100, 200], framework="jax")  # -> 200
    write_trial(root, "b", "wmt", 0, 0, "bleu", [31.0, 32.0], [150, 300], framework="jax")  # -> 150
    write_trial(root, "b", "my_workload", 0, 0, "accuracy", [0.9], [1], framework="jax")  # no v0.5 target
    return root


def test_times_follow_algoperfs_rules(logs):
    notes = []
    times = algoperf_logs.times(logs, notes).set_index(["submission", "workload"])["time_s"]
    assert times[("a", "ogbg")] == pytest.approx((20 + 24) / 2)  # median of the two studies
    assert math.isinf(times[("b", "ogbg")])  # median of [40, inf] is inf, as numpy's
    assert times[("a", "wmt")] == 200 and times[("b", "wmt")] == 150
    assert len(notes) == 1 and "my_workload" in notes[0]


def test_scores_are_the_scorer_on_those_times(logs):
    times = algoperf_logs.times(logs)
    result = score_times(times)
    # a: fastest on ogbg (b missed), 200/150 = 1.33x on wmt; b: fastest on wmt, missed ogbg
    assert result.ratios.loc["a", "ogbg"] == 1.0 and result.ratios.loc["a", "wmt"] == pytest.approx(200 / 150)
    assert result.scores["a"] > result.scores["b"] > 0


def test_the_cli_scores_algoperf_logs(logs, tmp_path):
    from harness.cli import app

    out = tmp_path / "board"
    r = CliRunner().invoke(app, ["score", "--algoperf-logs", str(logs), "--out", str(out)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores["submission"]) == ["a", "b"]
    r = CliRunner().invoke(app, ["score", "--algoperf-logs", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_a_directory_without_algoperf_logs_is_refused(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(UserInputError, match="no eval_measurements.csv"):
        algoperf_logs.times(tmp_path / "x")
