"""Executors for sweeps: configs and overrides, submitit's local executor running
a real 4-trial sweep in 2 parallel jobs, preemption (requeue and clean restart),
and the SLURM path as far as a machine without SLURM allows: the parameters
submitit accepts and the sbatch script it would submit. No job is submitted to
a SLURM cluster here."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from harness.errors import UserInputError
from harness.sweeps.executors import ExecutorSpec, TrialJob, load_executor, make_submitit_executor, sbatch_script
from harness.run.records import read_metrics, read_run
from harness.plugins.registry import Registry
from harness.common.seeding import default_threads
from harness.sweeps.tuning import plan_sweep, run_sweep
from tests import fakes

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _importable(monkeypatch):
    # job processes import tests.fakes (the fake workload's task) by name
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(ROOT)


def _sweep(tmp_path, trials=4, **info):
    registry = Registry(entry_points=False)
    registry.add_workload(fakes.fake_info(**{"target": 5.0, "every_steps": 5, **info}))
    return plan_sweep("fake", "tests.fakes:PLAIN_SGD", size="tiny", studies=1, trials=trials, output=tmp_path,
                      registry=registry)


def test_configs_load_and_overrides_are_checked():
    assert load_executor("local").backend == "inline"
    spec = load_executor("submitit-local", ["executor.parallel=3", "executor.wait=false"])
    assert spec.backend == "local" and spec.get("parallel") == 3 and spec.get("wait") is False
    slurm = load_executor("slurm", ["executor.partition=gpu", "executor.time_min=30"])
    assert slurm.get("partition") == "gpu" and slurm.get("time_min") == 30 and slurm.get("gpus_per_node") == 1
    with pytest.raises(UserInputError, match="did you mean 'partition'"):
        load_executor("slurm", ["executor.partitoin=gpu"])
    with pytest.raises(UserInputError, match="did you mean"):
        load_executor("slrum")
    with pytest.raises(UserInputError, match="positive integer"):
        load_executor("slurm", ["executor.gpus_per_node=0"])


def test_slurm_sbatch_script_from_config_and_overrides(tmp_path):
    spec = load_executor("slurm", ["executor.partition=gpu", "executor.account=proj42", "executor.time_min=90",
                                   "executor.nproc=4", "executor.gpus_per_node=4", "executor.mem_gb=64",
                                   "executor.parallel=5", 'executor.setup=["module load cuda/12.4"]'])
    script = sbatch_script(spec, tmp_path / "submitit", trials=15)
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=proj42", "#SBATCH --time=90",
                 "#SBATCH --gpus-per-node=4", "#SBATCH --ntasks-per-node=4", "#SBATCH --cpus-per-task=8",
                 "#SBATCH --mem=64GB", "#SBATCH --array=0-14%5", "#SBATCH --signal=USR2@120", "module load cuda/12.4"):
        assert line in script.splitlines(), line
    assert "srun" in script and "submitit.core._submit" in script
    with pytest.raises(UserInputError, match="gpus_per_node must be 4"):
        sbatch_script(load_executor("slurm", ["executor.nproc=4"]), tmp_path)


def test_slurm_executor_takes_the_parameters(tmp_path, monkeypatch):
    """submitit's own SlurmExecutor validates our parameters and writes the same
    script. It refuses to start without srun; pretend srun exists only for its
    constructor (nothing is submitted)."""
    import submitit

    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))
    monkeypatch.setattr("harness.sweeps.executors.preflight", lambda spec: None)
    spec = load_executor("slurm", ["executor.partition=gpu", "executor.account=proj42", "executor.mem_gb=32"])
    ex = make_submitit_executor(spec, tmp_path)
    text = ex._make_submission_file_text("CMD", "uid")
    assert "#SBATCH --partition=gpu" in text and "#SBATCH --account=proj42" in text and "#SBATCH --mem=32GB" in text
    assert ex.max_num_timeout == 3 and ex.parameters["time"] == 120


def test_slurm_without_a_cluster_says_so(tmp_path):
    import shutil

    if shutil.which("srun"):
        pytest.skip("this machine has srun")
    with pytest.raises(UserInputError, match="not available on this machine.*srun"):
        make_submitit_executor(load_executor("slurm"), tmp_path)


def test_submitit_local_runs_a_4_trial_sweep_in_2_jobs(tmp_path):
    sweep = _sweep(tmp_path)
    spec = load_executor("submitit-local", ["executor.parallel=2", "executor.poll_s=0.2"])
    result = run_sweep(sweep, executor=spec)
    assert len(result.ran) == 4 and not result.skipped
    records = [read_run(t.run_dir) for t in sweep.trials]
    assert [r["status"] for r in records] == ["reached"] * 4
    assert sorted(r["tuning"]["trial"] for r in records) == [0, 1, 2, 3]
    jobs = {r["execution"]["job_id"] for r in records}
    assert len(jobs) == 2  # two parallel processes, two trials each
    assert all(r["execution"]["executor"] == "submitit-local" and r["execution"]["attempt"] == 1 for r in records)
    assert all(r["threads"] == max(1, default_threads() // 2) for r in records)
    # the records directory is the only coordination: a rerun skips everything
    again = _sweep(tmp_path)
    assert [t.action for t in again.trials] == ["skip"] * 4
    assert len(run_sweep(again, executor=spec).skipped) == 4


@pytest.mark.slow
def test_preempted_trial_is_requeued_and_restarts_cleanly(tmp_path):
    """Two process starts (the attempt and its requeue): ~10 s on a quiet machine."""
    # ~0.02 s per step, 120 steps: long enough to be preempted mid-run
    sweep = _sweep(tmp_path, trials=1, target=1e9, every_steps=5, max_steps=120)
    trial = sweep.trials[0]
    ex = make_submitit_executor(ExecutorSpec("submitit-local", "local", {"timeout_min": 5}), tmp_path / "submitit")
    job = ex.submit(TrialJob(trial.trial_id, trial.run_dir, trial.plan, trial.extra, "submitit-local"))
    deadline = time.time() + 120
    while not read_metrics(trial.run_dir) and time.time() < deadline:  # the first attempt is training
        time.sleep(0.1)
    first = json.loads((trial.run_dir / "run.json").read_text())
    assert first["status"] == "running" and first["execution"]["attempt"] == 1
    # What SLURM does on preemption: SIGUSR2 to the job's task -> submitit calls
    # TrialJob.checkpoint() -> requeue. (submitit's local controller passes only
    # its own timeouts on, so signal its task process directly.)
    ctrl = job._process.pid
    tasks = Path(f"/proc/{ctrl}/task/{ctrl}/children").read_text().split()
    assert len(tasks) == 1
    os.kill(int(tasks[0]), signal.SIGUSR2)
    out = job.result()
    assert out["status"] == "budget_exhausted" and out["ran"] is True
    rec = read_run(trial.run_dir)
    assert rec["status"] == "budget_exhausted" and rec["steps"] == 120
    ex_ = rec["execution"]
    assert ex_["attempt"] == 2 and ex_["requeued"] is True and ex_["restart"] == "clean"
    assert ex_["previous_attempt"]["status"] == "running" and ex_["previous_attempt"]["last_eval_step"] >= 5
    assert [r["step"] for r in read_metrics(trial.run_dir)] == list(range(5, 121, 5))  # one clean stream
    # a finished trial is not requeued, nor run again
    assert TrialJob(trial.trial_id, trial.run_dir, trial.plan, trial.extra, "x").checkpoint() is None
    assert TrialJob(trial.trial_id, trial.run_dir, trial.plan, trial.extra, "x")()["ran"] is False
