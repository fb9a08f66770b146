"""AlgoPerf's workload hyperparameters are real (issue 17): ``label_smoothing``
in the classification losses, ``dropout_rate`` (and ``aux_dropout_rate``, the
GPT's attention dropout) in the models, ``grad_clip`` in the step. Each changes
what it should, is off when absent, and a name a workload does not take is
refused naming the workloads that do."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness import api
from harness.errors import UserInputError
from harness.plugins.registry import Registry
from harness.run import execute, plan_run
from tests import fakes

# --------------------------------------------------------------------------- #
# label smoothing: the training loss, by the formula                           #
# --------------------------------------------------------------------------- #


class _Fixed(nn.Module):
    """A 'model' returning fixed logits, so the loss can be checked by hand."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, *args):
        return self.logits


def _bare(task_cls, **attrs):
    task = object.__new__(task_cls)  # no data loading: loss reads only these
    task.device = torch.device("cpu")
    for k, v in attrs.items():
        setattr(task, k, v)
    return task


def test_label_smoothing_changes_the_cifar_loss_by_the_formula():
    from workloads.cifar.task import CifarTask

    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    y = torch.tensor([0, 1])
    log_p = logits.log_softmax(dim=1)
    nll = -log_p[torch.arange(2), y]
    eps = 0.1
    by_hand = ((1 - eps) * nll - eps * log_p.mean(dim=1)).mean()  # (1-e) CE + e CE(uniform)

    plain = _bare(CifarTask).loss(_Fixed(logits), (None, y))
    smoothed = _bare(CifarTask, hyperparameters={"label_smoothing": eps}).loss(_Fixed(logits), (None, y))
    assert torch.equal(plain, F.cross_entropy(logits, y))  # absent: the loss as it was
    assert torch.allclose(smoothed, by_hand, atol=1e-6) and not torch.allclose(smoothed, plain)


def test_label_smoothing_pulls_gnn_labels_towards_one_half():
    from workloads.gnn.model import GraphBatch
    from workloads.gnn.task import GnnTask

    logits = torch.tensor([[1.0, -2.0], [0.0, 3.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mask = torch.tensor([[True, True], [True, False]])  # the missing label stays out
    batch = GraphBatch(*([None] * 7), y=y, mask=mask)
    eps = 0.2
    target = y * (1 - eps) + eps / 2  # AlgoPerf's ogbg smoothing
    by_hand = F.binary_cross_entropy_with_logits(logits, target, reduction="none")[mask].mean()
    smoothed = _bare(GnnTask, hyperparameters={"label_smoothing": eps}).loss(_Fixed(logits), batch)
    plain = _bare(GnnTask).loss(_Fixed(logits), batch)
    assert torch.allclose(smoothed, by_hand, atol=1e-6)
    assert torch.allclose(plain, F.binary_cross_entropy_with_logits(logits, y, reduction="none")[mask].mean(), atol=1e-6)


@pytest.mark.parametrize("loss_kind", ["softmax", "stablemax"])
def test_grokking_and_gpt_train_on_the_smoothed_loss(loss_kind):
    from harness.common.losses import mean_loss
    from workloads.gpt.task import SETTINGS, GPTTask
    from workloads.grokking.task import GrokkingTask

    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    y = torch.tensor([0, 1])
    grok = _bare(GrokkingTask, loss_kind=loss_kind, hyperparameters={"label_smoothing": 0.2})
    out = grok.outputs(_Fixed(logits), (None, y))
    assert torch.equal(grok.loss(_Fixed(logits), (None, y)), mean_loss(out, 0.2))
    assert not torch.equal(mean_loss(out, 0.2), mean_loss(out))
    gpt = _bare(GPTTask, settings=SETTINGS["tiny"], hyperparameters={"label_smoothing": 0.2})
    tokens = logits[None]  # (B=1, T=2, V=3)
    assert torch.equal(gpt.loss(_Fixed(tokens), (None, y[None])), F.cross_entropy(logits, y, label_smoothing=0.2))


# --------------------------------------------------------------------------- #
# dropout: in the model, in train mode only, off by default                    #
# --------------------------------------------------------------------------- #


def _gpt(hp):
    from workloads.gpt.task import SETTINGS, GPTTask

    task = _bare(GPTTask, settings=SETTINGS["tiny"], hyperparameters=hp)
    torch.manual_seed(0)
    return task.build_model(lambda site, n: nn.LayerNorm(n))


def _twice_in_train_mode(model, x):
    model.train()
    return model(x), model(x)


@pytest.mark.parametrize("name", ["dropout_rate", "aux_dropout_rate"])
def test_gpt_dropout_acts_in_train_mode_only(name):
    x = torch.randint(0, 90, (2, 16))
    plain, dropped = _gpt({}), _gpt({name: 0.3})
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), dropped.state_dict().values()))
    a, b = _twice_in_train_mode(dropped, x)
    assert not torch.equal(a, b)  # each forward draws its own mask
    dropped.eval()
    plain.eval()
    assert torch.equal(dropped(x), plain(x))  # evaluation sees no dropout

    state = torch.get_rng_state()
    a, b = _twice_in_train_mode(plain, x)
    assert torch.equal(a, b) and torch.equal(state, torch.get_rng_state())  # off: no draw at all


