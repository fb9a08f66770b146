"""Where a sweep's trials run: in this process, in local processes, or on SLURM.

Trials are independent jobs and the records directory is the only coordination:
a job looks at its trial's ``run.json`` before it starts, skips a finished trial
(same ``trial_id``, status reached / budget_exhausted / diverged - the rules of
:mod:`harness.sweeps.tuning`), and otherwise runs it with
``execute(plan, run_dir=..., extra=...)``. So a sweep can be resumed from any
machine that sees the directory, by rerunning the same ``bench tune`` command.

Executors are YAML files in ``configs/executor/`` (or a path), overridable on
the command line as ``executor.<key>=<value>``:

* ``local`` - one trial after another in this process (the default);
* ``submitit-local`` - submitit's ``LocalExecutor``: ``parallel`` processes on
  this machine, each running a fixed share of the trials (trial i goes to
  process i mod parallel), ``threads_per_job`` torch threads each;
* ``slurm`` - submitit's ``SlurmExecutor``: one job per trial in a SLURM job
  array (at most ``parallel`` running), with partition, account, qos, time,
  GPUs and CPUs from the config. ``nproc > 1`` starts that many tasks per job,
  one GPU each, which join one DDP run (:mod:`harness.run.distributed`).

Preemption: a job is a :class:`TrialJob`, whose ``checkpoint`` method submitit
calls when SLURM preempts the job or its time limit nears (SIGUSR2); it
requeues the trial as attempt n+1 unless its record is already finished. A
requeued trial **restarts cleanly** from step 0 (optbench does not resume
mid-run: a timed run resumed from a checkpoint would not time the same
work), and its record says so under ``execution``::

    "execution": {"executor": "slurm", "job_id": "4242_3", "attempt": 2,
                  "requeued": true, "restart": "clean",
                  "previous_attempt": {"status": "running", "last_eval_step": 300}}

The parent process waits for the jobs, reporting each trial as its record lands
(``executor.wait=false`` submits and returns; rerun the command later to
collect or resume). submitit pickles the job object to ship it; results
themselves are only ever the JSON records.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from harness.api import Status
from harness.common.config import load_named_yaml, named_configs
from harness.errors import UserInputError, did_you_mean

BACKENDS = ("inline", "local", "slurm")
# What a config file may set; a key not here is a typo.
KEYS = {
    "name", "backend", "description", "folder", "parallel", "wait", "poll_s", "threads_per_job",
    "timeout_min", "max_requeue", "nproc",
    # slurm
    "partition", "account", "qos", "time_min", "gpus_per_node", "cpus_per_task", "mem_gb", "constraint",
    "job_name", "setup", "additional", "signal_delay_s",
}


@dataclass
class ExecutorSpec:
    name: str
    backend: str  # inline | local | slurm
    params: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def get(self, key: str, default: Any = None) -> Any:
        value = self.params.get(key)
        return default if value is None else value


def available() -> list[str]:
    return named_configs("executor")


def _parse_value(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def load_executor(name_or_path: str | Path = "local", overrides: Sequence[str] = ()) -> ExecutorSpec:
    """An executor config by name or file, with ``executor.key=value`` overrides applied."""
    path, data = load_named_yaml("executor", name_or_path, "executor")
    params = dict(data)
    for raw in overrides:
        key, sep, value = raw.partition("=")
        key = key.strip().removeprefix("executor.")
        if not sep or not key:
            raise UserInputError(f"executor override {raw!r} is not executor.key=value")
        if key not in KEYS:
            raise UserInputError(f"unknown executor key {key!r} in {raw!r}; {did_you_mean(key, sorted(KEYS))}")
        params[key] = _parse_value(value)
    unknown = sorted(set(params) - KEYS)
    if unknown:
        raise UserInputError(f"executor {path}: unknown key(s) {', '.join(unknown)}")
    backend = str(params.get("backend", "inline"))
    if backend not in BACKENDS:
        raise UserInputError(f"executor {path}: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    for key in ("parallel", "nproc", "gpus_per_node", "cpus_per_task", "time_min", "max_requeue"):
        value = params.get(key)
        if value is not None and (not isinstance(value, int) or value < (0 if key == "max_requeue" else 1)):
            raise UserInputError(f"executor {path}: {key} must be a positive integer, got {value!r}")
    return ExecutorSpec(str(params.get("name", path.stem)), backend, params, str(path))


# --------------------------------------------------------------------------- #
# The job                                                                      #
# --------------------------------------------------------------------------- #


def _finished(run_dir: Path, trial_id: str) -> dict[str, Any] | None:
    from harness.sweeps.trials import existing_trial

    action, why, record = existing_trial(Path(run_dir), trial_id)
    if action == "conflict":  # another sweep finished here since planning: never overwrite it
        raise RuntimeError(f"{run_dir} {why}; not running over it")
    return record if action == "skip" else None


def _previous_attempt(run_dir: Path) -> dict[str, Any] | None:
    """What an interrupted earlier attempt left behind (its status, last eval)."""
    from harness.run.records import read_metrics

    try:
        rec = json.loads((Path(run_dir) / "run.json").read_text())
    except (OSError, ValueError):
        return None
    rows = read_metrics(run_dir)
    return {"status": rec.get("status"), "started_at": rec.get("started_at"),
            "last_eval_step": rows[-1]["step"] if rows else None}


class TrialJob:
    """One trial as a submitit job; requeued (as a clean restart) on preemption."""

    def __init__(self, trial_id: str, run_dir: Path, plan: Any, extra: dict[str, Any], executor: str,
                 attempt: int = 1, threads: int | None = None) -> None:
        self.trial_id, self.run_dir, self.plan, self.extra = trial_id, Path(run_dir), plan, extra
        self.executor, self.attempt, self.threads = executor, attempt, threads

    def __call__(self) -> dict[str, Any]:
        from harness.run import execute

        done = _finished(self.run_dir, self.trial_id)
        if done is not None:  # finished by an earlier job or attempt: never run twice
            return {"trial_id": self.trial_id, "status": done["status"], "ran": False}
        job_id, tasks = None, 1
        try:
            import submitit

            env = submitit.JobEnvironment()
            job_id, tasks = env.job_id, env.num_tasks
            if tasks > 1:  # one DDP run over the job's tasks
                submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        except RuntimeError:  # not inside a submitit job (called directly)
            pass
        if self.threads:
            self.plan.config["threads"] = self.threads
        execution = {"executor": self.executor, "job_id": job_id, "attempt": self.attempt,
                     "requeued": self.attempt > 1, "restart": "clean" if self.attempt > 1 else None,
                     "tasks": tasks}
        if self.attempt > 1:
            execution["previous_attempt"] = _previous_attempt(self.run_dir)
        result = execute(self.plan, run_dir=self.run_dir, extra={**self.extra, "execution": execution})
        return {"trial_id": self.trial_id, "status": result.status, "ran": True}

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit calls this on preemption / near the time limit: requeue the
        trial as the next attempt, unless it has finished meanwhile."""
        import submitit

        if _finished(self.run_dir, self.trial_id) is not None:
            return None
        again = TrialJob(self.trial_id, self.run_dir, self.plan, self.extra, self.executor, self.attempt + 1, self.threads)
        return submitit.helpers.DelayedSubmission(again)


