"""AlgoPerf PyTorch submission modules run unchanged (issue 17).

The submissions under tests/algoperf_submissions/ are written to AlgoPerf's
API (``from algoperf import spec``), never to optbench's. Most runs use a fast
fake workload with model outputs; the NAdamW check trains cifar tiny.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from harness import api
from harness.common.losses import mean_loss
from harness.errors import PluginError
from harness.plugins import algoperf, metacache
from harness.plugins.registry import Registry, read_literal_metadata
from harness.run import execute, plan_run
from tests import fakes
from tests.test_plugins import bench, fake_dist, one_line_error, write

HERE = Path(__file__).parent / "algoperf_submissions"
MOMENTUM = HERE / "momentum" / "submission.py"
NADAMW = HERE / "nadamw" / "pytorch" / "submission.py"
SWAP = HERE / "swap" / "submission.py"


class OutputsTask(fakes.SleepTask):
    """The fake regression workload, free of busy-waits, with model outputs."""

    step_s = 0.0
    eval_s = 0.0

    def outputs(self, model, batch):
        x, y = batch
        return api.Outputs(model(x), y[:, None], loss="mse")  # (N, 1): per_example_loss reads N-first 2-d

    def loss(self, model, batch):
        return mean_loss(self.outputs(model, batch))


def registry() -> Registry:
    reg = Registry()
    reg.add_workload(fakes.fake_info(task="tests.test_algoperf_submissions:OutputsTask", target=1e9))
    return reg


def run(tmp_path: Path, submission: Path | str, *overrides: str, steps: int = 10):
    plan = plan_run("fake", str(submission), size="tiny", output=tmp_path / "results", registry=registry(),
                    overrides=[f"budget.max_steps={steps}", "eval.every_steps=5", *overrides])
    result = execute(plan)
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    return result.record, rows


@pytest.fixture
def algoperf_modules():
    """Whatever ``algoperf`` modules a test imports are gone after it."""
    saved = {k: v for k, v in sys.modules.items() if k == "algoperf" or k.startswith("algoperf.")}
    for key in saved:
        del sys.modules[key]
    yield
    for key in [k for k in sys.modules if k == "algoperf" or k.startswith("algoperf.")]:
        del sys.modules[key]
    sys.modules.update(saved)


# --------------------------------------------------------------------------- #
# Recognition and hyperparameters, without importing the module               #
# --------------------------------------------------------------------------- #

FUNCTIONS = """
def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    return {}
def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters,
                  batch, loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
    return optimizer_state, current_param_container, model_state
def get_batch_size(workload_name):
    return 8
def data_selection(workload, input_queue, optimizer_state, current_param_container, model_state,
                   hyperparameters, global_step, rng):
    return next(input_queue)