def test_gnn_dropout_rate_replaces_the_sizes_own():
    from workloads.gnn.task import SETTINGS, GnnTask

    def rates(hp):
        task = _bare(GnnTask, settings=SETTINGS["tiny"], hyperparameters=hp)
        return {m.p for m in task.build_model(lambda site, n: nn.LayerNorm(n)).modules() if isinstance(m, nn.Dropout)}

    assert rates({}) == {SETTINGS["tiny"].model.dropout} == {0.0}
    assert rates({"dropout_rate": 0.25}) == {0.25}


# --------------------------------------------------------------------------- #
# grad_clip: the step's, for every workload                                    #
# --------------------------------------------------------------------------- #


def _one_step(grad_clip):
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x, y = torch.randn(8, 3) * 10, torch.randn(8, 2)
    before = [p.detach().clone() for p in model.parameters()]
    task = SimpleNamespace(loss=lambda m, b: ((m(b[0]) - b[1]) ** 2).mean())
    ctx = api.StepContext(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=1.0), schedule=None,
                          batch=(x, y), step=0, hp=api.Hyperparameters(), step_hint=1, task=task, grad_clip=grad_clip)
    api.default_update(ctx)
    moved = [b - p.detach() for b, p in zip(before, model.parameters())]  # lr 1: the gradient used
    return math.sqrt(sum(float(m.pow(2).sum()) for m in moved)), moved


def test_grad_clip_bounds_the_global_norm_and_is_identity_when_absent():
    raw_norm, raw = _one_step(None)
    assert raw_norm > 1.0
    clipped_norm, clipped = _one_step(0.5)
    assert clipped_norm == pytest.approx(0.5, rel=1e-4)
    assert all(torch.allclose(c * raw_norm / clipped_norm, r, rtol=1e-4) for c, r in zip(clipped, raw))  # direction kept
    _, loose = _one_step(raw_norm * 10)  # a bound above the norm: the same step, bit for bit
    assert all(torch.equal(a, b) for a, b in zip(loose, raw))


class _QuickTask(fakes.SleepTask):
    step_s = 0.0
    eval_s = 0.0
    built_with: dict = {}

    def build_model(self, norm):
        _QuickTask.built_with = dict(self.hyperparameters)  # set before build_model
        return super().build_model(norm)


def _no_clip_update(ctx):
    ctx.optimizer.zero_grad(set_to_none=True)
    loss = ctx.loss_fn()
    loss.backward()
    ctx.optimizer.step()
    return loss.detach()


NO_CLIP_SGD = SimpleNamespace(**{**vars(fakes.PLAIN_SGD), "update": _no_clip_update})
REFUSING_SGD = SimpleNamespace(**{**vars(fakes.PLAIN_SGD), "REFUSES": {"grad_clip": "it clips on its own"}})
ME = "tests.test_workload_hyperparameters"


def _registry():
    registry = Registry(entry_points=False)
    info = fakes.fake_info(task=f"{ME}:_QuickTask", target=1e9, every_steps=5, max_steps=10)
    registry.add_workload(dataclasses.replace(info, hyperparameters=("dropout_rate",)))
    return registry


