"""Tests for the grokking workload: the table and its splits, the model and its
parameter types, the loss variants (StableMax against Prieto et al. 2025's
equation on hand-computed numbers, float32 / float64), the softmax-collapse
fraction, and the task's batches and evaluation."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness.api import ParamType
from harness.errors import UserInputError
from workloads.grokking import FULL, TINY, WORKLOAD, data, losses
from workloads.grokking.model import GrokMLP, MLPConfig
from workloads.grokking.task import DEFAULT_SETTINGS, GrokkingTask

REPO = Path(__file__).resolve().parents[1]
LN = lambda site, n: nn.LayerNorm(n)  # noqa: E731
BN = lambda site, n: nn.BatchNorm1d(n)  # noqa: E731
CPU = torch.device("cpu")


def _task(size=TINY, **settings) -> GrokkingTask:
    return GrokkingTask(size, CPU, Path("/nonexistent"), seed=0, settings=settings or None)


# --------------------------------------------------------------------------- #
# Workload description                                                        #
# --------------------------------------------------------------------------- #


def test_import_does_not_load_torch():
    code = "import sys, workloads.grokking; assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_workload_info():
    assert WORKLOAD.default_optimizer == "adamw" and WORKLOAD.norm_sites == ("node",)
    assert TINY.device == "cpu" and TINY.eval_every_steps and TINY.calibration
    assert TINY.target_setting["hyperparameters"]["weight_decay"] > 0  # weight decay is what makes it grok
    assert FULL.device == "cuda" and FULL.reference_steps is None and FULL.max_runtime_s > 0
    # Time to generalize, not to memorize: memorizing leaves validation near chance (1/p).
    assert TINY.target.metric == "accuracy" and TINY.target.validation > 0.9


# --------------------------------------------------------------------------- #
# data                                                                        #
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("operation,expected", [("add", 3), ("subtract", 4), ("multiply", 3), ("divide", 5)])
def test_table_answers(operation, expected):
    x, y = data.table(7, operation)
    pairs = {"add": (5, 5), "subtract": (2, 5), "multiply": (2, 5), "divide": (4, 5)}
    a, b = pairs[operation]
    row = np.flatnonzero((x[:, 0] == a) & (x[:, 1] == b))
    assert y[row].tolist() == [expected]  # 5+5=10, 2-5=-3, 2*5=10, 4/5: 5*5=25=4 so 4/5=5 (mod 7)
    assert len(y) == (42 if operation == "divide" else 49) and y.min() >= 0 and y.max() < 7


def test_splits_deterministic_disjoint_and_complete():
    s1, s2 = data.make_splits(), data.make_splits()
    sizes = {k: len(v[1]) for k, v in s1.items()}
    assert sizes == {"train": 4704, "validation": 2352, "test": 2353} and TINY.batch_size == 4704
    for name in s1:
        assert np.array_equal(s1[name][0], s2[name][0]) and np.array_equal(s1[name][1], s2[name][1])
        assert s1[name][0].dtype == np.int64 and s1[name][0].shape == (sizes[name], 2)
    keys = [a * 97 + b for x, _ in s1.values() for a, b in x]
    assert sorted(keys) == list(range(97 * 97))  # every pair exactly once, in exactly one split
    for x, y in s1.values():
        assert np.array_equal(y, (x[:, 0] + x[:, 1]) % 97)
    other = data.make_splits(seed=data.DATA_SEED + 1)
    assert not np.array_equal(other["train"][0], s1["train"][0])


# --------------------------------------------------------------------------- #
# losses                                                                      #
# --------------------------------------------------------------------------- #


def test_stablemax_matches_the_papers_equation_by_hand():
    # s(x) = x + 1 (x >= 0), 1 / (1 - x) (x < 0): s(0, 1, -1, 3, -3) = 1, 2, 1/2, 4, 1/4.
    x = torch.tensor([[0.0, 1.0, -1.0, 3.0, -3.0]], dtype=torch.float64)
    assert losses.stablemax_s(x).tolist() == [[1.0, 2.0, 0.5, 4.0, 0.25]]
    # sum = 7.75: StableMax = (4, 8, 2, 16, 1) / 31
    assert torch.allclose(losses.stablemax(x), torch.tensor([[4, 8, 2, 16, 1]], dtype=torch.float64) / 31)
    for target, share in [(3, 16 / 31), (4, 1 / 31)]:
        loss = losses.stablemax_cross_entropy(x, torch.tensor([target]))
        assert loss.item() == pytest.approx(-math.log(share), rel=1e-12)  # 0.6601 and 3.434
    # Rows reduce like cross-entropy; softmax is what "softmax" computes.
    logits = torch.tensor([[0.0, 1.0, -1.0], [2.0, 0.0, -0.5]])
    targets = torch.tensor([1, 0])
    per_row = losses.cross_entropy(logits, targets, "stablemax", reduction="none")
    assert per_row.tolist() == pytest.approx([math.log(3.5 / 2), math.log((3 + 1 + 1 / 1.5) / 3)], rel=1e-6)
    assert losses.cross_entropy(logits, targets, "stablemax").item() == pytest.approx(per_row.mean().item())
    assert torch.equal(losses.cross_entropy(logits, targets), nn.functional.cross_entropy(logits, targets))


def test_stablemax_gradient_is_finite_and_matches_autograd_by_hand():
    # At x = 1 the unused branch 1/(1-x) would be infinite: the clamp keeps the gradient finite.
    x = torch.tensor([[1.0, -1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    losses.stablemax_cross_entropy(x, torch.tensor([0])).backward()
    # loss = log(sum s) - log s(x0); d/dx_j = s'(x_j) / sum s - [j = 0] s'(x0) / s(x0)
    # s = (2, 1/2, 1), sum 3.5; s' = (1, 1/(1-x)^2 = 1/4, 1)
    expected = [1 / 3.5 - 1 / 2, 0.25 / 3.5, 1 / 3.5]
    assert x.grad.tolist()[0] == pytest.approx(expected, rel=1e-12)


def test_float32_softmax_collapses_where_stablemax_does_not():
    # A correct logit 30 above 96 others: float32 softmax CE rounds to exactly 0
    # (Softmax Collapse: 96 e^-30 is below half a float32 ulp of 1), float64
    # does not, StableMax does not. At 20 above, 96 e^-20 still registers.
    logits = torch.zeros(4, 97)
    logits[:, 0] = torch.tensor([30.0, 30.0, 20.0, 0.0])
    targets = torch.zeros(4, dtype=torch.long)
    assert losses.zero_loss_fraction(logits, targets).item() == 0.5
    assert losses.zero_loss_fraction(logits, targets, "stablemax").item() == 0.0
    assert losses.cross_entropy(logits.double(), targets, reduction="none")[0].item() > 0  # float64 resolves it
    # The fraction always asks float32, whatever the logits' dtype.
    assert losses.zero_loss_fraction(logits.double(), targets).item() == 0.5
    with pytest.raises(ValueError, match="stablemax"):
        losses.cross_entropy(logits, targets, "sparsemax")


# --------------------------------------------------------------------------- #
# model                                                                       #
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("norm", [LN, BN], ids=["layernorm", "batchnorm"])
def test_model_forward_backward(norm):
    torch.manual_seed(0)
    model = GrokMLP(MLPConfig(p=11, embed_dim=8, hidden=16), norm)
    pairs = torch.tensor([[1, 2], [3, 4], [10, 0]])
    logits = model(pairs)
    assert logits.shape == (3, 11)
    nn.functional.cross_entropy(logits, torch.tensor([3, 7, 10])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    # The operands' order matters (a - b is not b - a): swapping them changes the logits.
    assert not torch.allclose(model(pairs.flip(1)), logits)


# --------------------------------------------------------------------------- #
# task                                                                        #
# --------------------------------------------------------------------------- #


def test_task_batches_param_types_and_data_digest():
    task = _task()
    assert task.settings == DEFAULT_SETTINGS == {"loss": "softmax", "dtype": "float32"}
    x, y = task.next_batch(0)
    assert x.shape == (4704, 2) and y.shape == (4704,) and x.dtype == torch.long
    x7, y7 = _task().next_batch(7)  # full batch: every step, every instance, the same pairs
    assert torch.equal(x, x7) and torch.equal(y, y7)
    assert len(task.data_sha256) == 64 and task.data_sha256 == _task().data_sha256
    torch.manual_seed(0)
    model = task.build_model(LN)
    types = task.param_types(model)
    assert types == {
        "embed.weight": ParamType.EMBEDDING, "hidden.weight": ParamType.MATRIX, "hidden.bias": ParamType.BIAS,
        "norm.weight": ParamType.NORM, "norm.bias": ParamType.NORM,
        "head.weight": ParamType.HEAD, "head.bias": ParamType.BIAS,
    }
    loss = task.loss(model, (x, y))
    assert loss.ndim == 0 and abs(loss.item() - math.log(97)) < 0.5  # ~ln(97) at initialization


@pytest.mark.parametrize("loss", ["softmax", "stablemax"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_loss_variants_train_and_evaluate(loss, dtype):
    task = _task(loss=loss, dtype=dtype)
    assert task.settings == {"loss": loss, "dtype": dtype}
    torch.manual_seed(0)
    model = task.build_model(LN)
    assert all(p.dtype == getattr(torch, dtype) for p in model.parameters())
    batch = task.next_batch(0)
    first = task.loss(model, batch)
    assert first.dtype == getattr(torch, dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        task.loss(model, batch).backward()
        opt.step()
    assert task.loss(model, batch).item() < first.item()
    model.eval()
    with torch.no_grad():
        metrics = task.evaluate(model)
    assert set(metrics) == {"train/accuracy", "validation/accuracy", "validation/loss", "test/accuracy", "test/loss"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="no setting 'precision'"):
        _task(precision="float64")
    with pytest.raises(ValueError, match="float16"):
        _task(dtype="float16")


def test_softmax_collapse_fraction_of_the_training_set():
    task = _task()
    torch.manual_seed(0)
    model = task.build_model(BN)
    assert task.softmax_collapse_fraction(model) == 0.0  # nothing is fitted at initialization
    # A head that puts logit 30 on the right answer for every pair whose a is even:
    # those examples' float32 loss is exactly 0, the others' is not.
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    shift = model.head.bias
    x, y = task.train_x, task.train_y

    class Oracle(nn.Module):
        training = True

        def forward(self, pairs):
            logits = torch.zeros(len(pairs), 97)
            logits[torch.arange(len(pairs)), (pairs[:, 0] + pairs[:, 1]) % 97] = torch.where(pairs[:, 0] % 2 == 0, 30.0, 1.0)
            return logits + shift

    oracle = Oracle()
    expected = (x[:, 0] % 2 == 0).float().mean().item()
    assert task.softmax_collapse_fraction(oracle) == pytest.approx(expected)
    assert oracle.training  # the mode it found is restored
    assert _task(loss="stablemax").softmax_collapse_fraction(oracle) == 0.0
    # BatchNorm's running statistics are untouched: it runs in eval mode.
    model.train()
    before = model.norm.running_mean.clone()
    model.norm.running_mean.add_(0)
    task.softmax_collapse_fraction(model)
    assert torch.equal(model.norm.running_mean, before) and model.training


def test_full_size_builds_on_cpu():
    size = dataclasses.replace(FULL, device="cpu")
    task = _task(size)
    assert task.train_x.shape == (3831, 2) and FULL.batch_size == 3831
    model = task.build_model(LN)
    assert sum(p.numel() for p in model.parameters()) == 1_315_185
    with torch.no_grad():
        assert model(task.train_x[:4]).shape == (4, 113)
    with pytest.raises(UserInputError, match="full batch"):
        GrokkingTask(dataclasses.replace(TINY, batch_size=512), CPU, Path("/x"), seed=0)
