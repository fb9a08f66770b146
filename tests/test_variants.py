"""Workload variants: declared in WorkloadInfo, picked with --variant, passed to
the task, recorded, kept apart in results, sweeps and boards; gpt's qk_norm and
z_loss and grokking's stablemax (docs/variants.md)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness import api
from harness.errors import UserInputError
from harness.plugins.registry import Registry
from harness.run import execute, plan_run
from harness.score import scoring
from harness.sweeps.tuning import plan_sweep, what_changed
from tests import fakes
from tests.test_scoring import defining_size, record, write
from workloads.gpt import WORKLOAD as GPT_WORKLOAD
from workloads.gpt.model import GPT, GPTConfig
from workloads.gpt.task import GPTTask, z_loss_term

ROOT = Path(__file__).resolve().parent.parent
SGD = "tests.fakes:PLAIN_SGD"
_NOT_GIVEN = object()


class SettingsTask(fakes.SleepTask):
    """The fake task, taking ``settings`` as a variant's task does, and saying what it got."""

    got: object = None

    def __init__(self, size, device, data_dir, seed, settings=_NOT_GIVEN):
        super().__init__(size, device, data_dir, seed)
        SettingsTask.got = settings


VARIANTS = {"wide": {"model.width": 8}, "slow": {"loss.scale": 2.0}, "narrow": {"model.width": 2}}


def _registry(task: str = "tests.test_variants:SettingsTask") -> Registry:
    registry = Registry(entry_points=False)
    registry.add_workload(replace(fakes.fake_info(target=5.0, every_steps=5, task=task), variants=VARIANTS))
    return registry


# --------------------------------------------------------------------------- #
# Naming and resolving                                                         #
# --------------------------------------------------------------------------- #


def test_variants_resolve_combine_in_declaration_order_and_refuse_unknowns():
    info = _registry().workload("fake").info
    assert info.resolve_variant("wide") == ("wide", {"model.width": 8})
    # Either spelling of a combination is one variant, named in declaration order.
    assert info.resolve_variant("slow+wide") == ("wide+slow", {"model.width": 8, "loss.scale": 2.0})
    assert info.resolve_variant("wide+slow")[0] == "wide+slow"
    with pytest.raises(UserInputError, match=r"no variant 'wdie'; did you mean 'wide'"):
        info.resolve_variant("wdie")
    with pytest.raises(UserInputError, match="disagree on model.width"):
        info.resolve_variant("wide+narrow")
    with pytest.raises(UserInputError, match="declares none"):
        replace(info, variants={}).resolve_variant("wide")


def test_the_plan_resolves_a_variant_from_the_option_or_the_override(tmp_path):
    registry = _registry()
    base = plan_run("fake", SGD, size="tiny", output=tmp_path, registry=registry)
    assert base.variant is None and base.variant_settings == {} and base.workload_dir == "fake-tiny"
    plan = plan_run("fake", SGD, size="tiny", output=tmp_path, variant="slow+wide", registry=registry)
    assert plan.variant == "wide+slow" and plan.config["variant"] == "wide+slow"
    assert plan.variant_settings == {"model.width": 8, "loss.scale": 2.0}
    assert plan.workload_dir == "fake-tiny+wide+slow"
    assert plan.deviations == []  # a variant is a workload of its own, not a deviation
    by_override = plan_run("fake", SGD, size="tiny", output=tmp_path, overrides=["variant=wide"], registry=registry)
    assert by_override.variant == "wide"


# --------------------------------------------------------------------------- #
# The run                                                                      #
# --------------------------------------------------------------------------- #