class TrialShare:
    """Several trials, one after another, as one job (submitit-local's shares)."""

    def __init__(self, jobs: list[TrialJob]) -> None:
        self.jobs = jobs

    def __call__(self) -> list[dict[str, Any]]:
        return [job() for job in self.jobs]

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        left = [job.checkpoint() for job in self.jobs]
        again = [d.function for d in left if d is not None]
        return submitit.helpers.DelayedSubmission(TrialShare(again)) if again else None


# --------------------------------------------------------------------------- #
# submitit executors                                                           #
# --------------------------------------------------------------------------- #


def slurm_parameters(spec: ExecutorSpec) -> dict[str, Any]:
    """The executor config as submitit ``SlurmExecutor`` parameters (sbatch options)."""
    nproc = int(spec.get("nproc", 1))
    gpus = spec.get("gpus_per_node", nproc)
    if nproc > 1 and gpus != nproc:
        raise UserInputError(f"executor {spec.name!r}: nproc={nproc} runs one task per GPU, so gpus_per_node must be {nproc}, got {gpus}")
    params: dict[str, Any] = {
        "job_name": spec.get("job_name", "optbench"),
        "time": int(spec.get("time_min", 60)),
        "nodes": 1,
        "ntasks_per_node": nproc,
        "gpus_per_node": gpus,
        "cpus_per_task": spec.get("cpus_per_task"),
        "partition": spec.get("partition"),
        "account": spec.get("account"),
        "qos": spec.get("qos"),
        "constraint": spec.get("constraint"),
        # sbatch reads a bare number as MB: always say the unit
        "mem": f"{spec.get('mem_gb'):g}GB" if spec.get("mem_gb") else None,
        "signal_delay_s": int(spec.get("signal_delay_s", 120)),
        "array_parallelism": int(spec.get("parallel", 64)),
        "setup": list(spec.get("setup", [])),
        "additional_parameters": dict(spec.get("additional", {})),
    }
    return {k: v for k, v in params.items() if v not in (None, [], {})}


