"""Run records: one directory per run, ``run.json`` + ``metrics.jsonl``.

``run.json`` is replaced atomically (temp file, fsync, rename), so a reader or
a crash never sees half a record. ``metrics.jsonl`` is append-only, one JSON
object per evaluation, flushed as it is written. Records are data only: no
pickle anywhere.

run.json schema (version 1)
---------------------------
schema_version     1
run_id             unique id of this run (directory name)
experiment         grouping name (``--experiment``; default "runs")
workload, size     e.g. "cifar", "tiny"
submission         what the user asked for: {name, kind, origin, source, target, sha256, distribution, version};
                   an AlgoPerf module adds format "algoperf" and its setup's account, algoperf {spec, workload,
                   batch_size, get_batch_size, batch_size_note, hyperparameters, dropout_note} (docs/algoperf.md)
optimizer, norm    the plugins actually used (same fields)
label              results/leaderboard name of the pairing: "lion", "groupnorm", "lion+groupnorm"
variant            only for a workload variant's run: {name, settings}, e.g. {"name": "qk_norm",
                   "settings": {"model.qk_norm": true}} (api.WorkloadInfo.variants; its runs are
                   scored in a column of their own, docs/variants.md)
hyperparameters    {"optimizer": {...}, "norm": {...}}; workload ones given (label_smoothing, grad_clip, ...) among the optimizer's
seed, seeds        the run seed and the derived per-purpose seeds
status             reached | budget_exhausted | diverged | interrupted | error | running
reason             one line saying why the run stopped; harness-detected errors say it plainly:
                   "evaluation changed buffer <name>" (or "parameter <name>": evaluation must not
                   change the model, harness/run/evalguard.py), "step did not return within N s (...)"
target             {metric, value, direction, test_value}; null for a synthetic run (no target)
synthetic          true: random inputs of the real shapes, no dataset (config data.synthetic, bench run
                   --synthetic-data): a measurement of step time, memory and MFU that never reaches a
                   target (it runs to its budget), is unofficial and is left off every board
batch_size         the batch of every step: the size's, or the config's batch_size (a deviation)
time_to_target_s   timed seconds at the first eval meeting the validation target (null when missed);
                   as in AlgoPerf the validation target alone decides ``reached``
steps_to_target    training steps at that eval (null when missed)
test_target_met    at that eval, whether test/<metric> met the test target: true | false; null when
                   the run missed or the size sets no test target (metrics.jsonl rows carry it
                   at every eval where a test target is set)
test_value_at_target  test/<metric> at that eval (null when missed or not reported)
timed_s            timed training seconds (steps, compilation, prepare_for_eval)
eval_s             untimed evaluation seconds
setup_s            untimed set-up seconds (data, model, optimizer)
wall_s             wall-clock seconds of the whole run
steps, evals       training steps taken, evaluations made
budget             {max_runtime_s, max_steps, eval_every_steps, eval_every_s, step_hint, basis, multiplier};
                   basis "reference_work" (tiny sizes: max_runtime_s is this machine's seconds for
                   the size's reference work, harness/run/speed.py) adds reference_steps, budget_steps,
                   budget_fraction, reference_max_runtime_s, reference_hardware_id,
                   reference_s_per_step, speed_factor (this machine's s/step over the reference's)
                   and speed {s_per_step, chunk_s_per_step, method, measured_at, cached, key, ...};
                   basis "fixed": max_runtime_s is the budget on any machine
watchdog_s         the hard limit in seconds on one training segment (eval boundary to eval boundary)
                   and on one evaluation: config watchdog.limit_s, else watchdog.factor x the timed
                   budget; null: none. Past it the run ends with status error, reason
                   "step did not return within N s (...)" or "evaluation did not return ..."
batch_size         the global training batch: the size's, or config batch_size (a deviation)
official           false when an override changed the size's budget, cadence, target or batch, or the
                   run's hardware class is not the pinned one
deviations         what made it unofficial, e.g. ["max_steps=200", "target.validation=0.5",
                   "hardware hw-032e52c8e30e is not the pinned hw-a5285d9436b7"]
pinned_hardware_id the hardware class the config pinned (config key hardware_id), or null
timing             was the machine quiet while the clock ran (harness/run/timing.py): {segments,
                   best_steps_per_s, worst_steps_per_s, max_others_cpu, max_steal, min_cpu_share,
                   contended (null, or the reason, also in deviations: the run is then unofficial),
                   per_segment [{first_step, last_step, steps, seconds, steps_per_s, cpu_share,
                   others_cpu, steal}]}, read at eval boundaries only
compute            model FLOPs and utilisation (harness/run/flops.py, docs/flops.md): {flops_per_step
                   (the model's forward+backward on one training batch, counted once per size, norm and
                   code with torch.utils.flop_counter, untimed), achieved_flops_per_s (steps x
                   flops_per_step / timed_s, set at the end), peak_flops_per_s (the devices' peak dense
                   FLOP/s for the step's precisions, null where the table has none, e.g. CPUs), mfu
                   (achieved / peak, null without a peak), dtype (of most of the counted FLOPs),
                   flops_by_precision, device_name, devices, peak (what the peak is of, e.g. "H100 SXM
                   bf16"), counted_with ("torch.utils.flop_counter"), scope, count_s, cached, key, error
                   (why flops_per_step is null)}. AlgoPerf-style model FLOPs: a submission's extra passes
                   through the model (SMB, TNGD, SAM-like updates) and its optimizer arithmetic are not
                   in flops_per_step, so the same model has the same count under every submission
final_metrics      metrics of the last evaluation
diagnostics        diagnostics=true only (harness/run/diagnostics.py, docs/diagnostics.md): {hessian,
                   hessian_iterations, last (the last metrics line's diagnostics/* figures), errors
                   ({figure group: first error}, for figures left out)}
error              {type, message, traceback} when status is error (type "WatchdogExpired": the
                   traceback shows where the run's thread was stopped)
fingerprint        hardware/software fingerprint, with hardware_id
data_sha256        the task's digest of the exact data it loaded (Task.data_sha256), or null
config             the fully composed configuration
started_at, finished_at   ISO-8601 UTC
distributed        {world_size, backend, sync_batchnorm, ...} (harness/run/distributed.py)
tracking           wandb run id, mode and directory, when --wandb is on (harness/run/tracking.py)
tuning             sweep trials only: {ruleset, study, trial, trial_id, sweep_id, point, ...}
execution          trials run by an executor: {executor, job_id, attempt, requeued, restart, ...}
calibration        bench calibrate runs only: {identity, phase, index}
digest             "sha256:<hex>" of the canonical JSON of everything above; the scorer
                   skips a record whose digest does not match (edited after the fact), and
                   one whose time and steps to target are not those of the first line of
                   its metrics.jsonl meeting its validation target (edited and resealed;
                   harness/score/scoring.py, _log_problem)
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.common.files import write_text_atomic

SCHEMA_VERSION = 1
RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"

_SAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def safe_name(name: str) -> str:
    """A single path component: no separators, no '..', never empty."""
    cleaned = _SAFE.sub("_", str(name)).strip("._") or "unnamed"
    return cleaned[:120]


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def _clean(obj: Any) -> Any:
    """JSON has no NaN/inf: write them as strings so the file stays standard."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    return json.dumps(_clean(obj), default=_json_default, allow_nan=False, **kwargs)