def test_a_variant_reaches_the_task_and_the_record_and_a_base_run_passes_no_settings(tmp_path):
    registry = _registry()
    overrides = ["budget.max_steps=2", "budget.max_runtime_s=30"]
    base = execute(plan_run("fake", SGD, size="tiny", output=tmp_path, overrides=overrides, registry=registry))
    assert SettingsTask.got is _NOT_GIVEN  # a task without variants need not take settings
    assert "variant" not in base.record and base.run_dir.parent.parent.name == "fake-tiny"

    result = execute(plan_run("fake", SGD, size="tiny", output=tmp_path, overrides=overrides, variant="wide",
                              registry=registry))
    assert SettingsTask.got == {"model.width": 8}
    assert result.record["variant"] == {"name": "wide", "settings": {"model.width": 8}}
    assert result.run_dir.parent.parent.name == "fake-tiny+wide"  # never beside the base's runs
    assert result.record["deviations"] == ["max_runtime_s=30", "max_steps=2"]  # the variant is not one


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from harness.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


@pytest.mark.slow
def test_grokking_stablemax_variant_runs_through_the_cli(tmp_path):
    args = ["budget.max_steps=3", "budget.max_runtime_s=60", "eval.every_steps=3"]
    for variant in ([], ["--variant", "stablemax"]):
        out = _bench("run", "-w", "grokking", "--size", "tiny", *variant, "-o", str(tmp_path), *args)
        assert out.returncode == 0, out.stderr + out.stdout
    (path,) = tmp_path.glob("runs/grokking-tiny+stablemax/adamw/*/run.json")
    (base_path,) = tmp_path.glob("runs/grokking-tiny/adamw/*/run.json")
    rec, base = json.loads(path.read_text()), json.loads(base_path.read_text())
    assert rec["variant"] == {"name": "stablemax", "settings": {"loss": "stablemax"}} and "variant" not in base
    assert rec["steps"] == 3 and rec["status"] == "budget_exhausted"
    # The same seed and steps, another loss: StableMax cross-entropy, not softmax's.
    assert rec["final_metrics"]["train/accuracy"] != base["final_metrics"]["train/accuracy"] or \
        rec["final_metrics"]["validation/loss"] != pytest.approx(base["final_metrics"]["validation/loss"], rel=1e-3)


def test_an_unknown_variant_is_one_line_with_did_you_mean(tmp_path):
    out = _bench("run", "-w", "gpt", "--size", "tiny", "--variant", "qknorm", "-o", str(tmp_path))
    assert out.returncode == 2
    assert "no variant 'qknorm'; did you mean 'qk_norm'" in out.stderr
    assert "Traceback" not in out.stderr and not list(tmp_path.rglob("run.json"))


def test_bench_list_shows_the_variants():
    out = _bench("list", "--json")
    assert out.returncode == 0, out.stderr
    listed = {(w["workload"], w["size"]): w["variants"] for w in json.loads(out.stdout)["workloads"]}
    assert listed[("gpt", "tiny")] == {"qk_norm": {"model.qk_norm": True}, "z_loss": {"loss.z_loss": 1e-4}}
    assert listed[("grokking", "tiny")] == {"stablemax": {"loss": "stablemax"}, "float64": {"dtype": "float64"}}
    assert listed[("cifar", "tiny")] == {}
    shown = _bench("show", "gpt", "--json")
    assert json.loads(shown.stdout)["variants"] == listed[("gpt", "tiny")]


# --------------------------------------------------------------------------- #
# Sweeps and boards                                                            #
# --------------------------------------------------------------------------- #


