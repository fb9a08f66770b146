"""Synthetic data for the full sizes and the batch_size override (issue 21), on CPU.

``data.synthetic=true`` (``bench run --synthetic-data``) runs a full size with
no dataset: random inputs of the real shapes made on the device. Off a GPU each
split holds two of the run's batches, so a full size with ``batch_size=2`` takes
seconds (harness/common/synthetic.py). Model sizes on this CPU: cifar ResNet-18
11.2M parameters (~7 s a run), gnn 3.6M (~8 s), grokking 1.3M (~9 s), diffusion
UNet 35.7M (~21 s: slow), gpt GPT-2 small 124M (~130 s at batch 1: heavy, left out
of `make test` and run by `make test-heavy`; its
data shapes are checked without a step in a fast test).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.errors import UserInputError
from harness.run import build, execute, plan_run
from harness.score import scoring

ROOT = Path(__file__).resolve().parent.parent


def _synthetic_run(tmp_path, workload: str, batch_size: int | None):
    empty = tmp_path / "no-data"
    empty.mkdir()
    overrides = ["data.synthetic=true", "budget.max_steps=2", f"data_dir={empty}"]
    overrides += [f"batch_size={batch_size}"] if batch_size is not None else []
    plan = plan_run(workload, size="full", overrides=overrides, output=tmp_path / "results")
    result = execute(plan)
    assert not any(empty.iterdir()), "a synthetic run must not download or write data"
    return result.record


def _check_record(rec, batch_size: int) -> None:
    assert rec["status"] == "budget_exhausted", rec["reason"]
    assert rec["reason"].startswith("step limit of 2 reached; synthetic data, no target")
    assert rec["steps"] == 2 and rec["evals"] == 1
    assert rec["synthetic"] is True and rec["target"] is None
    assert rec["time_to_target_s"] is None and rec["steps_to_target"] is None
    assert rec["official"] is False and "data.synthetic=true" in rec["deviations"]
    assert rec["batch_size"] == batch_size
    # grokking's table is its real data, generated either way: it keeps its digest
    assert (rec["data_sha256"] is None) == (rec["workload"] != "grokking")
    assert rec["compute"]["flops_per_step"] > 0
    assert rec["compute"]["dtype"] == "float32"  # CPU runs stay float32 (bf16 autocast is CUDA only)
    problems = scoring.comparability_problems(rec)
    assert any(p.startswith("synthetic data") for p in problems)


@pytest.mark.parametrize("workload, batch_size", [
    ("cifar", 2), ("gnn", 2),
    ("grokking", None),  # full batch by definition: the table is generated anyway, synthetic or not
    pytest.param("diffusion", 2, marks=pytest.mark.slow),
    pytest.param("gpt", 1, marks=[pytest.mark.slow, pytest.mark.heavy]),
])
def test_a_full_size_runs_two_steps_on_synthetic_data_with_no_dataset(tmp_path, workload, batch_size):
    rec = _synthetic_run(tmp_path, workload, batch_size)
    own = plan_run(workload, size="full").size.batch_size
    _check_record(rec, batch_size or own)
    assert ("batch_size=2" in rec["deviations"]) == (batch_size == 2)


def test_gpt_full_synthetic_batches_have_the_real_shapes(tmp_path):
    """GPT-2 small is too slow to step here in a fast test: its data is checked without the model."""
    from workloads.gpt.task import GPTTask

    size = plan_run("gpt", size="full", overrides=["batch_size=3"]).size
    task = GPTTask(size, torch.device("cpu"), tmp_path, seed=5, synthetic=True)
    x, y = task.next_batch(0)
    assert x.shape == y.shape == (3, 1024) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one
    ids = task._ids(task.tokens["train"])
    assert 0 <= int(ids.min()) and int(ids.max()) < 50257 and int(ids.max()) >= 32768  # the whole vocabulary
    assert task.tokens["train"].dtype == torch.int16 and task.eval_windows == 6 and task.eval_splits == ["validation"]
    again = GPTTask(size, torch.device("cpu"), tmp_path, seed=5, synthetic=True)
    other = GPTTask(size, torch.device("cpu"), tmp_path, seed=6, synthetic=True)
    assert torch.equal(again.next_batch(3)[0], task.next_batch(3)[0])
    assert not torch.equal(other.tokens["train"], task.tokens["train"])


def test_synthetic_graphs_have_molpcba_sizes_and_shapes():
    from workloads.gnn import data

    graphs = data.synthetic_graphs(4000, seed=1).validate("synthetic")
    assert abs(graphs.num_nodes.mean() - 26.0) < 0.5 and abs(graphs.num_edges.mean() - 27.5) < 0.5
    assert graphs.node_feat.shape[1] == data.PCBA_NODE_FEATURES and graphs.edge_feat.shape[1] == data.PCBA_EDGE_FEATURES
    assert graphs.labels.shape == (4000, data.PCBA_NUM_TASKS)
    assert (graphs.node_feat.max(axis=0) < data.PCBA_ATOM_CATEGORIES).all()
    assert 0.4 < torch.isnan(torch.from_numpy(graphs.labels)).float().mean() < 0.6
    assert (data.synthetic_graphs(50, seed=1).edge_index == data.synthetic_graphs(50, seed=1).edge_index).all()


def test_a_synthetic_record_is_on_no_board_even_an_unofficial_one(tmp_path):
    rec = _synthetic_run(tmp_path, "grokking", None)
    board = scoring.score_records([tmp_path / "results"], include_unofficial=True)
    assert board.groups == []
    left = board.left_out
    assert len(left) == 1 and "synthetic data" in left["reason"].iloc[0]
    assert rec["status"] == "budget_exhausted"


def test_batch_size_replaces_the_sizes_batch_and_is_a_deviation_unless_equal():
    plan = plan_run("cifar", size="tiny", overrides=["batch_size=8"])
    assert plan.size.batch_size == 8 and "batch_size=8" in plan.deviations
    same = plan_run("cifar", size="tiny", overrides=["batch_size=32"])
    assert same.size.batch_size == 32 and same.deviations == []
    for bad in ("batch_size=0", "batch_size=2.5", "batch_size=true"):
        with pytest.raises(UserInputError, match="batch_size must be a positive integer"):
            plan_run("cifar", size="tiny", overrides=[bad])


def test_compile_is_a_deviation():
    assert plan_run("cifar", size="tiny", overrides=["compile=true"]).deviations == ["compile=true"]
    assert plan_run("cifar", size="tiny").deviations == []


def test_synthetic_data_is_refused_for_a_tiny_size_and_must_be_a_boolean():
    with pytest.raises(UserInputError, match="for the GPU sizes"):
        plan_run("cifar", size="tiny", overrides=["data.synthetic=true"])
    with pytest.raises(UserInputError, match="data.synthetic must be true or false"):
        plan_run("cifar", size="full", overrides=["data.synthetic=yes"])


def test_a_task_that_does_not_take_synthetic_is_refused_plainly(tmp_path):
    size = plan_run("cifar", size="full").size
    with pytest.raises(UserInputError, match="does not take synthetic=True"):
        build.make_task("tests.fakes:SleepTask", size, torch.device("cpu"), tmp_path, 0, synthetic=True)


def test_bench_run_synthetic_data_flag_reaches_the_config():
    out = subprocess.run(
        [sys.executable, "-c", "from harness.cli import main; main()", "run", "-w", "cifar", "--size", "tiny",
         "--synthetic-data"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode != 0 and "for the GPU sizes" in out.stdout + out.stderr