def preflight(spec: ExecutorSpec) -> None:
    """Refuse before anything is written when the executor cannot run here."""
    import shutil

    if spec.backend == "slurm" and not (shutil.which("srun") and shutil.which("sbatch")):
        raise UserInputError(f"executor {spec.name!r} is not available on this machine: no SLURM commands "
                             "(srun, sbatch) found; bench tune --dry-run --executor slurm shows the sbatch script")


def make_submitit_executor(spec: ExecutorSpec, folder: Path):
    """The configured submitit executor (nothing is submitted yet)."""
    import submitit

    max_requeue = int(spec.get("max_requeue", 3))
    if spec.backend == "local":
        ex = submitit.LocalExecutor(folder=str(folder), max_num_timeout=max_requeue)
        ex.update_parameters(timeout_min=float(spec.get("timeout_min", 24 * 60)), tasks_per_node=int(spec.get("nproc", 1)))
        return ex
    if spec.backend != "slurm":
        raise UserInputError(f"executor {spec.name!r} (backend {spec.backend}) is not a submitit executor")
    params = slurm_parameters(spec)
    preflight(spec)
    ex = submitit.SlurmExecutor(folder=str(folder), max_num_timeout=max_requeue)
    ex.update_parameters(**params)
    return ex


def sbatch_script(spec: ExecutorSpec, folder: Path, trials: int = 1) -> str:
    """The sbatch script submitit writes for a job array of ``trials`` trials,
    built from the same parameters as a real submission; needs no cluster."""
    import shlex
    import sys

    from submitit.slurm.slurm import _make_sbatch_string

    params = slurm_parameters(spec)
    folder = Path(folder).expanduser().absolute()  # as submitit's executor does
    command = " ".join([shlex.quote(sys.executable), "-u", "-m", "submitit.core._submit", shlex.quote(str(folder))])
    return _make_sbatch_string(command=command, folder=str(folder), map_count=trials, **params)