def _run(tmp_path, submission="tests.fakes:PLAIN_SGD", **overrides):
    plan = plan_run("fake", submission, size="tiny", output=tmp_path, registry=_registry(),
                    overrides=[f"optimizer.{k}={v}" for k, v in overrides.items()])
    return execute(plan).record


def test_runs_hand_the_workload_its_values_and_record_them(tmp_path):
    record = _run(tmp_path / "a", dropout_rate=0.1, grad_clip=1.0)
    assert record["status"] == "budget_exhausted", record.get("reason")
    assert _QuickTask.built_with == {"dropout_rate": 0.1, "grad_clip": 1.0}
    assert record["hyperparameters"]["optimizer"] == {"lr": 0.01, "dropout_rate": 0.1, "grad_clip": 1.0}
    plain = _run(tmp_path / "b")
    assert _QuickTask.built_with == {} and plain["hyperparameters"]["optimizer"] == {"lr": 0.01}


def test_grad_clip_changes_a_run_and_a_loose_one_changes_nothing(tmp_path):
    plain = _run(tmp_path / "a")["final_metrics"]["validation/mse"]
    assert _run(tmp_path / "b", grad_clip=1e12)["final_metrics"]["validation/mse"] == plain
    assert _run(tmp_path / "c", grad_clip=0.01)["final_metrics"]["validation/mse"] != plain


def test_a_custom_update_that_never_clips_fails_instead_of_running_unclipped(tmp_path):
    record = _run(tmp_path / "a", f"{ME}:NO_CLIP_SGD", grad_clip=1.0)
    assert record["status"] == "error" and "never called ctx.clip_gradients()" in record["reason"]
    assert _run(tmp_path / "b", f"{ME}:NO_CLIP_SGD")["status"] == "budget_exhausted"  # no grad_clip: fine


# --------------------------------------------------------------------------- #
# refusals                                                                     #
# --------------------------------------------------------------------------- #


def test_a_name_the_workload_does_not_take_is_refused_naming_those_that_do(tmp_path):
    with pytest.raises(UserInputError, match=r"^cifar takes no dropout_rate; workloads that do: diffusion, gnn, gpt$"):
        plan_run("cifar", "nadamw", size="tiny", output=tmp_path, overrides=["optimizer.dropout_rate=0.1"])
    with pytest.raises(UserInputError, match=r"^diffusion takes no label_smoothing; workloads that do: cifar, gnn, gpt, grokking$"):
        plan_run("diffusion", "nadamw", size="tiny", output=tmp_path, overrides=["optimizer.label_smoothing=0.1"])
    # A search space (typed hyperparameters) may set it, as AlgoPerf's spaces do for every
    # workload: accepted, not applied, and the record's config says so.
    plan = plan_run("diffusion", "nadamw", size="tiny", output=tmp_path, hyperparameters={"optimizer": {"label_smoothing": 0.1}})
    assert "label_smoothing" not in plan.hp_workload
    assert plan.config["not_applied"] == {"label_smoothing": "diffusion does not take label_smoothing: set by the "
                                          "search space, not applied (as AlgoPerf)"}
    with pytest.raises(UserInputError, match="aux_dropout_rate; workloads that do: gpt$"):
        plan_run("gnn", "nadamw", size="tiny", output=tmp_path, overrides=["optimizer.aux_dropout_rate=0.1"])