def test_a_tune_of_a_variant_is_its_own_sweep_and_never_reuses_base_trials(tmp_path):
    registry = _registry()
    base = plan_sweep("fake", SGD, size="tiny", studies=1, trials=2, output=tmp_path, registry=registry)
    tuned = plan_sweep("fake", SGD, size="tiny", studies=1, trials=2, output=tmp_path, variant="wide", registry=registry)
    assert base.root.parent.name == "fake-tiny" and tuned.root.parent.name == "fake-tiny+wide"
    assert {t.trial_id for t in base.trials}.isdisjoint({t.trial_id for t in tuned.trials})
    assert base.sweep_id != tuned.sweep_id
    assert [t.plan.variant for t in tuned.trials] == ["wide", "wide"]
    # Had a base trial's record sat in a variant trial's directory, the refusal says why.
    old = {"seed": tuned.trials[0].seed, "hyperparameters": {"optimizer": dict(tuned.trials[0].plan.hp_optimizer),
                                                            "norm": dict(tuned.trials[0].plan.hp_norm)}}
    assert what_changed(old, tuned.trials[0]) == ["variant none -> wide"]
    assert what_changed({**old, "variant": {"name": "wide"}}, tuned.trials[0]) == []


def _variant(rec: dict, name: str, settings: dict) -> dict:
    return {**rec, "variant": {"name": name, "settings": settings}}


def test_boards_score_a_variant_in_its_own_column_never_pooled_with_the_base(tmp_path, monkeypatch):
    monkeypatch.setattr(scoring, "installed_size", defining_size)
    recs = [
        record(sub="a", t=10.0, trial=0), record(sub="b", t=20.0, trial=1),
        _variant(record(sub="a", t=40.0, trial=2), "qk", {"model.qk": True}),
        _variant(record(sub="b", t=5.0, trial=3), "qk", {"model.qk": True}),
    ]
    for i, rec in enumerate(recs):
        write(tmp_path, rec, f"r{i}")
    board = scoring.score_records([tmp_path])
    (group,) = board.groups  # one official board: the variant is not a deviation
    times = group.times.set_index(["submission", "workload"])["time_s"]
    assert times[("a", "w-tiny")] == 10.0 and times[("b", "w-tiny")] == 20.0
    assert times[("a", "w-tiny[qk]")] == 40.0 and times[("b", "w-tiny[qk]")] == 5.0
    assert board.left_out.empty


def test_a_variant_record_unlike_this_installs_variant_is_left_out(tmp_path, monkeypatch):
    monkeypatch.setattr(scoring, "installed_size", defining_size)
    good = _variant(record(workload="gpt", trial=0), "qk_norm", {"model.qk_norm": True})
    edited = _variant(record(workload="gpt", sub="b", trial=1), "qk_norm", {"model.qk_norm": False})
    unknown = _variant(record(workload="gpt", sub="c", trial=2), "qknorm", {"model.qk_norm": True})
    assert scoring.comparability_problems(good) == []
    assert scoring.comparability_problems(edited) == [
        "variant qk_norm settings {'model.qk_norm': False}, the workload's are {'model.qk_norm': True}"]
    assert scoring.comparability_problems(unknown) == ["variant qknorm is not one of workload gpt's"]


# --------------------------------------------------------------------------- #
# gpt: qk_norm and z_loss                                                      #
# --------------------------------------------------------------------------- #


SMALL = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)


def _layernorm(site, n):
    return nn.LayerNorm(n)


