"""AlgoPerf's hyperparameter names drive optbench's built-ins (issue 17, first part):
``learning_rate`` is ``lr`` and ``warmup_factor`` is ``warmup_fraction`` wherever a
submission takes the latter; a submission may declare more with ``ALIASES``.
AlgoPerf's workload hyperparameters go to the workloads that take them and are
refused, naming those, by the others: never ignored."""

from __future__ import annotations

import json

import pytest

from harness import api
from harness.errors import UserInputError
from harness.run import plan_run
from harness.sweeps.tuning import plan_sweep

# AlgoPerf v0.5's NAdamW search space (reference_algorithms/paper_baselines/nadamw/
# tuning_search_space.json), without its workload-side entries.
NADAMW_SPACE = {
    "learning_rate": {"min": 1e-4, "max": 1e-2, "scaling": "log"},
    "one_minus_beta1": {"min": 1e-2, "max": 0.5, "scaling": "log"},
    "beta2": {"feasible_points": [0.999]},
    "warmup_factor": {"feasible_points": [0.05]},
    "weight_decay": {"min": 5e-3, "max": 1.0, "scaling": "log"},
}


def test_canonical_names():
    assert api.canonical_name("learning_rate", {"lr", "beta2"}) == "lr"
    assert api.canonical_name("lr", {"lr"}) == "lr"
    assert api.canonical_name("learning_rate", {"learning_rate"}) == "learning_rate"  # its own name wins
    assert api.canonical_name("learning_rate", {"eta"}) == "learning_rate"  # no alias fits: refused later
    assert api.canonical_name("step_size", {"lr"}, {"step_size": "lr"}) == "lr"


def test_an_override_by_algoperfs_name_reaches_the_optimizer(tmp_path):
    plan = plan_run("cifar", "nadamw", size="tiny", output=tmp_path,
                    overrides=["optimizer.learning_rate=0.0035", "optimizer.warmup_factor=0.05"])
    assert plan.hp_optimizer["lr"] == 0.0035 and plan.hp_optimizer["warmup_fraction"] == 0.05
    assert "learning_rate" not in plan.hp_optimizer
    typed = plan_run("cifar", "nadamw", size="tiny", output=tmp_path, hyperparameters={"optimizer": {"learning_rate": 0.002}})
    assert typed.hp_optimizer["lr"] == 0.002


def test_algoperfs_nadamw_search_space_drives_bench_tune_unchanged(tmp_path):
    path = tmp_path / "tuning_search_space.json"
    path.write_text(json.dumps(NADAMW_SPACE))
    sweep = plan_sweep("cifar", "nadamw", size="tiny", studies=1, trials=3, search_space=str(path), output=tmp_path / "r")
    for trial in sweep.trials:
        hp = trial.plan.hp_optimizer
        assert 1e-4 <= hp["lr"] <= 1e-2 and hp["beta2"] == 0.999 and hp["warmup_fraction"] == 0.05
        assert hp["lr"] == trial.point["optimizer"]["learning_rate"]


def test_algoperfs_workload_hyperparameters_are_taken_where_the_workload_does(tmp_path):
    # tests/test_workload_hyperparameters.py tests what each does
    path = tmp_path / "space.json"
    path.write_text(json.dumps({**NADAMW_SPACE, "label_smoothing": {"feasible_points": [0.1]},
                                "dropout_rate": {"feasible_points": [0.1]}}))
    sweep = plan_sweep("gnn", "nadamw", size="tiny", studies=1, trials=1, search_space=str(path), output=tmp_path / "r")
    assert sweep.trials[0].plan.hp_workload == {"label_smoothing": 0.1, "dropout_rate": 0.1}
    # AlgoPerf's spaces set dropout_rate for every workload; cifar's ResNet has none: not applied, and said so.
    plan = plan_sweep("cifar", "nadamw", size="tiny", studies=1, trials=1, search_space=str(path), output=tmp_path / "r").trials[0].plan
    assert dict(plan.hp_workload) == {"label_smoothing": 0.1} and list(plan.config["not_applied"]) == ["dropout_rate"]
    with pytest.raises(UserInputError, match="^cifar takes no dropout_rate; workloads that do: diffusion, gnn, gpt$"):
        plan_run("cifar", "nadamw", size="tiny", output=tmp_path / "r", overrides=["optimizer.dropout_rate=0.1"])