"""


def test_recognised_by_its_functions_without_importing_it(tmp_path):
    path = write(tmp_path / "never_imported.py", '"""My AlgoPerf method."""\n' + FUNCTIONS + "raise RuntimeError('imported')\n")
    (tmp_path / "tuning_search_space.json").write_text(json.dumps({"learning_rate": {"min": 1e-4, "max": 1e-2, "scaling": "log"}}))
    plugin = Registry().submission(str(path))
    assert (plugin.name, plugin.kind, plugin.meta["FORMAT"]) == ("never_imported", "optimizer", "algoperf")
    assert plugin.meta["DESCRIPTION"] == "AlgoPerf submission (external tuning): My AlgoPerf method."
    assert plugin.meta["DEFAULTS"] == {"learning_rate": pytest.approx(1e-3)}
    assert plugin.provenance()["format"] == "algoperf"
    cached = metacache.lookup(path, path.read_bytes())  # the cache keeps what the parse found
    assert cached is not None and cached[0][algoperf.META_KEY]["functions"] == list(algoperf.REQUIRED)
    assert read_literal_metadata(path)[0] == cached[0]


def test_bench_list_shows_an_installed_algoperf_module(tmp_path):
    site = tmp_path / "site"
    write(site / "apfpkg" / "__init__.py", "raise RuntimeError('listing must not run the package')\n")
    write(site / "apfpkg" / "lawa.py", '"""LAWA."""\n' + FUNCTIONS)
    fake_dist(site, "apfdist", "1.0", submissions={"lawa": "apfpkg.lawa"})
    out = bench("list", "--json", cwd=tmp_path, paths=(site,))
    assert out.returncode == 0, out.stderr
    entry = next(s for s in json.loads(out.stdout)["submissions"] if s["name"] == "lawa")
    assert (entry["kind"], entry["format"], entry["description"]) == ("optimizer", "algoperf", "AlgoPerf submission (self-tuning): LAWA.")
    table = bench("list", cwd=tmp_path, paths=(site,))
    assert "optimizer (AlgoPerf)" in next(line for line in table.stdout.splitlines() if "lawa" in line)


def test_the_run_point_is_first_feasible_or_midpoint():
    space = {
        "learning_rate": {"min": 1e-4, "max": 1e-2, "scaling": "log"},
        "one_minus_beta1": {"min": 0.1, "max": 0.3, "scaling": "linear"},
        "label_smoothing": {"feasible_points": [0.1, 0.2]},
    }
    assert algoperf.default_point(space) == {
        "learning_rate": pytest.approx(1e-3), "one_minus_beta1": pytest.approx(0.2), "label_smoothing": 0.1}
    assert algoperf.default_point([{"learning_rate": 0.5}, {"learning_rate": 0.1}]) == {"learning_rate": 0.5}
    plugin = Registry().submission(str(NADAMW))  # AlgoPerf's layout: the space beside pytorch/
    assert plugin.name == "algoperf_nadamw"
    assert plugin.meta["SEARCH_SPACE"] == json.loads((HERE / "nadamw" / "tuning_search_space.json").read_text())


def test_hyperparameters_reach_the_module_as_a_namedtuple_and_overrides_work(tmp_path):
    record, rows = run(tmp_path, MOMENTUM)
    info = record["submission"]["algoperf"]
    assert info["hyperparameters"] == {"learning_rate": pytest.approx(0.1), "one_minus_beta1": pytest.approx(0.1),
                                       "warmup_factor": 0.05, "weight_decay": 0.0005}
    assert info["spec"].startswith("optbench's algoperf stand-in")
    assert info["batch_size"] == 8 and "AlgoPerf has no 'fake' workload" in info["batch_size_note"]
    assert record["status"] == "budget_exhausted" and rows[-1]["lr"] == pytest.approx(0.1)  # warmup of 5 steps done
    record, rows = run(tmp_path, MOMENTUM, "optimizer.learning_rate=0.05")
    assert record["submission"]["algoperf"]["hyperparameters"]["learning_rate"] == 0.05
    assert rows[-1]["lr"] == pytest.approx(0.05)
    hp = algoperf_runtime().hyperparameters_tuple(api.Hyperparameters({"b": 1, "a": 2}))
    assert type(hp).__name__ == "Hyperparameters" and hp._fields == ("b", "a") and hp.a == 2


def test_bench_tune_samples_the_modules_search_space(tmp_path):
    from harness.sweeps.tuning import plan_sweep

    sweep = plan_sweep("fake", str(MOMENTUM), size="tiny", studies=1, trials=4, output=tmp_path, registry=registry())
    assert sweep.search_space_source == "submission"
    rates = [t.plan.hp_optimizer["learning_rate"] for t in sweep.trials]
    assert all(0.01 <= r <= 1.0 for r in rates) and len(set(rates)) == 4
    assert {t.plan.hp_optimizer["warmup_factor"] for t in sweep.trials} <= {0.05, 0.1}


def test_a_self_tuning_module_gets_no_hyperparameters(tmp_path):
    path = write(tmp_path / "selftuned.py", FUNCTIONS.replace(
        "    return {}\n",
        "    assert hyperparameters is None\n"
        "    import torch\n"
        "    return {'optimizer': torch.optim.SGD(model_params.parameters(), lr=0.01)}\n", 1))
    plugin = Registry().submission(str(path))
    assert plugin.meta["DEFAULTS"] == {} and plugin.meta["SEARCH_SPACE"] == {}
    record, _ = run(tmp_path, path)
    assert record["status"] == "budget_exhausted", record["reason"]
    assert record["submission"]["algoperf"]["hyperparameters"] is None


def algoperf_runtime():
    from harness.plugins import algoperf_runtime

    return algoperf_runtime


def test_rng_is_algoperfs_numpy_form_and_follows_the_seed():
    rt = algoperf_runtime()
    opt_init, loop = rt.run_rng(0)
    assert opt_init.dtype == np.int32 and opt_init.shape == (2,)
    assert np.array_equal(rt.run_rng(0)[1], loop) and not np.array_equal(rt.run_rng(1)[1], loop)
    steps, again = rt.StepRngs(loop), rt.StepRngs(loop)
    first, second = steps.next(), steps.next()
    assert first.dtype == np.int32 and first.shape == (4, 2) and not np.array_equal(first, second)
    assert np.array_equal(again.next(), first) and np.array_equal(again.next(), second)


def test_batches_are_algoperf_dicts_and_back():
    from typing import NamedTuple

    rt = algoperf_runtime()

    class Graphs(NamedTuple):  # like workloads/gnn's GraphBatch
        nodes: torch.Tensor
        y: torch.Tensor
        mask: torch.Tensor

    x, y, t = torch.zeros(4, 3), torch.ones(4), torch.arange(4)
    pair, triple, graphs = (x, y), (x, t, y), Graphs(x, y[:, None], torch.ones(4, 1, dtype=torch.bool))
    assert set(rt.as_batch(pair)) == {"inputs", "targets"} and rt.as_batch(pair)["targets"] is y
    assert rt.as_batch(triple)["inputs"] == (x, t)
    g = rt.as_batch(graphs)
    assert g["inputs"] is graphs and g["targets"] is graphs.y and g["weights"] is graphs.mask
    for native in (pair, triple, graphs):  # the queue's own dict, and a dict a submission rebuilt
        batch = rt.as_batch(native)
        assert rt.native_batch(batch) is native
        rebuilt = rt.native_batch(dict(batch))
        assert rebuilt is graphs if native is graphs else all(a is b for a, b in zip(rebuilt, native, strict=True))


def test_the_workload_objects_model_fn_and_loss_fn_are_algoperfs(algoperf_modules):
    import torch.nn.functional as F

    rt = algoperf_runtime()
    with rt.algoperf_importable():
        from algoperf import spec
    model = torch.nn.Linear(3, 5)
    task = SimpleNamespace(size=fakes.fake_info().sizes["tiny"], param_types=api.infer_param_types,
                           outputs=lambda m, batch: api.Outputs(m(batch[0]), batch[1]))
    workload = rt.Workload(task, model, 100, spec, "softmax")
    assert workload.loss_type is spec.LossType.SOFTMAX_CROSS_ENTROPY and workload.step_hint == 100
    assert workload.model_params_types == {"weight": spec.ParameterType.WEIGHT, "bias": spec.ParameterType.BIAS}
    assert workload.param_shapes["weight"] == spec.ShapeTuple((5, 3)) and workload.metrics_logger is None
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 3, 4, 0])
    logits, state = workload.model_fn(model, rt.as_batch((x, y)), None, spec.ForwardPassMode.TRAIN, None, True, 0.1)
    smoothed = workload.loss_fn(y, logits, label_smoothing=0.1)
    assert smoothed["summed"].item() == pytest.approx(F.cross_entropy(logits, y, label_smoothing=0.1, reduction="sum").item())
    assert smoothed["n_valid_examples"].item() == 6 and smoothed["per_example"].shape == (6,)
    mask = torch.tensor([1.0, 1, 1, 0, 0, 1])
    masked = workload.loss_fn(y, logits, mask)
    plain = F.cross_entropy(logits, y, reduction="none")
    assert masked["n_valid_examples"].item() == 4 and masked["summed"].item() == pytest.approx(plain[mask.bool()].sum().item())
    assert workload.loss_fn(y.reshape(2, 3), logits)["summed"].item() == pytest.approx(plain.sum().item())  # (B, T) labels
    eval_logits, _ = workload.model_fn(model, rt.as_batch((x, y)), None, spec.ForwardPassMode.EVAL, None, False)
    assert not eval_logits.requires_grad and not model.training
    with pytest.raises(ValueError, match="cannot be updated during evaluation"):
        workload.model_fn(model, rt.as_batch((x, y)), None, spec.ForwardPassMode.EVAL, None, True)


def test_workload_hyperparameters_in_the_space_reach_the_module_and_the_record(tmp_path):
    path = write(tmp_path / "withsmoothing.py", FUNCTIONS)
    (tmp_path / "tuning_search_space.json").write_text(json.dumps({
        "learning_rate": {"feasible_points": [0.01]}, "label_smoothing": {"feasible_points": [0.1, 0.2]},
        "grad_clip": {"feasible_points": [1.0]}}))
    record, _ = run(tmp_path, path, steps=5)
    info = record["submission"]["algoperf"]
    # Label smoothing and clipping are the module's own (it passes them to loss_fn and clips itself).
    assert info["hyperparameters"] == {"learning_rate": 0.01, "label_smoothing": 0.1, "grad_clip": 1.0}
    assert record["status"] == "budget_exhausted", record.get("reason")


def test_the_trials_dropout_builds_the_workloads_model_as_algoperfs_init_model_fn(tmp_path):
    path = write(tmp_path / "withdropout.py", FUNCTIONS)
    (tmp_path / "tuning_search_space.json").write_text(json.dumps({
        "learning_rate": {"feasible_points": [0.01]}, "dropout_rate": {"feasible_points": [0.1]},
        "label_smoothing": {"feasible_points": [0.1]}}))
    plan = plan_run("gpt", str(path), size="tiny", output=tmp_path / "results")
    assert dict(plan.hp_workload) == {"dropout_rate": 0.1}  # the module keeps label smoothing
    assert plan.hp_optimizer["dropout_rate"] == 0.1  # and sees the dropout in its namedtuple, as in AlgoPerf
    fake = plan_run("fake", str(path), size="tiny", output=tmp_path / "results", registry=registry())
    assert not fake.hp_workload and list(fake.config["not_applied"]) == ["dropout_rate"]  # a model without dropout


# --------------------------------------------------------------------------- #
# Running                                                                      #
# --------------------------------------------------------------------------- #


def test_prepare_for_eval_weights_are_evaluated_and_training_goes_on_from_its_own(tmp_path):
    swapped, swap_rows = run(tmp_path, SWAP, "optimizer.learning_rate=0.01")
    plain, plain_rows = run(tmp_path, MOMENTUM, "optimizer.learning_rate=0.01")
    assert swapped["status"] == plain["status"] == "budget_exhausted", swapped["reason"]
    # Training is the same run: update_params swaps the trained weights back.
    assert [r["train/loss"] for r in swap_rows] == [r["train/loss"] for r in plain_rows]
    # Every evaluation saw the initial weights that prepare_for_eval put in ...
    assert swap_rows[0]["validation/mse"] == swap_rows[1]["validation/mse"]
    # ... where the same training, evaluated as it is, improves.
    assert plain_rows[1]["validation/mse"] < plain_rows[0]["validation/mse"] < swap_rows[0]["validation/mse"]


def test_module_errors_are_one_line_naming_the_function(tmp_path):
    missing = write(tmp_path / "nodata.py", FUNCTIONS.split("def data_selection")[0])
    with pytest.raises(PluginError, match=r"nodata.py\): an AlgoPerf submission defines .*; missing data_selection$"):
        Registry().submission(str(missing))
    wrong = write(tmp_path / "wrongsig.py", FUNCTIONS.replace(
        "def get_batch_size(workload_name):", "def get_batch_size():"))
    with pytest.raises(PluginError, match=r"wrongsig.py\): get_batch_size has the wrong signature for AlgoPerf's call"):
        run(tmp_path, wrong)
    boom = write(tmp_path / "boom.py", FUNCTIONS.replace(
        "    return optimizer_state, current_param_container, model_state",
        "    if global_step == 2:\n        raise ValueError('boom')\n"
        "    return optimizer_state, current_param_container, model_state"))
    record, _ = run(tmp_path, boom)
    assert record["status"] == "error"
    assert record["reason"].startswith(f"PluginError: plugin 'boom' ({boom}): update_params raised at step 3 (global_step 2): "
                                       "ValueError: boom (at boom.py:")
    assert record["steps"] == 2 and "raise ValueError('boom')" in record["error"]["plugin_frames"][-1]
    greedy = write(tmp_path / "greedy.py", FUNCTIONS.replace("    return next(input_queue)", "    next(input_queue)\n    return next(input_queue)"))
    record, _ = run(tmp_path, greedy)
    assert "data_selection raised at step 1 (global_step 0): RuntimeError: data_selection took a second batch" in record["reason"]
    done = write(tmp_path / "done.py", "from algoperf import spec\n" + FUNCTIONS.replace(
        "    return optimizer_state, current_param_container, model_state", "    raise spec.TrainingCompleteError()"))
    record, _ = run(tmp_path, done)
    assert "update_params raised at step 1 (global_step 0): TrainingCompleteError (optbench ends a run at" in record["reason"]
    (tmp_path / "tuning_search_space.json").write_text('{"learning_rate": {"min": 1}}')
    out = bench("run", "--submission", str(boom), "--workload", "cifar", cwd=tmp_path)
    assert "malformed tuning_search_space.json" in one_line_error(out) and out.returncode == 1


def test_an_installed_algoperf_is_used_never_shadowed(tmp_path, monkeypatch, algoperf_modules):
    rt = algoperf_runtime()
    site = tmp_path / "site"
    shutil.copytree(rt.SHIM / "algoperf", site / "algoperf")
    (site / "algoperf" / "__init__.py").write_text("__version__ = '9.9'\n")  # not the stand-in
    monkeypatch.syspath_prepend(str(site))
    sub = Registry().submission(str(MOMENTUM)).load()
    assert sub.raw.spec.__file__ == str(site / "algoperf" / "spec.py")
    assert rt._spec_origin(sub.raw.spec).startswith("algoperf 9.9")
    assert str(rt.SHIM) not in sys.path


def test_without_algoperf_the_stand_in_is_on_the_path_only_for_the_import(algoperf_modules):
    rt = algoperf_runtime()
    sub = Registry().submission(str(MOMENTUM)).load()
    assert sub.raw.spec.__file__ == str(rt.SHIM / "algoperf" / "spec.py")
    assert str(rt.SHIM) not in sys.path


@pytest.mark.slow
def test_algoperf_nadamw_equals_the_builtin_on_cifar(tmp_path):
    """Same seed, same hyperparameters: the same training, to float rounding
    (AlgoPerf's loss is summed / n, the built-in's a mean)."""
    rows = {}
    for submission in ("nadamw", str(NADAMW)):
        plan = plan_run("cifar", submission, size="tiny", output=tmp_path / submission.replace("/", "_"),
                        overrides=["budget.max_steps=24", "eval.every_steps=12", "budget.max_runtime_s=1000"])
        result = execute(plan)
        assert result.status == "budget_exhausted", result.record["reason"]
        rows[submission] = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    ours, theirs = rows["nadamw"], rows[str(NADAMW)]
    assert len(ours) == len(theirs) == 2
    for a, b in zip(ours, theirs):
        assert a["lr"] == pytest.approx(b["lr"], rel=1e-12)
        for key in ("train/loss", "validation/loss", "validation/accuracy", "test/loss", "test/accuracy"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key


@pytest.mark.slow
def test_under_nproc_2_the_module_all_reduces_as_in_algoperf(tmp_path):
    """``bench run --nproc 2``: torchrun's LOCAL_RANK makes the module's
    USE_PYTORCH_DDP true; its all-reduced loss over the DDP model trains as one
    process does, to float rounding."""
    import os
    import subprocess

    args = ["--submission", str(MOMENTUM), "--workload", "grokking", "--size", "tiny",
            "budget.max_steps=6", "eval.every_steps=3", "budget.max_runtime_s=200", "optimizer.learning_rate=0.01",
            "threads=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    bench_run = [sys.executable, "-m", "harness.cli", "run"]
    root = Path(__file__).parents[1]
    for launch, out in ((["--nproc", "2"], "ddp"), ([], "one")):
        done = subprocess.run([*bench_run, *launch, "--output", str(tmp_path / out), *args],
                              capture_output=True, text=True, cwd=root, env=env, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (d,), (s,) = list((tmp_path / "ddp").rglob("run.json")), list((tmp_path / "one").rglob("run.json"))
    assert json.loads(d.read_text())["distributed"]["world_size"] == 2
    rows = [[json.loads(line) for line in (p.parent / "metrics.jsonl").read_text().splitlines()] for p in (s, d)]
    for one, ddp in zip(*rows, strict=True):
        assert ddp["train/loss"] == pytest.approx(one["train/loss"], rel=1e-5)
        assert ddp["validation/loss"] == pytest.approx(one["validation/loss"], rel=1e-5)


def test_no_sync_transfer_or_write_per_step(tmp_path, monkeypatch):
    """The adapter keeps the timed loop's guarantee (tests/test_timed_loop_syncs.py):
    AlgoPerf's rng, queue, model_fn and loss_fn add nothing per step."""
    from tests.test_timed_loop_syncs import check_independent_of_steps, install

    def count(steps: int, every: int):
        reg = Registry(entry_points=False)
        reg.add_workload(fakes.fake_info(task="tests.test_algoperf_submissions:OutputsTask", target=1e9,
                                         every_steps=every, max_steps=steps))
        plan = plan_run("fake", str(SWAP), size="tiny", output=tmp_path / f"{steps}", registry=reg,
                        overrides=["optimizer.learning_rate=0.01"])
        with monkeypatch.context() as patch:
            probe = install(patch)
            record = execute(plan).record
        assert record["status"] == "budget_exhausted" and record["steps"] == steps, record["reason"]
        return probe

    check_independent_of_steps(count(10, 5), count(30, 15))


def test_on_gpu_sizes_the_modules_get_batch_size_is_the_runs_batch_size(tmp_path):
    """As in AlgoPerf: the submission chooses its batch size (full sizes); tiny sizes keep the workload's."""
    path = write(tmp_path / "chooser.py", FUNCTIONS.replace("    return 8\n", "    return 48\n"))
    full = plan_run("cifar", str(path), size="full", output=tmp_path / "r")
    assert full.size.batch_size == 48 and not any("batch_size" in d for d in full.deviations)
    assert plan_run("cifar", str(path), size="tiny", output=tmp_path / "r").size.batch_size == 32
    assert plan_run("cifar", str(path), size="full", output=tmp_path / "r", overrides=["batch_size=64"]).size.batch_size == 64