def test_qk_norm_is_off_by_default_and_changes_only_attention():
    torch.manual_seed(0)
    base = GPT(SMALL, _layernorm)
    torch.manual_seed(0)
    normed = GPT(replace(SMALL, qk_norm=True), _layernorm)
    base_params, normed_params = dict(base.named_parameters()), dict(normed.named_parameters())
    added = sorted(set(normed_params) - set(base_params))
    assert added == [f"transformer.h.{i}.attn.{qk}_norm.{p}" for i in range(2) for qk in "kq" for p in ("bias", "weight")]
    assert not any("_norm" in n and ".attn." in n for n in base_params)  # off by default: the model of main
    # The same initialization for every shared parameter (LayerNorms draw no random numbers) ...
    assert all(torch.equal(p, normed_params[n]) for n, p in base_params.items())
    assert normed_params["transformer.h.0.attn.q_norm.weight"].shape == (SMALL.n_embd // SMALL.n_head,)
    # ... and another model: queries and keys are normalized before attention.
    idx = torch.randint(0, 11, (2, 8), generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(base(idx), normed(idx))


def test_qk_norm_normalizes_each_heads_queries_and_keys():
    attn = GPT(replace(SMALL, qk_norm=True), _layernorm).transformer.h[0].attn
    seen = []
    attn.q_norm.register_forward_hook(lambda m, i, o: seen.append(o))
    attn(torch.randn(2, 8, SMALL.n_embd) * 50)
    (q,) = seen
    assert q.shape == (2, SMALL.n_head, 8, SMALL.n_embd // SMALL.n_head)  # (B, heads, T, head size)
    assert torch.allclose(q.mean(-1), torch.zeros(()), atol=1e-5)
    assert torch.allclose(q.var(-1, unbiased=False), torch.ones(()), atol=1e-3)  # whatever the input's scale


@pytest.fixture(scope="module")
def tiny_size():
    return GPT_WORKLOAD.sizes["tiny"]


def test_qk_norm_parameters_are_typed_norm(tiny_size):
    task = GPTTask(tiny_size, torch.device("cpu"), Path("/nonexistent"), seed=0, settings={"model.qk_norm": True})
    model = task.build_model(_layernorm)
    types = task.param_types(model)
    qk = {n: t for n, t in types.items() if ".attn.q_norm." in n or ".attn.k_norm." in n}
    assert len(qk) == 4 * 3 and set(qk.values()) == {api.ParamType.NORM}


class _FixedLogits(nn.Module):
    """A "model" whose logits are given: position 0 [0, 0], position 1 [log 3, 0]."""

    def __init__(self):
        super().__init__()
        self.logits = nn.Parameter(torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0]]]))

    def forward(self, x):
        return self.logits


def test_z_loss_adds_exactly_its_coefficient_times_mean_log_z_squared(tiny_size):
    x, y = torch.zeros(1, 2, dtype=torch.long), torch.tensor([[0, 1]])
    model = _FixedLogits()
    # By hand: log Z = log 2 and log 4 = 2 log 2, so mean(log Z^2) = (1 + 4) / 2 * log(2)^2.
    by_hand = 2.5 * math.log(2.0) ** 2
    assert z_loss_term(model(x)).item() == pytest.approx(by_hand, rel=1e-6)
    # Cross-entropy by hand: -log(1/2) at position 0, -log(1/4) at position 1.
    ce = (math.log(2.0) + math.log(4.0)) / 2
    base = GPTTask(tiny_size, torch.device("cpu"), Path("/nonexistent"), seed=0)
    with_z = GPTTask(tiny_size, torch.device("cpu"), Path("/nonexistent"), seed=0, settings={"loss.z_loss": 1e-4})
    assert base.loss(model, (x, y)).item() == pytest.approx(ce, rel=1e-6)  # off by default
    assert torch.equal(base.loss(model, (x, y)), F.cross_entropy(model(x).flatten(0, 1), y.flatten()))
    assert with_z.loss(model, (x, y)).item() == pytest.approx(ce + 1e-4 * by_hand, rel=1e-6)
    # Training loss only: evaluation reports the cross-entropy alone.
    net = GPT(replace(SMALL, vocab_size=96, block_size=64), _layernorm)
    base.settings = with_z.settings = replace(base.settings, eval_windows=2, eval_batch_size=2)
    with torch.no_grad():
        assert base.evaluate(net) == with_z.evaluate(net)


def test_gpt_settings_are_checked():
    size = GPT_WORKLOAD.sizes["tiny"]
    with pytest.raises(ValueError, match="no setting 'model.qknorm'"):
        GPTTask(size, torch.device("cpu"), Path("/x"), seed=0, settings={"model.qknorm": True})
    with pytest.raises(ValueError, match="not a coefficient"):
        GPTTask(size, torch.device("cpu"), Path("/x"), seed=0, settings={"loss.z_loss": -1.0})
