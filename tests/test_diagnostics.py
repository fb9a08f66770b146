"""Training diagnostics (harness/run/diagnostics.py): each figure on a case
checked by hand, and runs with diagnostics on that train exactly as runs
with them off."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from harness import api
from harness.common.losses import mean_loss, per_example_loss
from harness.errors import UserInputError
from harness.plugins.registry import Registry
from harness.run import diagnostics as diag
from harness.run import execute, plan_run, records
from harness.run.evalguard import ModelSnapshot
from tests import fakes

HERE = "tests.test_diagnostics"


# --------------------------------------------------------------------------- #
# Each figure on a hand-checkable case                                        #
# --------------------------------------------------------------------------- #


def _quadratic(matrix: torch.Tensor, b: torch.Tensor, x0: torch.Tensor):
    """loss(x) = x'Ax / 2 + b'x with x split over two parameters: gradient Ax + b, Hessian A."""
    first, second = nn.Parameter(x0[:2].clone()), nn.Parameter(x0[2:].clone())
    x = torch.cat([first, second])
    return 0.5 * x @ matrix @ x + b @ x, [first, second]


def _symmetric(eigenvalues: list[float]) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=torch.Generator().manual_seed(3),
                                       dtype=torch.float64))
    return q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T


def test_grad_norm_of_a_known_quadratic():
    matrix = torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    loss, params = _quadratic(matrix, torch.tensor([1.0, 0.0, -1.0, 0.0]), torch.tensor([1.0, 1.0, 1.0, 1.0]))
    # gradient = Ax + b = (2, 2, 2, 4): norm sqrt(4 + 4 + 4 + 16)
    assert diag.global_grad_norm(loss, params).item() == pytest.approx(math.sqrt(28))
    assert all(p.grad is None for p in params)  # .grad untouched


@pytest.mark.parametrize("eigenvalues, top", [([5.0, 2.0, -1.0, 0.5], 5.0), ([-6.0, 3.0, 1.0, 0.5], 3.0)])
def test_hessian_top_eigenvalue_of_a_known_quadratic(eigenvalues, top):
    """The largest eigenvalue, also when a negative one is larger in magnitude."""
    matrix = _symmetric(eigenvalues)
    loss, params = _quadratic(matrix, torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64))
    assert diag.hessian_top_eigenvalue(loss, params, iterations=200).item() == pytest.approx(top, rel=1e-6)


def test_hessian_with_unused_and_linear_parameters():
    """A parameter the loss never reads and one it reads linearly add no curvature."""
    matrix = _symmetric([4.0, 1.0, 0.5, 0.25])
    loss, params = _quadratic(matrix, torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64))
    linear, unused = nn.Parameter(torch.ones(3, dtype=torch.float64)), nn.Parameter(torch.ones(2))
    loss = loss + linear.sum()
    top = diag.hessian_top_eigenvalue(loss, [*params, linear, unused], iterations=200)
    assert top.item() == pytest.approx(4.0, rel=1e-6)


def _outputs(logits, targets, **kwargs) -> api.Outputs:
    return api.Outputs(torch.tensor(logits), torch.tensor(targets), **kwargs)


def test_zero_loss_fraction_counts_float32_losses_that_round_to_zero():
    # Row 0 leads by 100: exp(-100) vanishes next to 1, the loss is exactly 0.
    # Row 1 leads by 30: a loss of 2e-13 in float64, but exactly 0 in float32.
    out = _outputs([[100.0, 0.0, 0.0], [30.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 5.0, 0.0]], [0, 0, 0, 0])
    out.logits = out.logits.double()
    assert (per_example_loss(out) == 0).tolist() == [True, False, False, False]  # in float64 ...
    figures = diag.output_figures(out, per_example_loss)
    assert figures["zero_loss_fraction"].item() == 0.5  # ... and in float32, as the figure asks


def test_zero_loss_fraction_weights_labels():
    """Sigmoid outputs with a mask: only present labels count."""
    out = _outputs([[200.0, 200.0], [1.0, -200.0]], [[1.0, 0.0], [1.0, 0.0]],
                   weights=torch.tensor([[True, False], [True, True]]), loss="sigmoid")
    figures = diag.output_figures(out, per_example_loss)
    # present: (0,0) zero, (1,0) not, (1,1) zero; (0,1), a loss of 200, is masked out
    assert figures["zero_loss_fraction"].item() == pytest.approx(2 / 3)
    assert "logz_mean" not in figures  # log Z is the softmax's


def test_logz_on_known_logits():
    out = _outputs([[0.0, 0.0], [math.log(3.0), 0.0], [50.0, 50.0]], [0, 0, 0], weights=torch.tensor([1, 1, 0]))
    figures = diag.output_figures(out, per_example_loss)
    # log(1 + 1) and log(3 + 1); the third row has weight 0
    assert figures["logz_mean"].item() == pytest.approx((math.log(2) + math.log(4)) / 2)
    assert figures["logz_max"].item() == pytest.approx(math.log(4))


def test_no_output_figures_for_regression():
    assert diag.output_figures(_outputs([[0.5]], [[0.0]], loss="mse"), per_example_loss) == {}


def test_spike_ratio_from_a_planted_spike():
    w = nn.Parameter(torch.zeros(2))
    norms = diag.StepNorms([w], torch.device("cpu"))
    for g in (1.0, 1.0, 10.0, 1.0, 1.0):  # a 10x spike among norms of 1
        w.grad = torch.tensor([0.6, 0.8]) * g
        norms.record()
    read = norms.read()
    assert read["step_grad_norm_max"].item() == pytest.approx(10.0)
    assert read["step_grad_norm_median"].item() == pytest.approx(1.0)
    assert read["grad_spike_ratio"].item() == pytest.approx(10.0)
    for g in (2.0, 2.0):  # the largest is since the last read; the median runs on
        w.grad = torch.tensor([2.0, 0.0]) * g / 2
        norms.record()
    read = norms.read()
    assert read["step_grad_norm_max"].item() == pytest.approx(2.0) and read["grad_spike_ratio"].item() == pytest.approx(2.0)
    assert norms.read() == {}  # no step since


def test_update_ratio_is_relative_change_per_step():
    before = [torch.tensor([3.0]), torch.tensor([4.0])]
    now = [torch.tensor([3.6]), torch.tensor([4.8])]  # moved by (0.6, 0.8): norm 1; now has norm 6
    assert diag.update_ratio(now, before, steps=2).item() == pytest.approx(1 / 6 / 2)


def test_settings_off_by_default_and_checked():
    assert diag.settings({"diagnostics": {"enabled": False, "hessian": False}}) is None
    assert diag.settings({"diagnostics": {"enabled": False, "hessian": True}})["hessian"] is True
    with pytest.raises(UserInputError, match="expected true or false"):
        diag.settings({"diagnostics": {"enabled": "maybe"}})
    with pytest.raises(UserInputError, match="positive integer"):
        diag.settings({"diagnostics": {"enabled": True, "hessian_iterations": 0}})


# --------------------------------------------------------------------------- #
# gpt: the largest attention logit per layer                                  #
# --------------------------------------------------------------------------- #


def test_gpt_attention_logit_per_layer_on_a_tiny_model():
    from workloads.gpt.model import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8), lambda site, n: nn.LayerNorm(n))
    with torch.no_grad():  # large weights, so the logits are far from 0
        for block in model.transformer.h:
            block.attn.c_attn.weight.mul_(20)
    idx = torch.randint(0, 11, (3, 6))
    # By hand: q and k from each layer's c_attn output, every causal q.k / sqrt(4).
    qkv = []
    hooks = [b.attn.c_attn.register_forward_hook(lambda m, i, o: qkv.append(o)) for b in model.transformer.h]
    plain = model(idx)
    for h in hooks:
        h.remove()
    expected, unmasked = [], []
    for out in qkv:
        q, k, _ = out.split(8, dim=2)
        q, k = (t.view(3, 6, 2, 4).transpose(1, 2) for t in (q, k))
        logits = (q @ k.transpose(-2, -1)) / 2.0
        expected.append(logits.masked_fill(torch.ones(6, 6, dtype=torch.bool).triu(1), -math.inf).max().item())
        unmasked.append(logits.max().item())
    assert expected != unmasked  # the case tells the causal mask apart from none

    with diag.attention_logits() as attention:
        recorded = model(idx)
    figures = diag.attention_figures(attention.maxima)
    assert torch.equal(recorded, plain)  # recording changes no output
    assert len(attention.maxima) == 2  # one per layer
    assert figures["attn_logit_max/0"].item() == pytest.approx(expected[0], rel=1e-5)
    assert figures["attn_logit_max/1"].item() == pytest.approx(expected[1], rel=1e-5)
    assert figures["attn_logit_max"].item() == pytest.approx(max(expected), rel=1e-5)
    model(idx)  # outside the context: nothing recorded
    assert len(attention.maxima) == 2


def test_attention_logit_masks_scale_and_grouped_heads():
    q = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])  # (B=1, H=1, L=2, d=2)
    k = torch.tensor([[[[0.0, 3.0], [5.0, 0.0]]]])
    # logits q.k / sqrt(2): [[0, 5], [3, 0]] / sqrt(2); the causal mask hides (0, 1)
    assert diag.max_attention_logit(q, k).item() == pytest.approx(5 / math.sqrt(2))
    assert diag.max_attention_logit(q, k, is_causal=True).item() == pytest.approx(3 / math.sqrt(2))
    keep = torch.tensor([[True, False], [False, True]])
    assert diag.max_attention_logit(q, k, attn_mask=keep, scale=1.0).item() == pytest.approx(0.0)
    assert diag.max_attention_logit(q, k, attn_mask=torch.tensor([[0.0, -10.0], [0.0, 0.0]]), scale=1.0).item() == 3.0
    two_heads = q.expand(1, 2, 2, 2)  # two query heads sharing the one key head
    assert diag.max_attention_logit(two_heads, k, is_causal=True).item() == pytest.approx(3 / math.sqrt(2))


# --------------------------------------------------------------------------- #
# Diagnostics never change training                                           #
# --------------------------------------------------------------------------- #


class ClassifierTask(api.Task):
    """Three classes of 6-d points; a model with BatchNorm (buffers) and dropout (RNG)."""

    def __init__(self, size, device, data_dir, seed):
        super().__init__(size, device, data_dir, seed)
        gen = torch.Generator().manual_seed(seed % 2**31)
        self.x = torch.randn(96, 6, generator=gen)
        self.y = (self.x[:, 0] > 0).long() + (self.x[:, 1] > 0.5).long()

    def build_model(self, norm):
        return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))

    def next_batch(self, step):
        idx = torch.arange(16) + (step * 16) % 80
        return self.x[idx], self.y[idx]

    def outputs(self, model, batch):
        x, y = batch
        return api.Outputs(model(x), y)

    def loss(self, model, batch):
        return mean_loss(self.outputs(model, batch))

    def evaluate(self, model):
        logits = model(self.x)
        return {"validation/accuracy": (logits.argmax(1) == self.y).float().mean().item(),
                "validation/loss": nn.functional.cross_entropy(logits, self.y).item()}


def _classifier_run(tmp_path, overrides):
    registry = Registry(entry_points=False)
    info = fakes.fake_info(task=f"{HERE}:ClassifierTask", every_steps=5, max_steps=15)
    size = dataclasses.replace(info.sizes["tiny"], target=api.Target("accuracy", 2.0, "max"))  # never met: 15 steps
    registry.add_workload(dataclasses.replace(info, sizes={"tiny": size}))
    plan = plan_run("fake", "tests.fakes:PLAIN_SGD", size="tiny", output=tmp_path, registry=registry,
                    overrides=["optimizer.lr=0.1", *overrides])
    result = execute(plan)
    assert result.record["status"] == "budget_exhausted", result.record["reason"]
    return result.record, records.read_metrics(result.run_dir)


def _training_figures(rows):
    return [{k: v for k, v in row.items() if k in ("step", "train/loss", "lr") or k.startswith("validation/")}
            for row in rows]


def test_diagnostics_log_their_keys_and_change_no_training(tmp_path):
    off, off_rows = _classifier_run(tmp_path / "off", [])
    on, on_rows = _classifier_run(tmp_path / "on", ["diagnostics=true", "diagnostics.hessian=true",
                                                    "diagnostics.hessian_iterations=3"])
    assert _training_figures(on_rows) == _training_figures(off_rows)  # bit for bit: dropout, BatchNorm, SGD
    assert not any(k.startswith("diagnostics/") for row in off_rows for k in row) and "diagnostics" not in off
    for row in on_rows:
        for key in ("loss", "grad_norm", "update_ratio/matrix", "update_ratio/bias", "update_ratio/norm",
                    "grad_spike_ratio", "step_grad_norm_max", "step_grad_norm_median",
                    "logz_mean", "logz_max", "zero_loss_fraction", "hessian/top_eigenvalue",
                    "hessian/ratio_to_2_over_lr", "seconds"):
            assert isinstance(row[f"diagnostics/{key}"], float), key
        assert row["diagnostics/grad_spike_ratio"] >= 0 and 0 <= row["diagnostics/zero_loss_fraction"] <= 1
        assert row["diagnostics/hessian/ratio_to_2_over_lr"] == pytest.approx(
            row["diagnostics/hessian/top_eigenvalue"] * 0.1 / 2)
    assert on["diagnostics"]["last"] == {k: v for k, v in on_rows[-1].items() if k.startswith("diagnostics/")}
    assert on["diagnostics"]["errors"] == {}
    assert "diagnostics=true" in on["deviations"] and on["official"] is False


def test_measure_leaves_the_model_as_it_found_it():
    """Parameters, BatchNorm buffers, gradients and mode: the evaluation check sees no change."""
    size = fakes.fake_info().sizes["tiny"]
    task = ClassifierTask(size, torch.device("cpu"), None, 0)
    torch.manual_seed(0)
    model = task.build_model(None)
    model.train()
    task.loss(model, task.next_batch(0)).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.eval()
    d = diag.Diagnostics(task, model, torch.device("cpu"), {"hessian": True, "hessian_iterations": 2})
    snapshot = ModelSnapshot(model)
    row = d.measure(model, torch.optim.SGD(model.parameters(), lr=0.1), step=1)
    assert snapshot.changed(model) is None
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))
    assert not model.training and not any(m.training for m in model.modules())
    assert row["diagnostics/grad_norm"] > 0 and d.errors == {}


def test_a_task_without_outputs_gets_the_other_figures():
    task = fakes.SleepTask(fakes.fake_info().sizes["tiny"], torch.device("cpu"), None, 0)
    task.step_s = 0.0
    model = task.build_model(lambda site, n: nn.Identity())
    d = diag.Diagnostics(task, model, torch.device("cpu"), {"hessian": False})
    row = d.measure(model, None, step=1)
    assert d.errors == {}  # no outputs is not an error: those figures are simply absent
    assert "diagnostics/grad_norm" in row and "diagnostics/logz_mean" not in row
    assert "diagnostics/zero_loss_fraction" not in row


def test_a_bad_diagnostics_value_fails_before_the_run(tmp_path):
    registry = Registry(entry_points=False)
    registry.add_workload(fakes.fake_info())
    with pytest.raises(UserInputError, match="diagnostics.enabled"):
        plan_run("fake", "tests.fakes:PLAIN_SGD", size="tiny", output=tmp_path, registry=registry,
                 overrides=["diagnostics=maybe"])


def test_grokking_run_with_diagnostics_trains_as_without(tmp_path):
    """A real workload: the same metrics on and off, the softmax-collapse figure logged."""
    rows = {}
    for name, extra in (("off", []), ("on", ["diagnostics=true"])):
        plan = plan_run("grokking", None, size="tiny", output=tmp_path / name,
                        overrides=["budget.max_runtime_s=600", "budget.max_steps=6", "eval.every_steps=3", *extra])
        result = execute(plan)
        rows[name] = records.read_metrics(result.run_dir)
    assert len(rows["on"]) == 2 and _training_figures(rows["on"]) == _training_figures(rows["off"])
    for key in ("grad_norm", "update_ratio/matrix", "grad_spike_ratio", "logz_mean", "zero_loss_fraction"):
        assert f"diagnostics/{key}" in rows["on"][-1], key


def test_the_summary_shows_the_last_figures_in_two_lines():
    block = {"last": {"diagnostics/grad_norm": 0.5, "diagnostics/grad_spike_ratio": 12.0,
                      "diagnostics/update_ratio/matrix": 0.001, "diagnostics/logz_mean": 4.6,
                      "diagnostics/zero_loss_fraction": 0.25, "diagnostics/hessian/top_eigenvalue": 40.0,
                      "diagnostics/hessian/ratio_to_2_over_lr": 0.2}, "errors": {}}
    lines = diag.describe(block).splitlines()
    assert lines == ["grad norm 0.5 · spike ratio 12.00 · update/weight per step matrix 0.001",
                     "log Z mean 4.6 · zero-loss share 25.0% · top Hessian eigenvalue 40 = 0.2 x 2/lr"]
    assert diag.describe(None) is None
    assert "failed: hessian: RuntimeError" in diag.describe({"last": {}, "errors": {"hessian": "RuntimeError: no"}})
