"""Records that agree with their own logs.

The scorer checks a record's time and steps to target against its
``metrics.jsonl``: for ``reached``, the first line whose validation metric is
strictly better than the target must carry exactly the record's
``steps_to_target`` and ``time_to_target_s``; for ``budget_exhausted``, no line
may meet the target within the budget. A record edited by hand and resealed
(digest recomputed), or one whose log says otherwise, is left out with a
warning naming it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import api

from harness.score import scoring
from harness.run.records import MetricsLog, read_run, seal, write_json_atomic
from tests.test_scoring import record

TARGET = {"metric": "accuracy", "value": 0.9, "direction": "max", "test_value": None}
BUDGET_S = 60.0


@pytest.fixture(autouse=True)
def _workload_w_is_defined_by_a_60_s_budget(monkeypatch):
    """The size these records were timed against (they say ``w``/``tiny``)."""
    size = api.Size(name="tiny", description="test", dataset="none", model="none", batch_size=8,
                    target=api.Target("accuracy", 0.9, "max"), max_runtime_s=BUDGET_S, step_hint=100, eval_every_steps=10)
    monkeypatch.setattr(scoring, "installed_size", lambda workload, size_name: size)


def checkable(rec: dict, target: dict = TARGET) -> dict:
    """``rec`` (tests.test_scoring.record) with what a runner's record also
    carries: its target, its budget and its timed seconds."""
    timed = rec["time_to_target_s"] if rec["status"] == "reached" else BUDGET_S
    return {**rec, "target": dict(target), "budget": {"basis": "fixed", "max_runtime_s": BUDGET_S},
            "timed_s": timed, "steps": rec["steps_to_target"] or 100}


def rows_for(rec: dict) -> list[dict]:
    """The metrics lines a run with this record would have logged: one eval
    halfway, below the target, and one at the end that meets it (reached) or
    not (any other status)."""
    target = rec["target"]
    value = target["value"]
    below, above = (value / 2, (1 + value) / 2) if target["direction"] == "max" else (2 * value, value / 2)
    steps, timed = rec["steps"], rec["timed_s"]
    last = above if rec["status"] == "reached" else below
    return [
        {"step": steps // 2, "timed_s": timed / 2, "train/loss": 1.0, f"validation/{target['metric']}": below},
        {"step": steps, "timed_s": timed, "train/loss": 0.5, f"validation/{target['metric']}": last},
    ]


def write_run(run_dir: Path, rec: dict, rows: list[dict] | None = None, sealed: bool = True) -> Path:
    """A run directory as the runner leaves it: run.json (sealed) and a
    metrics.jsonl that agrees with it unless ``rows`` says otherwise. Returns
    the run.json path."""
    rec = checkable(rec) if "timed_s" not in rec else rec
    run_dir.mkdir(parents=True, exist_ok=True)
    log = MetricsLog(run_dir / "metrics.jsonl")
    for row in rows_for(rec) if rows is None else rows:
        log.append(row)
    log.close()
    path = run_dir / "run.json"
    write_json_atomic(path, seal(rec) if sealed else rec)
    return path


def reseal(path: Path, **changes) -> dict:
    """Edit a run.json by hand and recompute its digest, as a forger would."""
    rec = {k: v for k, v in read_run(path.parent).items() if k != "digest"}
    rec.update(changes)
    write_json_atomic(path, seal(rec))
    return rec


def kept(board) -> list[str]:
    return sorted(r["submission"]["name"] for r in board.records)


def skipped(board, path: Path) -> str:
    (note,) = [w for w in board.warnings if w.startswith(f"skipped {path}:")]
    return note


# --------------------------------------------------------------------------- #


def test_a_consistent_record_is_kept(tmp_path):
    write_run(tmp_path / "a", record(sub="a", t=10.0, steps=100))
    write_run(tmp_path / "b", record(sub="b", status="budget_exhausted"))
    board = scoring.score_records([tmp_path])
    assert kept(board) == ["a", "b"] and board.warnings == []
    assert board.trials.set_index("submission").loc["a", "time_to_target_s"] == 10.0


def test_a_record_edited_by_hand_and_resealed_is_left_out(tmp_path):
    honest = write_run(tmp_path / "honest", record(sub="honest", t=20.0))
    forged = write_run(tmp_path / "forged", record(sub="forged", t=50.0, steps=100))
    reseal(forged, time_to_target_s=5.0)  # would top the leaderboard; the digest matches again
    board = scoring.score_records([tmp_path])
    assert kept(board) == ["honest"]
    note = skipped(board, forged)
    assert "time_to_target_s 5.0 disagrees with the first line of its metrics.jsonl meeting its target" in note
    assert "line 2" in note and "timed_s 50.0" in note
    assert str(honest) not in "\n".join(board.warnings)


def test_resealed_steps_or_status_are_left_out_too(tmp_path):
    steps = write_run(tmp_path / "steps", record(sub="steps", t=50.0, steps=100))
    reseal(steps, steps_to_target=40)
    missed = write_run(tmp_path / "missed", record(sub="missed", status="budget_exhausted"))
    reseal(missed, status="reached", time_to_target_s=30.0, steps_to_target=50)  # a miss turned into a reach
    reached = write_run(tmp_path / "reached", record(sub="reached", t=50.0))
    reseal(reached, status="budget_exhausted", time_to_target_s=None, steps_to_target=None)  # a reach hidden
    board = scoring.score_records([tmp_path])
    assert kept(board) == []
    assert "steps_to_target 40 disagrees with the first line" in skipped(board, steps) and "step 100" in skipped(board, steps)
    assert "status reached but no line of its metrics.jsonl meets its target (validation/accuracy > 0.9)" in skipped(board, missed)
    assert ("status budget_exhausted but line 2 of its metrics.jsonl meets its target "
            "(validation/accuracy 0.95 > 0.9) at step 100, timed_s 50.0, within the budget of 60 s") in skipped(board, reached)


def test_the_first_line_meeting_the_target_counts_not_a_later_one(tmp_path):
    rec = checkable(record(sub="late", t=30.0, steps=30))
    rows = [{"step": 10, "timed_s": 10.0, "validation/accuracy": 0.5},
            {"step": 20, "timed_s": 20.0, "validation/accuracy": 0.91},  # meets: the run stopped here
            {"step": 30, "timed_s": 30.0, "validation/accuracy": 0.95}]
    late = write_run(tmp_path / "late", rec, rows)
    board = scoring.score_records([late])
    note = skipped(board, late)
    assert kept(board) == [] and "meeting its target (line 2, validation/accuracy 0.91): step 20" in note


def test_meeting_is_strictly_better_and_on_the_validation_metric_only(tmp_path):
    # Equal to the target does not meet it (AlgoPerf: strictly better).
    equal = checkable(record(sub="equal", t=30.0, steps=30))
    rows = [{"step": 20, "timed_s": 20.0, "validation/accuracy": 0.9},
            {"step": 30, "timed_s": 30.0, "validation/accuracy": 0.9000001}]
    write_run(tmp_path / "equal", equal, rows)
    # Reached means the validation target met: a test target not yet met at
    # that line does not move the time to target (it is reported, not timed).
    with_test = checkable(record(sub="test", t=20.0, steps=20), target={**TARGET, "test_value": 0.9})
    rows = [{"step": 20, "timed_s": 20.0, "validation/accuracy": 0.91, "test/accuracy": 0.5},
            {"step": 30, "timed_s": 30.0, "validation/accuracy": 0.95, "test/accuracy": 0.95}]
    write_run(tmp_path / "test", with_test, rows)
    # A lower-is-better metric: loss below 0.3.
    loss = checkable(record(sub="loss", t=20.0, steps=20), target={"metric": "loss", "value": 0.3, "direction": "min"})
    rows = [{"step": 10, "timed_s": 10.0, "validation/loss": 0.3},
            {"step": 20, "timed_s": 20.0, "validation/loss": 0.29}]
    write_run(tmp_path / "loss", loss, rows)
    board = scoring.score_records([tmp_path])
    assert kept(board) == ["equal", "loss", "test"] and not [w for w in board.warnings if w.startswith("skipped")]

    # ... and the same records claiming the equal or the test-met line are left out.
    claims_equal = write_run(tmp_path / "x" / "equal", {**equal, "time_to_target_s": 20.0, "steps_to_target": 20},
                             [{"step": 20, "timed_s": 20.0, "validation/accuracy": 0.9},
                              {"step": 30, "timed_s": 30.0, "validation/accuracy": 0.9000001}])
    claims_test = write_run(tmp_path / "x" / "test", {**with_test, "time_to_target_s": 30.0, "steps_to_target": 30,
                                                       "timed_s": 30.0, "steps": 30},
                            [{"step": 20, "timed_s": 20.0, "validation/accuracy": 0.91, "test/accuracy": 0.5},
                             {"step": 30, "timed_s": 30.0, "validation/accuracy": 0.95, "test/accuracy": 0.95}])
    board = scoring.score_records([tmp_path / "x"])
    assert kept(board) == []
    assert "step 30" in skipped(board, claims_equal) and "step 20" in skipped(board, claims_test)


def test_a_miss_that_met_the_target_only_after_the_budget_is_kept(tmp_path):
    rec = checkable(record(sub="slow", status="budget_exhausted"))
    rows = [{"step": 50, "timed_s": 59.0, "validation/accuracy": 0.5},
            {"step": 60, "timed_s": 61.0, "validation/accuracy": 0.95}]  # after the 60 s budget
    write_run(tmp_path / "slow", rec, rows)
    board = scoring.score_records([tmp_path])
    assert kept(board) == ["slow"] and board.warnings == []


def test_a_reached_record_without_a_readable_log_is_left_out(tmp_path):
    no_log = write_run(tmp_path / "no_log", record(sub="no_log"))
    (no_log.parent / "metrics.jsonl").unlink()
    garbage = write_run(tmp_path / "garbage", record(sub="garbage"))
    (garbage.parent / "metrics.jsonl").write_bytes(b"\x80\x04\x95 pickled?\n")
    middle = write_run(tmp_path / "middle", record(sub="middle", t=10.0, steps=100))
    lines = (middle.parent / "metrics.jsonl").read_text().splitlines()
    (middle.parent / "metrics.jsonl").write_text(lines[0][:-10] + "\n" + lines[1] + "\n")  # a bad line before the last
    listed = write_run(tmp_path / "listed", record(sub="listed"))
    (listed.parent / "metrics.jsonl").write_text("[1, 2]\n")
    no_target = write_run(tmp_path / "no_target", {**checkable(record(sub="no_target")), "target": None},
                          rows=rows_for(checkable(record(sub="no_target"))))
    # A torn last line (a crash mid-write) is not a problem when the line that
    # counts came before it.
    torn = write_run(tmp_path / "torn", record(sub="torn", t=10.0, steps=100))
    with open(torn.parent / "metrics.jsonl", "a") as f:
        f.write('{"step": 110, "timed_s": 1')
    board = scoring.score_records([tmp_path])
    assert kept(board) == ["torn"]
    assert "status reached but no metrics.jsonl beside it" in skipped(board, no_log)
    assert "its metrics.jsonl is unreadable (UnicodeDecodeError)" in skipped(board, garbage)
    assert "its metrics.jsonl line 1 is not JSON" in skipped(board, middle)
    assert "its metrics.jsonl line 1 is not a JSON object" in skipped(board, listed)
    assert "no usable target" in skipped(board, no_target)


def test_unsealed_records_are_checked_when_they_have_a_log(tmp_path):
    # Hand-made records (no digest) are read, but kept off the official boards, with a note ...
    bare = tmp_path / "bare" / "run.json"
    write_json_atomic(bare, record(sub="bare"))
    # ... but one whose log says otherwise is not.
    liar = write_run(tmp_path / "liar", {**checkable(record(sub="liar", t=50.0)), "time_to_target_s": 5.0},
                     rows=rows_for(checkable(record(sub="liar", t=50.0))), sealed=False)
    board = scoring.score_records([tmp_path])
    assert kept(board) == ["bare"]
    assert "time_to_target_s 5.0 disagrees" in skipped(board, liar)
    assert any("no digest" in w for w in board.warnings)
    assert board.groups == [] and list(board.left_out["path"]) == [str(bare)]


def test_the_runners_own_records_agree_with_their_logs(tmp_path):
    """A real run (the fake workload of tests/test_runner.py) passes the check;
    the same record edited and resealed does not."""
    from harness.plugins.registry import Registry
    from harness.run import execute, plan_run
    from tests import fakes

    registry = Registry(entry_points=False)
    registry.add_workload(fakes.fake_info(task="tests.faults.driver:QuickTask"))
    reached = execute(plan_run("fake", "tests.fakes:PLAIN_SGD", size="tiny", output=tmp_path / "a", registry=registry))
    missed = execute(plan_run("fake", "tests.fakes:PLAIN_SGD", size="tiny", output=tmp_path / "b", registry=registry,
                              overrides=["budget.max_steps=20"]))
    assert reached.status == "reached" and missed.status == "budget_exhausted"
    board = scoring.score_records([tmp_path])
    assert len(board.records) == 2 and not [w for w in board.warnings if "skipped" in w]

    path = reached.run_dir / "run.json"
    t = reached.record["time_to_target_s"]
    reseal(path, time_to_target_s=t * 0.999)
    board = scoring.score_records([tmp_path])
    assert len(board.records) == 1 and f"time_to_target_s {t * 0.999!r} disagrees" in skipped(board, path)
    # Even a microsecond is caught.
    reseal(path, time_to_target_s=t + 1e-6)
    assert len(scoring.score_records([tmp_path]).records) == 1
    reseal(path, time_to_target_s=t)  # put back exactly: kept again
    assert len(scoring.score_records([tmp_path]).records) == 2
