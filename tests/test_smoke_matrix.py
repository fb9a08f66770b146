"""Every built-in submission runs on every tiny workload it fits.

Two dozen steps per optimizer and a few per norm, through the real runner
(plan_run + execute), the way `bench run` runs them: the model is
built with the norm, the optimizer and schedule are made, ``update`` /
``prepare_for_eval`` / ``prepare_for_train`` hooks run, and the training loss
stays finite. Data set-up is shared per workload (a cached Task) and
evaluation is replaced by a cheap finite-loss probe, so the whole matrix costs
seconds per submission rather than a full run each.

The matrix is read from the registry, so a new workload or submission is
covered the moment it exists.
"""

from __future__ import annotations

import json
import math

import pytest

from harness import run as runner
from harness.run import build
from harness.plugins.registry import Registry

REGISTRY = Registry(entry_points=False)
WORKLOADS = sorted(name for name, e in REGISTRY.workloads.items() if "tiny" in e.info.sizes)
SUBMISSIONS = REGISTRY.submissions
OPTIMIZERS = sorted(n for n, p in SUBMISSIONS.items() if p.kind == "optimizer")
NORMS = sorted(n for n, p in SUBMISSIONS.items() if p.kind == "norm")

# Steps per run. Optimizers get two dozen on every workload: past the first
# preconditioner computations (Shampoo's start at step 20, SOAP's refresh every
# 10), so a state that goes non-finite after a while shows up here. Norms get a
# few: their layer either builds and runs or it does not. The eval hooks run
# twice either way.
OPTIMIZER_STEPS = 24
NORM_STEPS = {"cifar": 6}
DEFAULT_NORM_STEPS = 4
# TNGD's emulated natural-gradient solve costs ~30 AdamW steps per step: a few
# steps show it runs (its equations are tested in test_optimizers_handwritten).
SUBMISSION_STEPS = {"tngd": 4}


def _fits(norm: str, workload: str) -> bool:
    sites = set(SUBMISSIONS[norm].meta.get("SITES", ()))
    return set(REGISTRY.workloads[workload].info.norm_sites) <= sites


class _ProbeTask:
    """The real task, but evaluation is just the loss on one fixed batch.

    Everything else (data, model, batches, loss) is the workload's own.
    """

    def __init__(self, task):
        self._task = task
        self._probe_batch = task.next_batch(0)

    def __getattr__(self, name):
        return getattr(self._task, name)

    def evaluate(self, model):
        return {"validation/probe_loss": float(self._task.loss(model, self._probe_batch))}


_TASKS: dict[tuple[str, str], object] = {}


@pytest.fixture
def cached_tasks(monkeypatch):
    real_import = build.import_task

    def import_task(spec):
        cls = real_import(spec)

        def make(size, device, data_dir, seed):
            key = (spec, size.name)
            if key not in _TASKS:
                _TASKS[key] = _ProbeTask(cls(size, device, data_dir, seed))
            return _TASKS[key]

        return make

    monkeypatch.setattr(build, "import_task", import_task)


def _run(tmp_path, workload, submission, norm=None):
    if submission in SUBMISSION_STEPS:
        steps = SUBMISSION_STEPS[submission]
    elif SUBMISSIONS[submission].kind == "optimizer":
        steps = OPTIMIZER_STEPS
    else:
        steps = NORM_STEPS.get(workload, DEFAULT_NORM_STEPS)
    plan = runner.plan_run(
        workload,
        submission,
        size="tiny",
        norm=norm,
        output=tmp_path,
        overrides=[f"budget.max_steps={steps}", f"eval.every_steps={steps // 2}", "threads=1"],
        registry=REGISTRY,
    )
    result = runner.execute(plan)
    record = result.record
    assert record["status"] == "budget_exhausted", f"{record['status']}: {record['reason']}"
    assert record["steps"] == steps
    assert len(record["data_sha256"] or "") == 64, "the task names the data it loaded (Task.data_sha256)"
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert math.isfinite(row["train/loss"]), row
        assert math.isfinite(row["validation/probe_loss"]), row
    return rows


@pytest.mark.parametrize("workload", WORKLOADS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_runs_on_every_tiny_workload(tmp_path, cached_tasks, optimizer, workload):
    _run(tmp_path, workload, optimizer)


@pytest.mark.parametrize(
    "norm,workload", [(n, w) for n in NORMS for w in WORKLOADS if _fits(n, w)]
)
def test_every_norm_runs_on_every_tiny_workload_it_fits(tmp_path, cached_tasks, norm, workload):
    _run(tmp_path, workload, norm)


def test_every_norm_fits_some_workload():
    """A norm that fits no workload would silently drop out of the matrix above."""
    orphans = [n for n in NORMS if not any(_fits(n, w) for w in WORKLOADS)]
    assert not orphans, f"norms that fit no tiny workload: {orphans}"