def _jobs_for(sweep, spec: ExecutorSpec, trials) -> list[TrialJob]:
    threads = spec.get("threads_per_job")
    if threads is None and spec.backend == "local":
        from harness.common.seeding import default_threads

        threads = max(1, default_threads() // int(spec.get("parallel", 1)))
    return [TrialJob(t.trial_id, t.run_dir, t.plan, t.extra, spec.name, threads=threads) for t in trials]


def _local_gpus(parallel: int, nproc: int) -> list[list[int]]:
    """Distinct GPUs for each of ``parallel`` local processes (none on a CPU machine)."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return []
    if parallel * nproc > count:
        raise UserInputError(f"submitit-local: {parallel} processes x {nproc} GPU(s) each need {parallel * nproc} GPUs, "
                             f"this machine has {count}; lower executor.parallel")
    return [list(range(i * nproc, (i + 1) * nproc)) for i in range(parallel)]


def run_trials(sweep, spec: ExecutorSpec, observer=None):
    """Submit the sweep's unfinished trials through submitit; wait and report
    each trial as its record lands. Returns a :class:`harness.sweeps.trials.SweepResult`."""
    from harness.sweeps.trials import SweepResult

    skipped = [t for t in sweep.trials if t.action == "skip"]
    for t in skipped:
        if observer:
            observer.on_trial_end(t, t.record, ran=False)
    todo = sweep.to_run
    if not todo:
        return SweepResult(sweep, [], skipped)
    folder = Path(spec.get("folder") or sweep.root / "submitit")
    ex = make_submitit_executor(spec, folder)
    jobs = _jobs_for(sweep, spec, todo)
    submitted_at = time.time() - 1.0  # mtime resolution
    submitted = _submit(spec, ex, jobs)
    for job in submitted:
        print(f"submitted job {job.job_id} ({spec.name}); logs in {folder}", flush=True)
    if not spec.get("wait", True):
        return SweepResult(sweep, [], skipped, submitted=[j.job_id for j in submitted])

    pending = {t.trial_id: t for t in todo}
    ran = []
    poll = float(spec.get("poll_s", 2.0))
    try:
        while pending and not all(j.done() for j in submitted):
            _collect(pending, ran, submitted_at, observer, final=False)
            time.sleep(poll)
    except KeyboardInterrupt:
        # Local processes end with the sweep (their trials record "interrupted");
        # cluster jobs keep running: rerunning the command collects them.
        if spec.backend == "local":
            for job in submitted:
                job.cancel(check=False)
        _collect(pending, ran, submitted_at, observer, final=True)
        return SweepResult(sweep, ran, skipped, interrupted=True)
    _collect(pending, ran, submitted_at, observer, final=True)
    failures = _job_failures(submitted)
    for tid, trial in pending.items():  # the job died without a finished record
        trial.record = {"status": Status.ERROR.value, "reason": "the job ended without a finished record; " + "; ".join(failures),
                        **{k: v for k, v in trial.extra.items() if k in ("tuning", "study")}}
        ran.append(trial)
        if observer:
            observer.on_trial_end(trial, trial.record, ran=True)
    return SweepResult(sweep, ran, skipped)


def _submit(spec: ExecutorSpec, ex, jobs: list) -> list:
    """Submit the jobs: locally as ``parallel`` processes sharing them (each with
    its own GPUs), else all at once as one batch (a SLURM job array)."""
    if spec.backend != "local":
        with ex.batch():
            return [ex.submit(job) for job in jobs]
    n = min(int(spec.get("parallel", 1)), len(jobs))
    gpus = _local_gpus(n, int(spec.get("nproc", 1)))
    submitted = []
    for i in range(n):
        if gpus:  # each process its own GPUs (submitit hides the others from it)
            ex.update_parameters(visible_gpus=gpus[i], gpus_per_node=len(gpus[i]))
        submitted.append(ex.submit(TrialShare(jobs[i::n])))
    return submitted


def _collect(pending: dict, ran: list, submitted_at: float, observer, *, final: bool) -> None:
    """Move every pending trial whose record has landed to ``ran`` and report
    it: a result (a measurement or an error) while the jobs run, and at the
    end (``final``) any record of this submission that is not still running."""
    from harness.run.records import RUN_FILE
    from harness.sweeps.trials import record_id

    for tid, trial in list(pending.items()):
        path = trial.run_dir / RUN_FILE
        try:
            if path.stat().st_mtime < submitted_at:  # an earlier attempt's record
                continue
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record_id(rec) != tid:
            continue
        status = Status.of(rec.get("status"))
        if (status is not None and status.is_result) or (final and status is not Status.RUNNING):
            trial.record = rec
            ran.append(pending.pop(tid))
            if observer:
                observer.on_trial_end(trial, rec, ran=True)


def _job_failures(submitted: list) -> list[str]:
    """The last line of each failed job's exception, naming the job."""
    failures = []
    for job in submitted:
        exc = job.exception()
        if exc is not None:
            failures.append(f"job {job.job_id}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}")
    return failures
