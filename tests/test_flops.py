"""Model FLOPs per step, achieved FLOP/s and MFU (harness/run/flops.py), on CPU.

Hand counts: a multiply-add is 2 FLOPs. FlopCounterMode counts a Linear's
forward (addmm, 2*B*in*out), and in backward one matmul of the same size per
gradient it makes: the weight's always, the input's only when the input needs
a gradient (x3 then, x2 for a first layer fed data). A bias gradient (a sum)
is not counted. A Conv2d likewise: 2*B*Hout*Wout*Cout*Cin*k*k forward, the
same again per gradient.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.plugins.registry import Registry
from harness.run import execute, flops, plan_run
from harness.run.records import read_metrics
from tests import fakes


def _count(module: nn.Module, x: torch.Tensor) -> int:
    counter, _ = flops.counting_mode()
    with counter:
        module(x).sum().backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("input_grad, passes", [(True, 3), (False, 2)])
def test_linear_matches_the_hand_count(input_grad, passes):
    batch, d_in, d_out = 4, 8, 16
    x = torch.randn(batch, d_in, requires_grad=input_grad)
    assert _count(nn.Linear(d_in, d_out), x) == passes * 2 * batch * d_in * d_out


@pytest.mark.parametrize("input_grad, passes", [(True, 3), (False, 2)])
def test_conv2d_matches_the_hand_count(input_grad, passes):
    batch, c_in, c_out, k, hw = 2, 3, 8, 3, 16  # padding 1: the output is hw x hw
    x = torch.randn(batch, c_in, hw, hw, requires_grad=input_grad)
    forward = 2 * batch * hw * hw * c_out * c_in * k * k
    assert _count(nn.Conv2d(c_in, c_out, k, padding=1), x) == passes * forward


def test_a_tiny_mlp_counts_the_sum_of_its_layers():
    batch = 16
    layers = [nn.Linear(32, 64), nn.Linear(64, 64), nn.Linear(64, 10)]
    model = nn.Sequential(layers[0], nn.ReLU(), layers[1], nn.ReLU(), layers[2])
    x = torch.randn(batch, 32)
    total = _count(model, x)
    # each layer alone: the first fed data (no input gradient), the others fed activations
    parts = _count(layers[0], x) + sum(_count(layer, torch.randn(batch, layer.in_features, requires_grad=True))
                                         for layer in layers[1:])
    assert total == pytest.approx(parts, rel=0.05)
    assert parts == 2 * 2 * batch * 32 * 64 + 3 * 2 * batch * (64 * 64 + 64 * 10)


def test_cpu_attention_is_counted_as_on_cuda():
    # torch's table has the CUDA kernels only; the CPU kernel is counted with its formulas.
    b, h, s, d = 2, 4, 16, 8
    q = torch.randn(b, h, s, d, requires_grad=True)
    counter, by_kind = flops.counting_mode()
    with counter:
        F.scaled_dot_product_attention(q, q, q, is_causal=True).sum().backward()
    forward = 2 * 2 * b * h * s * s * d  # q k^T and (p v)
    assert counter.get_total_flops() == forward + 2.5 * forward  # backward: torch's formula, 5 matmuls of 4
    assert by_kind == {"float32/matmul": counter.get_total_flops()}


class _Task:
    def loss(self, model, batch):
        x, y = batch
        return F.mse_loss(F.dropout(model(x), 0.5, training=True), y)


def test_counting_a_step_changes_neither_the_model_nor_any_random_stream():
    model = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    batch = (torch.randn(16, 8), torch.randn(16, 1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    states = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    counted = flops.count_training_step(_Task(), model, batch)
    assert counted["flops"] == 2 * 2 * 16 * 8 * 8 + 3 * 2 * 16 * 8 * 1  # BatchNorm is not counted
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN stats too
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(states[0], torch.get_rng_state()) and states[1] == random.getstate()
    assert np.array_equal(states[2], np.random.get_state()[1])


def test_peak_table_lookups():
    T = 1e12
    assert flops.peak_flops("NVIDIA H100 80GB HBM3", "bfloat16") == 989.5 * T
    assert flops.peak_flops("NVIDIA H100 80GB HBM3", "tf32") == 494.5 * T
    assert flops.peak_flops("NVIDIA H100 PCIe", "bf16") == 756.5 * T
    assert flops.peak_entry("NVIDIA H100 NVL", "bf16")[0] == "H100 NVL"
    assert flops.peak_flops("NVIDIA H200", "float16") == 989.5 * T
    assert flops.peak_entry("NVIDIA GH200 480GB", "bf16")[0] == "GH200"
    assert flops.peak_flops("NVIDIA A100-SXM4-80GB", "tf32") == 156 * T
    assert flops.peak_flops("NVIDIA A100-PCIE-40GB", "bfloat16") == 312 * T
    assert flops.peak_flops("NVIDIA L4", "bf16") == 121 * T
    assert flops.peak_entry("NVIDIA L40S", "bf16")[0] == "L40S"
    assert flops.peak_flops("Tesla V100-SXM2-16GB", "float16") == 125 * T
    assert flops.peak_flops("Tesla V100-PCIE-32GB", "float32") == 14 * T
    assert flops.peak_flops("Tesla V100-SXM2-16GB", "bfloat16") is None  # no bf16 units
    assert flops.peak_flops("Tesla T4", "fp16") == 65 * T
    for name in ("cpu", "NVIDIA A10G", "NVIDIA GeForce RTX 4090", "", None):  # not in the table
        assert flops.peak_flops(name, "bfloat16") is None


def test_a_mix_of_precisions_has_the_peak_that_does_each_share_at_its_own_rate():
    peak, label = flops._peak("NVIDIA A100-SXM4-80GB", {"bf16": 3 * 10**12, "fp32": 10**12}, devices=2)
    seconds = 3e12 / 312e12 + 1e12 / 19.5e12
    assert peak == pytest.approx(2 * 4e12 / seconds) and label == "A100 x2 bf16+fp32"
    assert flops._peak("cpu", {"fp32": 10**9}, 1) == (None, None)


def test_finish_and_describe():
    block = {"flops_per_step": 2e9, "peak_flops_per_s": 1e12, "peak": "H100 SXM bf16", "device_name": "x"}
    flops.finish(block, steps=100, timed_s=10.0)
    assert block["achieved_flops_per_s"] == pytest.approx(2e10) and block["mfu"] == pytest.approx(0.02)
    line = flops.describe(block)
    assert "2 GFLOP/step" in line and "20 GFLOP/s achieved" in line and "MFU 2.0% of H100 SXM bf16 peak" in line
    cpu = {"flops_per_step": 704, "peak_flops_per_s": None, "device_name": "cpu"}
    flops.finish(cpu, steps=0, timed_s=0.0)  # nothing timed: nothing achieved
    assert cpu.get("achieved_flops_per_s") is None
    assert "MFU — (no peak for cpu)" in flops.describe(cpu)
    assert "not counted: boom" in flops.describe({"flops_per_step": None, "error": "boom"})


def _run(tmp_path):
    registry = Registry(entry_points=False)
    registry.add_workload(fakes.fake_info())
    return execute(plan_run("fake", "tests.fakes:PLAIN_SGD", size="tiny", output=tmp_path, registry=registry))


def test_a_run_records_its_compute_block_counted_once(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTBENCH_CACHE_DIR", str(tmp_path / "cache"))  # its own cache: counted here, first
    first = _run(tmp_path / "a").record
    compute = first["compute"]
    # the fake model: Linear(4, 4), identity norm, Linear(4, 1), batch 8, input without grad
    assert compute["flops_per_step"] == 2 * 2 * 8 * 4 * 4 + 3 * 2 * 8 * 4 * 1
    assert compute["counted_with"] == "torch.utils.flop_counter" and compute["dtype"] == "float32"
    assert compute["achieved_flops_per_s"] == pytest.approx(first["steps"] * compute["flops_per_step"] / first["timed_s"])
    assert compute["peak_flops_per_s"] is None and compute["mfu"] is None  # CPU: no peak
    assert compute["error"] is None and compute["cached"] is False and compute["count_s"] > 0
    again = _run(tmp_path / "b").record["compute"]
    assert again["cached"] is True and again["flops_per_step"] == compute["flops_per_step"]


def test_the_count_leaves_the_run_as_it_was(tmp_path, monkeypatch):
    counted = _run(tmp_path / "counted").run_dir
    monkeypatch.setattr(flops, "plan_count", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("not counted")))
    skipped = _run(tmp_path / "skipped")
    assert skipped.record["compute"]["flops_per_step"] is None and "not counted" in skipped.record["compute"]["error"]
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("timed_s", "wall_s")} for r in rows]
    assert strip(read_metrics(counted)) == strip(read_metrics(skipped.run_dir))


def test_the_board_carries_the_winning_trials_flops(monkeypatch):
    from harness.score import scoring
    from tests.test_scoring import defining_size, record

    monkeypatch.setattr(scoring, "installed_size", defining_size)
    recs = [record(t=12.0, study=0, trial=0), record(t=10.0, study=0, trial=1), record(t=20.0, study=1, trial=0)]
    for rec, achieved in zip(recs, (1e9, 2e9, 3e9)):
        rec["compute"] = {"flops_per_step": 5e6, "achieved_flops_per_s": achieved}
    recs[0]["compute"] = None  # an older record: nothing counted
    row = scoring.score_records(recs).time_to_target.iloc[0]
    assert row["flops_per_step"] == 5e6 and row["achieved_flops_per_s"] == 2e9  # the 10 s trial's
    # the winner's own figures, even where it has none (pandas' "first" would take another trial's)
    recs[1]["compute"] = {}
    row = scoring.score_records(recs).time_to_target.iloc[0]
    assert np.isnan(row["flops_per_step"]) and np.isnan(row["achieved_flops_per_s"])