def test_bad_values_and_refusing_submissions_are_refused(tmp_path):
    for override, message in (("dropout_rate=1.0", r"dropout_rate must be a number in \[0, 1\), got 1.0"),
                              ("label_smoothing=-0.1", r"label_smoothing must be a number in \[0, 1\)"),
                              ("grad_clip=0", r"grad_clip must be a number > 0 \(null: no clipping\), got 0")):
        with pytest.raises(UserInputError, match=message):
            plan_run("gpt", "nadamw", size="tiny", output=tmp_path, overrides=[f"optimizer.{override}"])
    with pytest.raises(UserInputError, match="^tngd refuses grad_clip: its step solves"):
        plan_run("gpt", "tngd", size="tiny", output=tmp_path, overrides=["optimizer.grad_clip=1.0"])
    with pytest.raises(UserInputError, match="refuses grad_clip: it clips on its own"):
        plan_run("fake", f"{ME}:REFUSING_SGD", size="tiny", output=tmp_path, registry=_registry(),
                 overrides=["optimizer.grad_clip=1.0"])
    with pytest.raises(UserInputError, match="'dropout_rate' is a workload hyperparameter .* optimizer.dropout_rate="):
        plan_run("gpt", "nadamw", size="tiny", output=tmp_path, overrides=["norm.dropout_rate=0.1"])
    assert plan_run("gpt", "nadamw", size="tiny", output=tmp_path, overrides=["optimizer.grad_clip=null"]).hp_workload == {"grad_clip": None}


def test_absent_they_change_no_plan(tmp_path):
    plan = plan_run("gpt", "nadamw", size="tiny", output=tmp_path)
    assert plan.hp_workload == {} and not set(plan.hp_optimizer) & set(api.WORKLOAD_HYPERPARAMETERS)


# --------------------------------------------------------------------------- #
# an AlgoPerf search space naming them drives bench tune                       #
# --------------------------------------------------------------------------- #


SPACE = {
    "learning_rate": {"min": 1e-3, "max": 3e-3, "scaling": "log"},
    "label_smoothing": {"feasible_points": [0.1]},
    "dropout_rate": {"min": 0.0, "max": 0.2, "scaling": "linear"},
    "aux_dropout_rate": {"feasible_points": [0.0, 0.1]},
    "grad_clip": {"feasible_points": [0.5]},
}


@pytest.mark.parametrize("norm", [None, "layernorm"])
def test_an_algoperf_search_space_routes_them_to_the_workload(tmp_path, norm):
    from harness.sweeps.tuning import plan_sweep

    # Asked for a norm, a bare workload name still lands among the optimizer's.
    asked = norm or "nadamw"
    sweep = plan_sweep("gpt", asked, size="tiny", studies=1, trials=3, search_space=SPACE, output=tmp_path)
    for trial in sweep.trials:
        taken = trial.plan.hp_workload
        assert set(taken) == {"label_smoothing", "dropout_rate", "aux_dropout_rate", "grad_clip"}
        assert taken["label_smoothing"] == 0.1 and 0.0 <= taken["dropout_rate"] <= 0.2
        assert all(trial.plan.hp_optimizer[k] == v for k, v in taken.items())
    assert len({t.trial_id for t in sweep.trials}) == 3
    # On cifar (no dropout) the space's dropout_rate is accepted and not applied, as in AlgoPerf.
    trial = plan_sweep("cifar", asked, size="tiny", studies=1, trials=1, search_space=SPACE, output=tmp_path).trials[0]
    assert "dropout_rate" not in trial.plan.hp_workload and "dropout_rate" in trial.plan.config["not_applied"]


@pytest.mark.slow
def test_algoperf_search_space_with_workload_hyperparameters_drives_bench_tune(tmp_path):
    (tmp_path / "tuning_search_space.json").write_text(json.dumps(SPACE))
    out = subprocess.run(
        [sys.executable, "-c", "from harness.cli import main; main()", "tune", "--submission", "nadamw",
         "--workload", "gpt", "--size", "tiny", "--studies", "1", "--trials", "2", "--search-space",
         str(tmp_path / "tuning_search_space.json"), "--output", str(tmp_path / "r"),
         "budget.max_steps=4", "eval.every_steps=2", "budget.max_runtime_s=600"],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "COLUMNS": "200"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "r").rglob("run.json"))]
    assert len(records) == 2
    for record in records:
        hp = record["hyperparameters"]["optimizer"]
        assert hp["label_smoothing"] == 0.1 and hp["grad_clip"] == 0.5 and 0.0 <= hp["dropout_rate"] <= 0.2
        assert record["status"] == "budget_exhausted" and record["steps"] == 4
    assert records[0]["hyperparameters"]["optimizer"]["dropout_rate"] != records[1]["hyperparameters"]["optimizer"]["dropout_rate"]
