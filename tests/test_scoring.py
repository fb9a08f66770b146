"""The AlgoPerf scorer on hand-worked tables, the AlgoPerf v0.5 reproduction,
and leaderboards built from (possibly broken) run records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from harness import api

from harness.score import scoring
from harness.errors import UserInputError
from harness.run.fingerprint import hardware_id
from harness.run.records import seal, write_json_atomic
from harness.score.scoring import Preset, score_times

INF = math.inf
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "algoperf_v05_self"  # AlgoPerf's published data
TAUS = np.linspace(1, 4, 100)
H = 3 / 99  # spacing of the tau grid


def step_score(share_before: float, ratio: float) -> float:
    """Hand-worked area for a profile that is ``share_before`` up to ``ratio`` and
    1 from there on, on the 100-point grid: flat parts plus one trapezoid across
    the grid interval holding ``ratio`` (ratio strictly between grid points)."""
    j = int((ratio - 1) / H)  # tau_j < ratio < tau_{j+1}
    left, right = 1 + j * H, 1 + (j + 1) * H
    area = share_before * (left - 1) + (share_before + 1) / 2 * H + 1.0 * (4 - right)
    return area / 3


# --------------------------------------------------------------------------- #
# Hand-worked tables                                                           #
# --------------------------------------------------------------------------- #


def test_fastest_everywhere_scores_one_and_ties_share_it():
    res = score_times({"a": {"w1": 10.0, "w2": 5.0}, "b": {"w1": 10.0, "w2": 5.0}})
    assert res.scores["a"] == pytest.approx(1.0, abs=1e-12)
    assert res.scores["b"] == pytest.approx(1.0, abs=1e-12)
    assert (res.ratios == 1.0).all().all()


def test_twice_as_slow_on_one_of_two_workloads():
    # b: ratio 1 on w2, 2.5 on w1 -> rho = 1/2 below 2.5, 1 from 2.5 on.
    res = score_times({"a": {"w1": 10.0, "w2": 5.0}, "b": {"w1": 25.0, "w2": 5.0}})
    assert res.ratios.loc["b", "w1"] == pytest.approx(2.5)
    assert res.scores["b"] == pytest.approx(step_score(0.5, 2.5), abs=1e-12)
    # ... which is the continuous area (0.5 * 1.5 + 1 * 1.5) / 3 = 0.75 up to the grid
    assert res.scores["b"] == pytest.approx(0.75, abs=H)
    assert list(res.scores.index) == ["a", "b"]  # ranked


def test_misses_and_unrun_workloads_count_against_the_base_denominator():
    # c reached only w1 (fastest there) and never ran w2: rho is at most 1/2.
    table = pd.DataFrame(
        [("a", "w1", 20.0), ("a", "w2", 5.0), ("c", "w1", 10.0), ("d", "w1", INF), ("d", "w2", INF)],
        columns=["submission", "workload", "time_s"],
    )
    res = score_times(table)
    assert res.scores["c"] == pytest.approx(0.5, abs=1e-12)
    assert res.scores["d"] == 0.0
    assert math.isinf(res.ratios.loc["c", "w2"])
    # a: fastest on w2 only -> 1/2, then 1 from ratio 2 on w1 (exactly a grid point? 2 = 1 + 33 h)
    assert res.ratios.loc["a", "w1"] == pytest.approx(2.0)
    # the denominator is the preset's base workloads, even ones nobody ran
    res3 = score_times(table, Preset(base_workloads=("w1", "w2", "w3")))
    assert res3.scores["c"] == pytest.approx(1 / 3, abs=1e-12)
    assert res3.ratios["w3"].map(math.isinf).all()


def test_the_4x_cutoff_keeps_exactly_4x_and_drops_beyond():
    res = score_times({"a": {"w": 10.0}, "b": {"w": 40.0}, "c": {"w": 40.1}})
    assert res.ratios.loc["b", "w"] == 4.0
    assert math.isinf(res.ratios.loc["c", "w"])
    # b counts only at the last grid point tau = 4: half a trapezoid slice
    assert res.scores["b"] == pytest.approx(0.5 * H / 3, abs=1e-12)
    assert res.scores["c"] == 0.0


def test_held_out_variant_gates_its_base():
    preset = Preset(base_workloads=("w", "x"), variants={"w": "w_var"})
    times = {
        "a": {"w": 10.0, "w_var": 10.0, "x": 10.0},
        "b": {"w": 8.0, "w_var": INF, "x": 10.0},  # fastest on w but misses the variant
        "c": {"w": 12.0, "w_var": 50.0, "x": 10.0},  # variant 5x the fastest: cut, so gated too
    }
    res = score_times(times, preset)
    assert math.isinf(res.ratios.loc["b", "w"]) and math.isinf(res.ratios.loc["c", "w"])
    assert res.ratios.loc["a", "w"] == 1.0  # the fastest *gated* time is the reference
    assert list(res.base_workloads) == ["w", "x"]  # variants are not scored
    assert res.scores["a"] == pytest.approx(1.0)
    assert res.scores["b"] == pytest.approx(0.5) and res.scores["c"] == pytest.approx(0.5)
    # shown as: the gated base is a miss; a variant whose base is a miss is a miss too
    assert math.isinf(res.gated.loc["b", "w"])
    # without the variant column nothing is gated
    res_plain = score_times({k: {w: t for w, t in v.items() if w != "w_var"} for k, v in times.items()}, preset)
    assert res_plain.ratios.loc["b", "w"] == 1.0


def test_cutoff_is_taken_before_gating_as_in_algoperf():
    # w: a=10, b=30, c=45; variant: a misses. Cut-off against the ungated best (10)
    # drops c (4.5x); gating then drops a. b is the new fastest; c stays a miss
    # (gating first would have given c a ratio of 1.5).
    preset = Preset(base_workloads=("w",), variants={"w": "v"})
    res = score_times({"a": {"w": 10.0, "v": INF}, "b": {"w": 30.0, "v": 10.0}, "c": {"w": 45.0, "v": 10.0}}, preset)
    assert res.ratios.loc["b", "w"] == 1.0
    assert math.isinf(res.ratios.loc["a", "w"]) and math.isinf(res.ratios.loc["c", "w"])


def test_workload_nobody_reached_is_a_miss_for_everyone():
    res = score_times({"a": {"w1": INF, "w2": 3.0}, "b": {"w1": INF, "w2": 6.0}})
    assert res.ratios["w1"].map(math.isinf).all()
    assert res.scores["a"] == pytest.approx(0.5)


def test_bad_times_are_rejected(tmp_path):
    with pytest.raises(UserInputError, match="positive"):
        score_times({"a": {"w": 0.0}})
    bad = tmp_path / "t.csv"
    bad.write_text("submission,time_s\na,1\n")
    with pytest.raises(UserInputError, match="missing columns"):
        scoring.read_times_csv(bad)
    with pytest.raises(UserInputError, match="did you mean"):
        scoring.load_preset("algoperf_v5")


def test_times_csv_reads_inf_and_blank_as_miss_and_splits_rulesets(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("ruleset,submission,workload,time_s\nx,a,w,1\nx,b,w,inf\nx,c,w,\ny,a,w,2\n")
    out = scoring.score_times_csv(path)
    assert set(out) == {"x", "y"}
    assert out["x"].scores.to_dict() == {"a": 1.0, "b": 0.0, "c": 0.0}


# --------------------------------------------------------------------------- #
# AlgoPerf v0.5 self-tuning, published scores                                  #
# --------------------------------------------------------------------------- #


def test_reproduces_algoperf_v05_self_tuning_scores():
    published = pd.read_csv(FIXTURE / "scores_published.csv").set_index("submission")["score"]
    (result,) = scoring.score_times_csv(FIXTURE / "times_self.csv", "algoperf_v05").values()
    assert result.base_workloads == list(scoring.load_preset("algoperf_v05").base_workloads)
    assert set(result.scores.index) == set(published.index)
    for sub, score in published.items():
        assert round(float(result.scores[sub]), 4) == pytest.approx(score, abs=1e-9), sub
    assert list(result.scores.index) == list(published.sort_values(ascending=False).index)


def test_optbench_tiny_preset_names_every_tiny_workload():
    """A new tiny workload must join the preset, or scores would silently ignore it."""
    from harness.plugins.registry import Registry

    registry = Registry(entry_points=False)
    tiny = sorted(f"{name}-tiny" for name, e in registry.workloads.items() if "tiny" in e.info.sizes)
    preset = scoring.load_preset("optbench_tiny")
    assert sorted(preset.base_workloads) == tiny and not preset.variants
    # the denominator is every tiny workload, whatever a submission ran: fastest
    # on three of them scores 3/n
    times = pd.DataFrame({"submission": ["a", "b"] * 2, "workload": ["cifar-tiny"] * 2 + ["gnn-tiny"] * 2,
                          "time_s": [1.0, 2.0, 1.0, INF]})
    times = pd.concat([times, pd.DataFrame({"submission": ["a"], "workload": ["gpt-tiny"], "time_s": [1.0]})])
    result = score_times(times, preset)
    assert result.scores["a"] == pytest.approx(3 / len(tiny))


def test_bench_score_times_cli_prints_the_published_scores(tmp_path):
    from harness.cli import app

    r = CliRunner().invoke(app, ["score", "--times", str(FIXTURE / "times_self.csv"), "--preset", "algoperf_v05", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    for text in ("schedule_free_adamw", "0.8542", "0.8194", "0.3308", "0.1420", "0.0903"):
        assert text in r.output
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert {"ruleset", "submission", "score"} <= set(scores.columns)
    assert (tmp_path / "profile.png").stat().st_size > 0


# --------------------------------------------------------------------------- #
# Records -> leaderboard                                                       #
# --------------------------------------------------------------------------- #


def fingerprint(machine: str) -> dict:
    """A version-2 fingerprint of the machine called ``machine`` (its CPU model)."""
    fp = {"fingerprint_version": 2, "cpu": {"model": machine}, "memory_gb": 16.0, "gpus": []}
    return {**fp, "hardware_id": hardware_id(fp)}


def hw_class(machine: str) -> str:
    return fingerprint(machine)["hardware_id"]


TARGET = {"metric": "accuracy", "value": 0.9, "direction": "max", "test_value": None}


def defining_size(workload: str, size: str) -> api.Size:
    """What defines every workload of these tests (an install's ``Size``): the
    target and reference-work budget that :func:`record` writes."""
    return api.Size(name=size, description="test", dataset="none", model="none", batch_size=8,
                    target=api.Target("accuracy", 0.9, "max"), max_runtime_s=41.0, step_hint=896, eval_every_steps=100,
                    reference_steps=600, target_setting={"hardware_id": "hw-ref"})


INSTALLED_SIZE = scoring.installed_size  # this install's definitions, before the fixture below replaces them


@pytest.fixture(autouse=True)
def _test_workloads_are_installed(monkeypatch):
    monkeypatch.setattr(scoring, "installed_size", defining_size)


def record(sub="a", workload="w", status="reached", t=10.0, steps=100, study=0, trial=0, ruleset="external",
           hw="hw-1", official=True, sweep="s1") -> dict:
    reached = status == "reached"
    return {
        "target": dict(TARGET), "budget": reference_budget(1.0),
        "schema_version": 1, "run_id": f"trial_{trial}", "experiment": ruleset, "workload": workload, "size": "tiny",
        "submission": {"name": sub, "kind": "optimizer"}, "optimizer": {"name": sub}, "norm": {"name": "batchnorm"},
        "status": status, "time_to_target_s": t if reached else None, "steps_to_target": steps if reached else None,
        "official": official, "fingerprint": fingerprint(hw),
        "config": {"deep": {"nested": [1, 2]}}, "final_metrics": {"validation/accuracy": 0.9, "validation/loss": "nan"},
        "hyperparameters": {"optimizer": {"lr": 0.1}, "norm": {}},
        "tuning": {"ruleset": ruleset, "study": study, "trial": trial, "trial_id": f"{sub}-{workload}-{study}-{trial}-{hw}",
                   "sweep_id": sweep, "label": sub},
    }


def write(root: Path, rec: dict, name: str, sealed: bool = True) -> Path:
    """``rec`` as optbench writes it (sealed, beside a metrics.jsonl it agrees
    with), or, ``sealed=False``, as a hand-made file with no log."""
    path = root / name / "run.json"
    write_json_atomic(path, seal(rec) if sealed else rec)
    if sealed and isinstance(rec.get("target"), dict):
        metric, value = f"validation/{rec['target']['metric']}", rec["target"]["value"]
        reached = rec.get("status") == "reached"
        step = rec.get("steps_to_target") or 100
        row = {"step": step, "timed_s": rec["time_to_target_s"] if reached else 1.0,
               metric: (1 + value) / 2 if reached else value / 2}
        (path.parent / "metrics.jsonl").write_text(json.dumps(row) + "\n")
    return path


def test_median_over_studies_of_the_fastest_reaching_trial():
    recs = [
        record(t=12.0, study=0, trial=0), record(t=10.0, study=0, trial=1, steps=90),
        record(status="budget_exhausted", study=1, trial=0), record(status="diverged", study=1, trial=1),
        record(t=20.0, study=2, trial=0, steps=200), record(status="error", study=2, trial=1),
    ]
    board = scoring.score_records(recs)
    row = board.time_to_target.iloc[0]
    assert row["time_s"] == 20.0 and row["steps"] == 200.0  # median of [10, inf, 20]
    assert row["studies"] == 3 and row["studies_reached"] == 2
    assert row["time_min_s"] == 10.0 and math.isinf(row["time_max_s"])
    assert row["ratio"] == 1.0  # the only submission on the workload
    # two of three studies missing: the median is a miss
    board = scoring.score_records(recs[:4])
    assert math.isinf(board.time_to_target.iloc[0]["time_s"])  # median of [10, inf]


def test_records_of_one_workload_on_different_data_are_flagged():
    same = [{**record(sub=s, t=t), "data_sha256": "d" * 64} for s, t in (("a", 10.0), ("b", 20.0))]
    assert scoring.score_records(same).warnings == []
    old = {**record(sub="a", workload="v"), "data_sha256": None}  # records from before the field: unknown, not different
    assert scoring.score_records([*same, old]).warnings == []
    mixed = [same[0], {**same[1], "data_sha256": "e" * 64}]
    (note,) = scoring.score_records(mixed).warnings
    assert "w-tiny" in note and "2 different datasets" in note and "dddddddddddd" in note and "eeeeeeeeeeee" in note


def test_corrupt_and_partial_records_are_skipped_with_a_warning(tmp_path):
    good = write(tmp_path, record(), "good")
    write(tmp_path, record(sub="b", t=30.0), "good_b")
    truncated = tmp_path / "trunc" / "run.json"
    truncated.parent.mkdir()
    truncated.write_text(json.dumps(record())[:100])
    missing = write(tmp_path, {k: v for k, v in record().items() if k != "workload"}, "missing")
    running = write(tmp_path, record(status="running"), "running")
    liar = write(tmp_path, {**record(), "time_to_target_s": None}, "liar")
    not_obj = tmp_path / "list" / "run.json"
    not_obj.parent.mkdir()
    not_obj.write_text("[1, 2]")
    board = scoring.score_records([tmp_path])
    assert [r["_path"] for r in board.records if r["submission"]["name"] == "a"] == [str(good)]
    text = "\n".join(board.warnings)
    for path in (truncated, missing, running, liar, not_obj):
        assert str(path) in text
    assert "status 'running'" in text and "missing key 'workload'" in text

    from harness.cli import app

    out = tmp_path / "board"
    r = CliRunner().invoke(app, ["score", str(tmp_path), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "warning" in r.output and str(truncated) in r.output.replace("\n", "")
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores["submission"]) == ["a", "b"] and scores["score"].iloc[0] == 1.0
    assert scores["score"].iloc[1] == pytest.approx(step_score(0.0, 3.0 + 1e-9), abs=H)
    for name in ("time_to_target.csv", "profile.csv", "profile.png", "trials.parquet"):
        assert (out / name).stat().st_size > 0
    trials = pd.read_parquet(out / "trials.parquet")
    assert len(trials) == 2 and set(trials["hardware_id"]) == {hw_class("hw-1")}
    assert "config.deep.nested" not in trials.columns and "tuning.ruleset" in trials.columns
    ttt = pd.read_csv(out / "time_to_target.csv")
    assert {"workload", "submission", "time_s", "steps", "time_min_s", "time_max_s", "ratio"} <= set(ttt.columns)


def test_hardware_is_never_mixed_silently(tmp_path):
    recs = [record(sub="a", t=10.0, hw="hw-1"), record(sub="b", t=5.0, hw="hw-2"),
            record(sub="b", t=30.0, hw="hw-1", official=False)]
    board = scoring.score_records(recs)
    groups = {g.hardware_id: g for g in board.groups}
    assert sorted((g.ruleset, hw) for hw, g in groups.items()) == sorted(
        [("external", hw_class("hw-1")), ("external", hw_class("hw-2"))])
    hw1 = groups[hw_class("hw-1")]
    assert hw1.result.scores["a"] == 1.0 and hw1.official == {"a": True}  # the unofficial record is left out
    assert groups[hw_class("hw-2")].official == {"b": True}
    (left,) = board.left_out.itertuples()
    assert left.submission == "b" and left.reason == "unofficial"
    with_others = scoring.score_records(recs, include_unofficial=True)
    other = [g for g in with_others.groups if g.board == "unofficial"]
    assert [(g.hardware_id, g.official) for g in other] == [(hw_class("hw-1"), {"b": False})]
    mixed = scoring.score_records(recs[:2], allow_mixed_hardware=True)
    (g,) = mixed.groups
    assert g.hardware_id == "mixed" and g.mixed_hardware and g.hardware_ids == sorted(map(hw_class, ["hw-1", "hw-2"]))
    assert g.result.scores.index[0] == "b"  # 5 s on hw-2 beats everything once mixed
    assert mixed.scores["mixed_hardware"].all()

    for i, rec in enumerate(recs):
        write(tmp_path, rec, f"r{i}")
    from harness.cli import app

    r = CliRunner().invoke(app, ["score", str(tmp_path), "--allow-mixed-hardware", "--out", str(tmp_path / "lb")])
    assert r.exit_code == 0, r.output
    assert "mixed hardware" in r.output and "left out of the official board(s)" in r.output
    r = CliRunner().invoke(app, ["score", str(tmp_path), "--unofficial", "--out", str(tmp_path / "lb")],
                           env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    assert "unofficial board" in r.output


def test_a_legacy_record_never_pools_with_a_new_class_of_the_same_stored_id():
    new = record(sub="a", t=10.0)
    # written before fingerprint version 2: its stored id is all it has, even one that collides
    legacy = record(sub="b", t=5.0)
    legacy["fingerprint"] = {"hardware_id": new["fingerprint"]["hardware_id"], "cpu": {"model": "AMD EPYC"}}
    board = scoring.score_records([new, legacy])
    assert sorted(g.hardware_id for g in board.groups) == sorted([hw_class("hw-1"), "legacy-" + hw_class("hw-1")])
    assert all(g.result.scores.iloc[0] == 1.0 and len(g.result.scores) == 1 for g in board.groups)
    assert not any(g.mixed_hardware for g in board.groups)
    # the stored id of a version-2 record is not what groups it: its fields are
    stale = {**new, "fingerprint": {**new["fingerprint"], "hardware_id": "hw-stale"}}
    assert [g.hardware_id for g in scoring.score_records([stale]).groups] == [hw_class("hw-1")]


def reference_budget(factor: float | None = 1.0, reference: str = "hw-ref") -> dict:
    """A reference-work budget: ``factor`` = its s/step over the reference class's."""
    return {"basis": "reference_work", "max_runtime_s": 41.0 * (factor or 1.0), "reference_steps": 600,
              "budget_steps": 896, "budget_fraction": 0.67, "multiplier": 1.0, "reference_max_runtime_s": 41.0,
              "reference_hardware_id": reference, "reference_s_per_step": 0.03 if factor else None,
              "speed_factor": factor, "speed": {"s_per_step": 0.03 * (factor or 1.0), "cached": True}}


def with_budget(rec: dict, factor: float | None = 1.0, reference: str = "hw-ref") -> dict:
    return {**rec, "budget": reference_budget(factor, reference)}


def fixed_budget(rec: dict) -> dict:
    return {**rec, "budget": {"basis": "fixed", "max_runtime_s": 60.0, "multiplier": 1.0}}


def test_normalize_sets_hardware_classes_side_by_side_in_reference_seconds():
    recs = [with_budget(record(sub="a", t=10.0, hw="hw-1"), 1.0), with_budget(record(sub="b", t=4.0, hw="hw-2"), 0.5)]
    # without --normalize: one board per class, each submission alone and fastest
    plain = scoring.score_records(recs)
    assert sorted(g.hardware_id for g in plain.groups) == sorted(map(hw_class, ["hw-1", "hw-2"]))
    assert all(len(g.result.scores) == 1 for g in plain.groups)

    board = scoring.score_records(recs, normalize=True)
    (g,) = board.groups
    assert g.hardware_id == "normalised to hw-ref (approximate)" and g.normalized and g.normalized_to == "hw-ref"
    assert g.hardware_ids == sorted(map(hw_class, ["hw-1", "hw-2"])) and g.records == 2
    # 4 s on a machine twice as fast as the reference is 8 reference seconds
    assert g.result.times.loc["a", "w-tiny"] == 10.0 and g.result.times.loc["b", "w-tiny"] == 8.0
    assert list(g.result.scores.index) == ["b", "a"] and g.result.scores["b"] == 1.0
    assert g.result.ratios.loc["a", "w-tiny"] == pytest.approx(1.25)
    assert g.result.scores["a"] == pytest.approx(step_score(0.0, 1.25), abs=1e-12)
    assert board.warnings == [] and board.normalize
    assert list(board.trials["speed_factor"]) == [1.0, 0.5] and list(board.trials["time_s_normalized"]) == [10.0, 8.0]
    assert list(board.trials["time_to_target_s"]) == [10.0, 4.0]  # raw seconds stay raw
    assert set(board.scores["hardware_id"]) == {g.hardware_id}

    # the 4x cut-off applies to normalised times: 3.5 s at factor 0.1 is 35 reference s > 4 x 8
    slow = with_budget(record(sub="c", t=3.5, hw="hw-3"), 0.1)
    (g,) = scoring.score_records([*recs, slow], normalize=True).groups
    assert g.result.times.loc["c", "w-tiny"] == pytest.approx(35.0) and math.isinf(g.result.ratios.loc["c", "w-tiny"])
    assert g.result.scores["c"] == 0.0


def test_normalize_leaves_out_records_without_a_speed_factor_and_says_why():
    recs = [with_budget(record(sub="a", t=10.0, hw="hw-1"), 1.0), with_budget(record(sub="b", t=4.0, hw="hw-2"), 0.5),
            fixed_budget(record(sub="c", t=1.0, hw="hw-1")), fixed_budget(record(sub="c", workload="v", t=1.0, hw="hw-1")),
            {k: v for k, v in record(sub="d", t=1.0, hw="hw-2").items() if k != "budget"},  # older record: no budget block
            with_budget(record(sub="e", t=1.0, hw="hw-2"), None)]  # calibration without reference s/step
    # Records in fixed seconds or with no budget are not on the workload's terms:
    # off the official boards first; --unofficial scores them, and there they
    # cannot be normalised either.
    board = scoring.score_records(recs, normalize=True, include_unofficial=True)
    (g,) = board.groups
    assert list(g.result.scores.index) == ["b", "a"] and g.records == 2
    normalised_notes = [w for w in board.warnings if "normalised" in w]
    text = "\n".join(normalised_notes)
    assert "2 record(s), budget in fixed seconds: cannot be normalised" in text
    assert "1 record(s), no budget block" in text and "1 record(s), no speed factor" in text
    assert all("ruleset external" in w and "cannot be normalised" in w for w in normalised_notes)
    assert len(normalised_notes) == 3
    official = scoring.score_records(recs, normalize=True)
    assert "2 record(s), budget 60 s, the workload's is 600 reference steps" in "\n".join(official.warnings)
    assert "1 record(s), no budget block, the workload's is 600 reference steps" in "\n".join(official.warnings)
    # everything left out: no board, still the reasons
    only_fixed = scoring.score_records(recs[2:4], normalize=True, include_unofficial=True)
    assert only_fixed.groups == [] and any("budget in fixed seconds" in w for w in only_fixed.warnings)


def test_normalize_never_pools_records_calibrated_on_different_reference_classes():
    recs = [with_budget(record(sub="a", t=10.0, hw="hw-1"), 1.0, reference="hw-ref1"),
            with_budget(record(sub="b", t=4.0, hw="hw-2"), 0.5, reference="hw-ref2"),
            with_budget(record(sub="c", t=6.0, hw="hw-2"), 0.5, reference="hw-ref1"),
            with_budget(record(sub="d", t=6.0, hw="hw-1", ruleset="self"), 1.0, reference="hw-ref1")]
    board = scoring.score_records(recs, normalize=True)
    got = {(g.ruleset, g.hardware_id): g for g in board.groups}
    assert sorted(got) == [("external", "normalised to hw-ref1 (approximate)"),
                           ("external", "normalised to hw-ref2 (approximate)"),
                           ("self", "normalised to hw-ref1 (approximate)")]
    ref1 = got[("external", "normalised to hw-ref1 (approximate)")]
    assert list(ref1.result.scores.index) == ["a", "c"] and ref1.result.times.loc["c", "w-tiny"] == 12.0
    assert ref1.hardware_ids == sorted(map(hw_class, ["hw-1", "hw-2"]))
    ref2 = got[("external", "normalised to hw-ref2 (approximate)")]
    assert list(ref2.result.scores.index) == ["b"] and ref2.hardware_ids == [hw_class("hw-2")]


def test_normalize_and_allow_mixed_hardware_exclude_each_other():
    with pytest.raises(UserInputError, match="--normalize and --allow-mixed-hardware"):
        scoring.score_records([with_budget(record())], normalize=True, allow_mixed_hardware=True)


def test_bench_score_normalize_cli(tmp_path):
    recs = [with_budget(record(sub="a", t=10.0, hw="hw-1"), 1.0), with_budget(record(sub="b", t=4.0, hw="hw-2"), 0.5),
            fixed_budget(record(sub="c", t=1.0, hw="hw-1"))]
    paths = [write(tmp_path / "res", rec, f"r{i}") for i, rec in enumerate(recs)]
    from harness.cli import app

    out = tmp_path / "lb"
    r = CliRunner().invoke(app, ["score", str(tmp_path / "res"), "--normalize", "--out", str(out)], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())  # rich wraps titles to the table's width
    classes = ", ".join(sorted(map(hw_class, ["hw-1", "hw-2"])))
    assert f"normalised to hw-ref (approximate): 2 classes ({classes}) · 2 records" in text
    assert "budget 60 s, the workload's is 600 reference steps" in text and str(paths[2]) in r.output.replace("\n", "")
    left = pd.read_csv(out / "left_out.csv")
    assert list(left["path"]) == [str(paths[2])] and "budget 60 s" in left.loc[0, "reason"]
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores["submission"]) == ["b", "a"] and set(scores["hardware_id"]) == {"normalised to hw-ref (approximate)"}
    ttt = pd.read_csv(out / "time_to_target.csv").set_index("submission")
    assert ttt.loc["b", "time_s"] == 8.0 and set(ttt["hardware_id"]) == {"normalised to hw-ref (approximate)"}
    trials = pd.read_parquet(out / "trials.parquet").set_index("label")
    assert trials.loc["b", "speed_factor"] == 0.5 and trials.loc["b", "time_s_normalized"] == 8.0
    assert math.isnan(trials.loc["c", "speed_factor"]) and math.isnan(trials.loc["c", "time_s_normalized"])

    # without the flag: separate boards, and a pointer to it
    r = CliRunner().invoke(app, ["score", str(tmp_path / "res"), "--out", str(out)], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    assert "approximate" not in r.output and "--normalize" in r.output
    r = CliRunner().invoke(app, ["score", str(tmp_path / "res"), "--normalize", "--allow-mixed-hardware"])
    assert r.exit_code == 2 and "do not go together" in r.output
    r = CliRunner().invoke(app, ["score", "--times", str(tmp_path / "t.csv"), "--normalize"])
    assert r.exit_code == 2 and "--times" in r.output


def test_rulesets_are_scored_separately_and_plain_runs_are_untuned():
    plain = record(sub="c", t=3.0)
    del plain["tuning"]
    board = scoring.score_records([record(sub="a", ruleset="external"), record(sub="b", ruleset="self"), plain])
    assert sorted(g.ruleset for g in board.groups) == ["external", "self", "untuned"]
    assert set(board.scores["score"]) == {1.0}


def test_same_trial_copied_twice_counts_once(tmp_path):
    write(tmp_path, record(), "x/a")
    write(tmp_path, record(), "y/a")
    board = scoring.score_records([tmp_path, tmp_path / "x"])  # overlapping dirs too
    assert len(board.trials) == 1
    assert any("duplicate" in w for w in board.warnings)


def test_compare_states_when_the_difference_is_within_the_spread(tmp_path):
    recs = [record(sub="a", t=t, study=k, trial=0) for k, t in enumerate([10.0, 12.0, 14.0])]
    recs += [record(sub="b", t=t, study=k, trial=0) for k, t in enumerate([11.0, 13.0, 15.0])]
    recs += [record(sub="a", workload="v", t=t, study=k) for k, t in enumerate([10.0, 11.0, 12.0])]
    recs += [record(sub="b", workload="v", t=t, study=k) for k, t in enumerate([30.0, 31.0, 32.0])]
    for i, rec in enumerate(recs):
        write(tmp_path, rec, f"r{i}")
    from harness.cli import app

    r = CliRunner().invoke(app, ["compare", "a", "b", str(tmp_path)], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    lines = {line.split("│")[1].strip(): line for line in r.output.splitlines() if line.count("│") > 3}
    assert "within the spread" in lines["w-tiny"]
    assert "a 2.82x faster, beyond the spread" in lines["v-tiny"]
    r = CliRunner().invoke(app, ["compare", "a", "bb", str(tmp_path)])
    assert r.exit_code == 2 and "did you mean 'b'" in r.output


# --------------------------------------------------------------------------- #
# Boards from comparable records only                                          #
# --------------------------------------------------------------------------- #


def test_an_easier_target_never_tops_the_official_board(tmp_path):
    """The issue's case: an official record at 10 s and one timed against
    target.validation=0.1 at 2 s. Pooled, the easy one scored 1.0 and the
    official one 0.0, silently."""
    official = record(sub="honest", t=10.0)
    easy = {**record(sub="easy", t=2.0), "official": False, "deviations": ["target.validation=0.1"],
            "target": {**TARGET, "value": 0.1}}
    board = scoring.score_records([official, easy])
    (g,) = board.groups
    assert g.board == "official" and list(g.result.scores.index) == ["honest"] and g.result.scores["honest"] == 1.0
    (left,) = board.left_out.itertuples()
    assert left.submission == "easy"
    assert left.reason == ("unofficial (target.validation=0.1); "
                           "target accuracy > 0.1, the workload's is accuracy > 0.9")
    assert any("left out of the official board(s)" in w and "target accuracy > 0.1" in w for w in board.warnings)

    # Asked for, the left-out records are a board of their own, never pooled.
    both = scoring.score_records([official, easy], include_unofficial=True)
    boards = {g.board: g for g in both.groups}
    assert list(boards["official"].result.scores.index) == ["honest"]
    assert list(boards["unofficial"].result.scores.index) == ["easy"]
    assert set(both.scores["board"]) == {"official", "unofficial"}
    assert set(both.time_to_target["board"]) == {"official", "unofficial"}


def test_different_targets_or_budgets_get_columns_of_their_own_on_the_unofficial_board():
    easy = {**record(sub="a", t=2.0), "official": False, "target": {**TARGET, "value": 0.1}}
    easier = {**record(sub="b", t=1.0), "official": False, "target": {**TARGET, "value": 0.05}}
    short = {**record(sub="c", t=3.0), "official": False, "deviations": ["max_steps=120"],
             "budget": {**reference_budget(1.0), "max_steps": 120}}
    same_terms = {**record(sub="d", t=4.0), "official": False, "deviations": ["every_steps=50"]}
    board = scoring.score_records([easy, easier, short, same_terms], include_unofficial=True)
    (g,) = board.groups
    assert g.board == "unofficial"
    columns = sorted(g.result.times.columns)
    assert columns == ["w-tiny [accuracy > 0.05; 600 reference steps]",
                       "w-tiny [accuracy > 0.1; 600 reference steps]",
                       "w-tiny [accuracy > 0.9; 600 reference steps, at most 120 steps]",
                       "w-tiny [accuracy > 0.9; 600 reference steps]"]
    assert (g.result.scores == 0.25).all()  # each fastest on its own column, one of four


def test_budgets_must_be_the_workloads_under_the_rulesets_multiplier():
    other_work = with_budget(record(sub="old"))
    other_work["budget"] = {**other_work["budget"], "reference_steps": 500}
    self_tuned = record(sub="self", ruleset="self")
    self_tuned["tuning"]["budget_multiplier"] = 3.0
    self_tuned["budget"] = {**self_tuned["budget"], "multiplier": 3.0}
    self_at_1x = record(sub="self1x", ruleset="self")
    self_at_1x["tuning"]["budget_multiplier"] = 3.0  # the ruleset gives 3x; the record ran 1x
    fixed = {**record(sub="fixed"), "budget": {"basis": "fixed", "max_runtime_s": 41.0, "multiplier": 1.0}}
    board = scoring.score_records([record(sub="ok"), other_work, self_tuned, self_at_1x, fixed])
    assert sorted(s for g in board.groups for s in g.result.scores.index) == ["ok", "self"]
    reasons = board.left_out.set_index("submission")["reason"]
    assert reasons["old"] == "budget 500 reference steps, the workload's is 600 reference steps"
    assert reasons["self1x"] == "budget 600 reference steps, the workload's is 600 reference steps x 3"
    # The size's seconds are its calibration class's: valid there only.
    assert reasons["fixed"] == (f"budget in hw-ref's seconds (41 s) but run on {hw_class('hw-1')}: "
                                "seconds of another class buy other work")


def test_records_of_workloads_not_installed_here_are_left_out(monkeypatch):
    monkeypatch.setattr(scoring, "installed_size", lambda workload, size: None)
    board = scoring.score_records([record(sub="a")])
    assert board.groups == []
    assert board.left_out.loc[0, "reason"] == ("workload w size tiny is not installed here: "
                                               "its target and budget cannot be checked")


def test_this_installs_definitions_decide(monkeypatch):
    """Against the real cifar tiny: its own target and budget are comparable,
    anything else is not."""
    size = INSTALLED_SIZE("cifar", "tiny")
    assert size is not None and size.reference_steps and INSTALLED_SIZE("no-such-workload", "tiny") is None
    monkeypatch.setattr(scoring, "installed_size", INSTALLED_SIZE)
    own = {**record(sub="a", workload="cifar"), "target": size.target.as_dict(),
           "budget": {**reference_budget(1.0), "reference_steps": size.reference_steps}}
    stale = {**own, "submission": {"name": "b", "kind": "optimizer"}, "tuning": {**own["tuning"], "label": "b", "trial_id": "b"},
             "target": {**own["target"], "value": round(size.target.validation - 0.05, 4)}}
    board = scoring.score_records([own, stale])
    assert [list(g.result.scores.index) for g in board.groups] == [["a"]]
    assert "the workload's is accuracy > " in board.left_out.loc[0, "reason"]


def test_bench_compare_points_to_unofficial_when_a_submission_was_left_out(tmp_path):
    write(tmp_path, record(sub="a", t=10.0), "a")
    write(tmp_path, {**record(sub="b", t=5.0), "official": False}, "b")
    from harness.cli import app

    r = CliRunner().invoke(app, ["compare", "a", "b", str(tmp_path)], env={"COLUMNS": "250"})
    assert r.exit_code == 2 and "every record of 'b' was left out" in r.output and "--unofficial" in r.output
    r = CliRunner().invoke(app, ["compare", "a", "b", str(tmp_path), "--unofficial"], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output


def test_the_board_names_the_winning_trials_hyperparameters(tmp_path):
    recs = [record(t=12.0, study=0, trial=0), record(t=10.0, study=0, trial=1), record(t=20.0, study=1, trial=0),
            record(status="budget_exhausted", study=1, trial=1)]
    for rec, lr in zip(recs, (0.1, 0.2, 0.3, 0.4)):
        rec["hyperparameters"] = {"optimizer": {"lr": lr}, "norm": {}}
    board = scoring.score_records(recs)
    row = board.time_to_target.iloc[0]
    assert json.loads(row["best_hyperparameters"]) == {"optimizer": {"lr": 0.2}, "norm": {}}  # the 10 s trial
    assert json.loads(board.scores.loc[0, "hyperparameters"]) == {"w-tiny": {"optimizer": {"lr": 0.2}, "norm": {}}}
    paths = scoring.write_leaderboard(board, tmp_path)
    assert "best_hyperparameters" in pd.read_csv(paths["time_to_target.csv"]).columns
    assert "lr" in pd.read_csv(paths["scores.csv"]).loc[0, "hyperparameters"]
    # a workload nobody reached names no winner
    missed = scoring.score_records([recs[3]])
    assert pd.isna(missed.time_to_target.iloc[0]["best_hyperparameters"])
