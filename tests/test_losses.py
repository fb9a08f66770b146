"""harness/common/losses.py against the equations, and Task.outputs against Task.loss."""

import math

import pytest
import torch
import torch.nn.functional as F

from harness.api import Outputs
from harness.common.losses import mean_loss, per_example_loss, stablemax_s


def test_softmax_per_example_loss_and_label_smoothing_by_hand():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    targets = torch.tensor([0, 2])
    log_p = logits.log_softmax(-1)
    plain = per_example_loss(Outputs(logits, targets))
    assert torch.allclose(plain, -log_p[[0, 1], [0, 2]])
    smoothed = per_example_loss(Outputs(logits, targets), label_smoothing=0.3)
    # Szegedy et al.: target distribution (1 - eps) one-hot + eps / C.
    by_hand = -(0.7 * log_p[[0, 1], [0, 2]] + 0.3 * log_p.mean(-1))
    assert torch.allclose(smoothed, by_hand)
    assert mean_loss(Outputs(logits, targets), 0.3) == pytest.approx(by_hand.mean().item(), rel=1e-6)


def test_stablemax_loss_with_and_without_smoothing():
    logits = torch.tensor([[1.0, -1.0, 3.0]], dtype=torch.float64)
    s = stablemax_s(logits)  # 2, 0.5, 4
    assert s.tolist() == [[2.0, 0.5, 4.0]]
    p = s / s.sum()
    out = Outputs(logits, torch.tensor([2]), loss="stablemax")
    assert per_example_loss(out).item() == pytest.approx(-math.log(4 / 6.5))
    smoothed = per_example_loss(out, 0.1).item()
    assert smoothed == pytest.approx(-(0.9 * p[0, 2].log() + 0.1 * p.log().mean()).item())


def test_sigmoid_loss_is_masked_and_smoothed_towards_one_half():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    mask = torch.tensor([[True, True], [False, True]])
    out = Outputs(logits, labels, mask, loss="sigmoid")
    each = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    assert mean_loss(out).item() == pytest.approx((each[mask].sum() / 3).item())
    smoothed_labels = labels * 0.8 + 0.1
    each_smoothed = F.binary_cross_entropy_with_logits(logits, smoothed_labels, reduction="none")
    assert mean_loss(out, 0.2).item() == pytest.approx((each_smoothed[mask].sum() / 3).item())


def test_weighted_softmax_mean_counts_only_weighted_examples():
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, -5.0]])
    targets = torch.tensor([0, 0, 1])
    weights = torch.tensor([1.0, 1.0, 0.0])
    each = per_example_loss(Outputs(logits, targets))
    assert mean_loss(Outputs(logits, targets, weights)).item() == pytest.approx(each[:2].mean().item())


def test_mse_is_the_mean_squared_error():
    pred, target = torch.randn(4, 3, 2, generator=torch.Generator().manual_seed(0)), torch.zeros(4, 3, 2)
    out = Outputs(pred, target, loss="mse")
    assert torch.equal(mean_loss(out), F.mse_loss(pred, target))
    assert torch.allclose(per_example_loss(out), pred.pow(2).flatten(1).mean(1))


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        per_example_loss(Outputs(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), loss="hinge"))


@pytest.mark.parametrize("workload", ["cifar", "gnn", "gpt", "grokking", "diffusion"])
def test_every_tiny_task_trains_on_the_mean_of_its_outputs(workload, tmp_path):
    """Task.loss is mean_loss(Task.outputs): whoever reads the outputs sees the loss the run trains on."""
    from harness.plugins.registry import Registry, size_of
    from harness.run.build import import_task

    entry = Registry().workload(workload)
    size = size_of(entry, "tiny")
    task = import_task(entry.info.task)(size, torch.device("cpu"), tmp_path, seed=0)
    torch.manual_seed(0)
    model = task.build_model(lambda site, n: torch.nn.Identity())
    model.eval()  # no dropout or batch-statistics differences between the two passes
    batch = task.next_batch(1)
    with torch.no_grad():
        assert torch.equal(task.loss(model, batch), mean_loss(task.outputs(model, batch)))


def test_mse_per_example_loss_takes_one_dimensional_predictions():
    out = Outputs(torch.tensor([1.0, -2.0]), torch.zeros(2), loss="mse")
    assert per_example_loss(out).tolist() == [1.0, 4.0]