def write_json_atomic(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON, replacing ``path`` atomically and durably (harness/common/files.py)."""
    write_text_atomic(path, dumps(obj, indent=2, sort_keys=False) + "\n")


DIGEST_KEY = "digest"


def record_digest(record: dict[str, Any]) -> str:
    """sha256 of a record's canonical JSON (sorted keys, without the digest).

    The runner seals every ``run.json`` it writes; the scorer recomputes the
    digest, so a record edited after the fact is caught instead of counted.
    """
    body = {k: v for k, v in record.items() if k != DIGEST_KEY}
    return "sha256:" + hashlib.sha256(dumps(body, sort_keys=True).encode()).hexdigest()


def seal(record: dict[str, Any]) -> dict[str, Any]:
    """The record with its digest (a copy; the caller's dict is unchanged)."""
    return {**record, DIGEST_KEY: record_digest(record)}


def digest_ok(record: dict[str, Any]) -> bool | None:
    """True if the digest matches, False if it does not, None if there is none."""
    if DIGEST_KEY not in record:
        return None
    return record[DIGEST_KEY] == record_digest(record)


class MetricsLog:
    """Append-only JSONL; each line is flushed when written (at eval time only)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file = open(self.path, "a", buffering=1)

    def append(self, row: dict[str, Any]) -> None:
        self._file.write(dumps(row) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def make_run_dir(root: Path, *parts: str, run_name: str) -> Path:
    """Create ``root/<parts...>/<run_name>`` (suffix -2, -3... if it exists) and
    check it stays inside ``root``."""
    root = Path(root).resolve()
    base = root.joinpath(*[safe_name(p) for p in parts])
    name = safe_name(run_name)
    for i in range(1, 10_000):
        candidate = base / (name if i == 1 else f"{name}-{i}")
        try:
            candidate.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            continue
        if root not in candidate.resolve().parents:
            raise ValueError(f"run directory {candidate} escapes the results root {root}")
        return candidate
    raise RuntimeError(f"could not create a run directory under {base}")


def new_record(plan: Any, *, run_dir: Path, seeds: dict[str, int], threads: int, device: Any,
               fingerprint: dict[str, Any], data_sha256: str | None, budget: dict[str, Any],
               deviations: list[str], distributed: dict[str, Any], started_at: str,
               compute: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run's record as it starts (status ``running``), in the schema above.

    ``plan`` is the run's ``harness.run.plan.RunPlan``; the rest is what set-up
    decided on this machine. The runner fills in the outcome fields as the run
    goes, and seals and writes the record at its start and its end.
    """
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_dir.name,
        "experiment": plan.config["experiment"],
        "workload": plan.workload.info.name,
        "size": plan.size.name,
        "submission": plan.asked.provenance(),
        "optimizer": plan.optimizer.provenance(),
        "norm": plan.norm.provenance(),
        "label": plan.label,
        **({"variant": {"name": plan.variant, "settings": dict(plan.variant_settings)}} if plan.variant else {}),
        "hyperparameters": {"optimizer": dict(plan.hp_optimizer), "norm": dict(plan.hp_norm)},
        "seed": plan.seed,
        "batch_size": plan.size.batch_size,
        "seeds": seeds,
        "threads": threads,
        "device": str(device),
        "status": "running",
        "reason": "",
        "target": None if plan.synthetic else plan.size.target.as_dict(),
        "synthetic": plan.synthetic,
        "batch_size": plan.size.batch_size,
        "time_to_target_s": None,
        "steps_to_target": None,
        "test_target_met": None,
        "test_value_at_target": None,
        "timed_s": 0.0,
        "eval_s": 0.0,
        "setup_s": None,
        "wall_s": None,
        "steps": 0,
        "evals": 0,
        "budget": {
            **budget,
            "max_runtime_s": plan.max_runtime_s,
            "max_steps": plan.max_steps,
            "eval_every_steps": plan.eval_every_steps,
            "eval_every_s": plan.eval_every_s,
            "step_hint": plan.size.step_hint,
        },
        "watchdog_s": None,
        "official": not deviations,
        "deviations": deviations,
        "pinned_hardware_id": plan.config.get("hardware_id"),
        "model_parameters": None,
        "compute": compute,
        "final_metrics": {},
        "error": None,
        "fingerprint": fingerprint,
        "data_sha256": data_sha256,
        "distributed": distributed,
        "config": plan.config,
        "started_at": started_at,
        "finished_at": None,
        **(extra or {}),
    }


def write_record(run_dir: Path, record: dict[str, Any]) -> None:
    """Seal ``record`` and replace ``run_dir/run.json`` with it, atomically."""
    write_json_atomic(Path(run_dir) / RUN_FILE, seal(record))


def read_run(run_dir: Path) -> dict[str, Any]:
    with open(Path(run_dir) / RUN_FILE) as f:
        return json.load(f)


_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Rows of metrics.jsonl; a truncated last line (a crash mid-write) is skipped.
    The non-finite values written as strings (:func:`_clean`: "nan", "inf",
    "-inf") come back as floats, so a diverged run's rows compare as numbers."""
    rows = []
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return rows
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                row = {k: _NON_FINITE.get(v, v) if isinstance(v, str) else v for k, v in row.items()}
            rows.append(row)
    return rows
