"""Scoring: time-to-target tables, performance profiles and benchmark scores.

This follows AlgoPerf's scoring code (``algoperf/scoring/performance_profile.py``
in mlcommons/algorithmic-efficiency, functions ``compute_performance_profiles``
and ``compute_leaderboard_score``) step by step, in this order:

1. ``times``: one row per submission, one column per workload (base workloads
   and held-out variants), seconds to the validation target; a miss (or a
   workload the submission did not run) is ``inf``.
2. **4x cut-off**: a time more than ``max_tau`` (4) times the fastest time on that
   workload becomes a miss. This is applied to every column, variants included,
   *before* gating, against the fastest time in the ungated table.
3. **Held-out gating**: where a variant column is present, a submission whose
   variant time is a miss (after step 2) gets a miss on the base workload.
   Variants are then dropped from the profile (AlgoPerf scores base workloads
   only; for display, a variant whose base is a miss is shown as a miss too).
4. **Ratios**: each base time divided by the fastest *gated* base time on that
   workload; a workload nobody reached is a miss for everyone.
5. **Profile**: ``rho(tau)`` = (number of base workloads with ratio <= tau) /
   (number of base workloads in the preset), on ``numpy.linspace(1, max_tau, 100)``.
   The denominator is the number of base workloads, not how many a submission ran.
6. **Score**: trapezoid area under ``rho`` over ``[1, max_tau]`` divided by
   ``max_tau - 1``, so 1.0 means fastest on every base workload.

Verified against ``tests/fixtures/algoperf_v05_self/`` (AlgoPerf v0.5
self-tuning, 6 submissions x 14 workloads): with the ``algoperf_v05`` preset
this reproduces every published score to 4 decimals (``tests/test_scoring.py``).
Details the fixture pins down:

(a) held-out gating, *after* the 4x cut-off on the variant: nadamw_sequential
    reaches criteo1tb at 3.95x the fastest (within 4x) but criteo1tb_embed_init
    only at 8.8x, so the cut-off makes the variant a miss and the gate then makes
    criteo1tb a miss: 0.3308 as published. Without gating, or gating on raw
    misses only, it scores 0.3826;
(b) the tau grid is exactly ``linspace(1, 4, 100)`` (both ends included):
    1000 points move scores in the 4th decimal (schedule_free_adamw 0.8539,
    baseline 0.8201); ``rho`` counts ``ratio <= tau``, so a submission fastest
    everywhere scores exactly 1.0 and tied submissions all get ratio 1;
(c) the denominator is the 8 base workloads: baseline and schedule_free_adamw
    reach 7 (imagenet_resnet is a miss for everyone), so their profiles top
    out at 7/8.

Beyond AlgoPerf's code, records from ``bench run`` / ``bench tune`` are turned
into that ``times`` table here (:func:`score_records`): per (ruleset,
hardware_id, submission, workload), the time is the median over studies of the
fastest trial in each study that reached the target (a study with none is a
miss), as AlgoPerf's external-tuning rule. A record without tuning metadata (a
plain ``bench run``) is a study of one trial, under the ruleset ``untuned``.
A record's ``hardware_id`` here is its class as
``fingerprint.record_hardware_class`` reads it: recomputed from a version-2
fingerprint, ``legacy-<stored id>`` for an older one, so the two never share a board.

``normalize=True`` (``bench score --normalize``) sets hardware classes side by
side instead: each record's time is divided by its budget's ``speed_factor``
(this machine's seconds per tuned-baseline step over the reference class's),
giving seconds of the reference class its size was calibrated on, and one board
is scored per (ruleset, reference class) from every class's records, labelled
``normalised to <reference> (approximate)``: one baseline's speed ratio need not
hold for every submission. Records without a speed factor (a budget in fixed
seconds, an older record) are left out of it, each reason counted in the warnings;
the 4x cut-off applies to the normalised times. It cannot be combined with
``allow_mixed_hardware``, which pools raw seconds.

A workload variant's records (``bench run --variant``, record key ``variant``)
get a column of their own, ``<workload>-<size>[<variant>]`` (:func:`workload_column`),
official when nothing else deviates: they are never pooled with the base
workload's, as AlgoPerf scores its variants separately (docs/variants.md).

Pure pandas/numpy (+ matplotlib only when a profile picture is drawn); no torch.
"""

from __future__ import annotations

import json
import math
import warnings as _warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from harness.api import BUDGET_FRACTION, Status, Target, comparison_sign, is_better
from harness.common.config import load_named_yaml, named_configs
from harness.errors import UserInputError
from harness.run.fingerprint import record_hardware_class
from harness.run.records import DIGEST_KEY, METRICS_FILE, RUN_FILE, digest_ok

INF = math.inf
FINISHED = tuple(s.value for s in Status if s.is_result)  # records that are results: measurements and errors
UNTUNED = "untuned"  # ruleset of records written by a plain `bench run`
MIXED = "mixed"  # hardware_id shown for groups scored with --allow-mixed-hardware
REFERENCE_WORK = "reference_work"  # budget basis of a record whose seconds can be normalised


def normalized_label(reference_hardware_id: str) -> str:
    """The hardware_id shown for a board scored with --normalize."""
    return f"normalised to {reference_hardware_id} (approximate)"


# --------------------------------------------------------------------------- #
# Presets                                                                      #
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Preset:
    """Which workloads count and how: base workloads, held-out variants, tau range.

    ``variants`` maps a base workload to its held-out variant. ``base_workloads``
    empty means "every workload in the table that is not a variant".
    """

    name: str = "default"
    base_workloads: tuple[str, ...] = ()
    variants: Mapping[str, str] = field(default_factory=dict)
    max_tau: float = 4.0
    num_points: int = 100
    description: str = ""

    def bases_for(self, workloads: Iterable[str]) -> list[str]:
        if self.base_workloads:
            return list(self.base_workloads)
        held_out = set(self.variants.values())
        return sorted(w for w in set(workloads) if w not in held_out)


DEFAULT_PRESET = Preset()


def available_presets() -> list[str]:
    return named_configs("presets")


def load_preset(name_or_path: str | Path | None) -> Preset:
    """A preset by name (``configs/presets/<name>.yaml``) or from a YAML file."""
    if name_or_path is None:
        return DEFAULT_PRESET
    path, data = load_named_yaml("presets", name_or_path, "scoring preset")
    try:
        preset = Preset(
            name=str(data.get("name", path.stem)),
            base_workloads=tuple(data.get("base_workloads") or ()),
            variants=dict(data.get("variants") or {}),
            max_tau=float(data.get("max_tau", 4.0)),
            num_points=int(data.get("num_points", 100)),
            description=str(data.get("description", "")),
        )
    except (TypeError, ValueError) as exc:
        raise UserInputError(f"preset {path}: {exc}") from None
    if preset.max_tau <= 1 or preset.num_points < 2:
        raise UserInputError(f"preset {path}: need max_tau > 1 and num_points >= 2")
    stray = [b for b in preset.variants if preset.base_workloads and b not in preset.base_workloads]
    if stray:
        raise UserInputError(f"preset {path}: variants of unknown base workloads {stray}")
    return preset


# --------------------------------------------------------------------------- #
# The AlgoPerf scorer on a submission x workload table                         #
# --------------------------------------------------------------------------- #


@dataclass
class Scores:
    """Everything the scorer derives from one times table (one ruleset/hardware)."""

    times: pd.DataFrame  # submission x workload, raw (inf = miss)
    gated: pd.DataFrame  # after the 4x cut-off and held-out gating (variants included)
    ratios: pd.DataFrame  # submission x base workload: t / fastest (inf = miss)
    profile: pd.DataFrame  # submission x tau: rho(tau)
    scores: pd.Series  # submission -> benchmark score in [0, 1]
    preset: Preset

    @property
    def base_workloads(self) -> list[str]:
        return list(self.ratios.columns)


def _times_matrix(times: pd.DataFrame | Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """Accept a wide table (index submission) or a long one (submission, workload, time_s)."""
    if isinstance(times, pd.DataFrame) and {"submission", "workload", "time_s"} <= set(times.columns):
        dup = times.duplicated(["submission", "workload"])
        if dup.any():
            first = times[dup].iloc[0]
            raise UserInputError(f"two times for submission {first['submission']!r} on workload {first['workload']!r}")
        wide = times.pivot(index="submission", columns="workload", values="time_s")
    else:
        wide = pd.DataFrame(times)
        if not isinstance(times, pd.DataFrame):  # {submission: {workload: t}}
            wide = wide.T
    wide = wide.apply(pd.to_numeric, errors="raise").astype(float)
    if (wide <= 0).any().any():
        raise UserInputError("times must be positive seconds (inf for a miss)")
    # A workload a submission did not run is a miss, exactly like a missed target.
    return wide.fillna(INF)


def score_times(times: pd.DataFrame | Mapping[str, Mapping[str, float]], preset: Preset | None = None) -> Scores:
    """Score one table of per-workload times the way AlgoPerf does (see module doc)."""
    preset = preset or DEFAULT_PRESET
    raw = _times_matrix(times)
    bases = preset.bases_for(raw.columns)
    max_tau = preset.max_tau

    # 2. the 4x cut-off, on every column, against the fastest ungated time.
    best = raw.min(axis=0)
    gated = raw.mask(raw.gt(max_tau * best, axis=1), INF)

    # 3. held-out gating: a missed variant makes its base a miss.
    cut = gated.copy()
    for base, variant in preset.variants.items():
        if variant in gated.columns and base in gated.columns:
            gated.loc[~np.isfinite(cut[variant]), base] = INF
    for base, variant in preset.variants.items():  # display only: variants of a missed base
        if variant in gated.columns and base in gated.columns:
            gated.loc[~np.isfinite(gated[base]), variant] = INF

    # 4. ratios to the fastest gated base time; absent base columns are misses.
    base_times = gated.reindex(columns=bases).fillna(INF)
    fastest = base_times.min(axis=0)
    with np.errstate(invalid="ignore"):
        ratios = base_times.div(fastest, axis=1)
    ratios = ratios.fillna(INF)  # inf / inf: nobody reached it
    ratios = ratios.mask(ratios > max_tau, INF)

    # 5. the profile, 6. the score.
    taus = np.linspace(1.0, max_tau, preset.num_points)
    n_base = len(bases)
    values = np.stack([(ratios.to_numpy() <= tau).sum(axis=1) / n_base for tau in taus], axis=1) if n_base else np.zeros((len(ratios), len(taus)))
    profile = pd.DataFrame(values, index=ratios.index, columns=pd.Index(taus, name="tau"))
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy 2 renamed trapz
    area = trapezoid(profile.to_numpy(), x=taus, axis=1) / (taus.max() - taus.min())
    scores = pd.Series(area, index=profile.index, name="score").sort_values(ascending=False, kind="stable")
    return Scores(times=raw, gated=gated, ratios=ratios, profile=profile, scores=scores, preset=preset)


def read_times_csv(path: str | Path) -> pd.DataFrame:
    """``submission,workload,time_s[,ruleset]``; ``inf`` (or empty) marks a miss."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"times file {str(path)!r} does not exist")
    try:
        df = pd.read_csv(path, dtype={"submission": str, "workload": str})
    except Exception as exc:
        raise UserInputError(f"{path}: not a readable CSV ({type(exc).__name__}: {exc})") from None
    missing = {"submission", "workload", "time_s"} - set(df.columns)
    if missing:
        raise UserInputError(f"{path}: missing columns {sorted(missing)} (need submission,workload,time_s[,ruleset])")
    df["time_s"] = pd.to_numeric(df["time_s"].replace({"": np.nan}), errors="coerce").fillna(INF)
    if "ruleset" not in df.columns:
        df["ruleset"] = ""
    df["ruleset"] = df["ruleset"].fillna("").astype(str)
    return df


def score_times_csv(path: str | Path, preset: Preset | str | None = None) -> dict[str, Scores]:
    """Score a times CSV; one :class:`Scores` per ruleset (``""`` if no ruleset column)."""
    if not isinstance(preset, Preset):
        preset = load_preset(preset)
    df = read_times_csv(path)
    return {ruleset: score_times(group, preset) for ruleset, group in df.groupby("ruleset", sort=True)}


# --------------------------------------------------------------------------- #
# Records -> trials -> studies -> per-workload times                           #
# --------------------------------------------------------------------------- #


@dataclass
class Loaded:
    records: list[dict[str, Any]]  # each with "_path" added
    warnings: list[str]


def _as_float(value: Any) -> float | None:
    """Record numbers may be null or the strings "inf"/"nan" (JSON has no inf)."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def load_records(dirs: Sequence[str | Path]) -> Loaded:
    """Every ``run.json`` under ``dirs`` (any layout). Unreadable, truncated,
    incomplete or unfinished records are skipped with a warning naming the file,
    and so are records that disagree with their own ``metrics.jsonl``
    (:func:`_log_problem`)."""
    records: list[dict[str, Any]] = []
    notes: list[str] = []
    seen: set[Path] = set()
    for root in dirs:
        root = Path(root)
        if not root.exists():
            raise UserInputError(f"results directory {str(root)!r} does not exist")
        paths = [root] if root.is_file() else sorted(root.rglob(RUN_FILE))
        for path in paths:
            real = path.resolve()
            if real in seen:  # overlapping directories given twice
                continue
            seen.add(real)
            try:
                with open(path) as f:
                    rec = json.load(f)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                notes.append(f"skipped {path}: unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
                continue
            problem = _record_problem(rec)
            if problem is None and digest_ok(rec) is False:
                problem = "edited after optbench wrote it (its digest does not match its contents)"
            if problem is None:
                problem = _log_problem(rec, path.parent / METRICS_FILE)
            if problem:
                notes.append(f"skipped {path}: {problem}")
                continue
            if DIGEST_KEY not in rec:
                rec["_unsealed"] = True  # cannot be verified: never on an official board
            rec["_path"] = str(path)
            records.append(rec)
    return Loaded(records, notes)


def _record_problem(rec: Any) -> str | None:
    """Why a parsed run.json cannot be scored, or None."""
    if not isinstance(rec, dict):
        return "not a JSON object"
    for key in ("workload", "size", "status", "submission"):
        if key not in rec:
            return f"missing key {key!r}"
    if not isinstance(rec["submission"], dict) or not rec["submission"].get("name"):
        return "missing submission name"
    status = rec["status"]
    if status not in FINISHED:
        return f"status {status!r} (not finished)"
    if status == Status.REACHED:
        t = _as_float(rec.get("time_to_target_s"))
        if t is None or not math.isfinite(t) or t <= 0:
            return "status reached but no valid time_to_target_s"
        # The time to target is timed training time: it cannot exceed what the
        # run spent training, nor (beyond clock granularity) the budget.
        timed = _as_float(rec.get("timed_s"))
        if timed is not None and t > timed * (1 + 1e-9) + 1e-6:
            return f"time_to_target_s {t:g} exceeds the run's timed_s {timed:g}"
        steps, steps_to = rec.get("steps"), rec.get("steps_to_target")
        if isinstance(steps, int) and isinstance(steps_to, int) and not 0 < steps_to <= steps:
            return f"steps_to_target {steps_to} is outside 1..steps ({steps})"
    return None


def _log_target(rec: Mapping[str, Any]) -> Target | None:
    """The record's validation target as an ``api.Target`` (test target left
    out: reached means the validation target met, as AlgoPerf), or None."""
    t = rec.get("target")
    if not isinstance(t, Mapping):
        return None
    value = _as_float(t.get("value"))
    if not isinstance(t.get("metric"), str) or value is None or t.get("direction") not in ("max", "min"):
        return None
    return Target(t["metric"], value, t["direction"])


def _log_rows(path: Path) -> list[tuple[int, Any]] | str:
    """(line number, parsed JSON) of every line of a metrics.jsonl, or why it
    cannot be read. A torn last line (a crash mid-write) is left out, as
    ``records.read_metrics`` does; a bad line before the last is not."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return f"its {METRICS_FILE} is unreadable ({type(exc).__name__})"
    numbered = [(i, line) for i, line in enumerate(lines, start=1) if line.strip()]
    rows = []
    for k, (i, line) in enumerate(numbered):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if k == len(numbered) - 1:
                continue
            return f"its {METRICS_FILE} line {i} is not JSON"
        if not isinstance(row, dict):
            return f"its {METRICS_FILE} line {i} is not a JSON object"
        rows.append((i, row))
    return rows


def _log_problem(rec: Mapping[str, Any], log_path: Path) -> str | None:
    """Why a record disagrees with its own ``metrics.jsonl``, or None.

    The runner ends a run as ``reached`` at the first evaluation whose
    ``validation/<metric>`` is strictly better than the target and whose timed
    seconds are within the budget, and writes that evaluation's step and
    timed seconds both to the record and to the log. So:

    * ``reached``: the first line meeting the target must have ``step`` equal to
      ``steps_to_target`` and ``timed_s`` equal to ``time_to_target_s`` (to 1e-9 s);
    * ``budget_exhausted``: no line may meet the target with ``timed_s`` within
      the budget's ``max_runtime_s``.

    A record edited by hand and resealed (its digest recomputed) is caught here
    unless the log was rewritten to match. A sealed ``reached`` record without
    a log or a target cannot be checked and is left out; an unsealed one
    is checked where it can be (it never makes an official board). A log that
    exists but cannot be read is always a problem.
    """
    status = rec.get("status")
    if status not in (Status.REACHED, Status.BUDGET_EXHAUSTED):
        return None
    if status == Status.BUDGET_EXHAUSTED and not_a_trial(rec):
        return None  # an LR study's or a calibration's run goes on past the target by design
    sealed = DIGEST_KEY in rec
    target = _log_target(rec)
    if not log_path.is_file():
        if status == Status.REACHED and sealed:
            return f"status reached but no {METRICS_FILE} beside it to check its time to target against"
        return None
    if target is None:
        if status == Status.REACHED and sealed:
            return "status reached but no usable target {metric, value, direction} to check its log against"
        return None
    rows = _log_rows(log_path)
    if isinstance(rows, str):
        return rows
    key = f"validation/{target.metric}"
    meeting = [(i, row) for i, row in rows if is_better(_as_float(row.get(key)), target.validation, target.direction)]
    if status == Status.REACHED:
        return _reached_log_problem(rec, meeting, key, target)
    return _exhausted_log_problem(rec, meeting, key, target)


def _reached_log_problem(rec: Mapping[str, Any], meeting: list[tuple[int, Any]], key: str,
                         target: Target) -> str | None:
    """Why a ``reached`` record disagrees with the first line of its log that
    meets its target (``meeting``: the lines that do), or None."""
    if not meeting:
        return (f"status reached but no line of its {METRICS_FILE} meets its target "
                f"({key} {target.sign} {target.validation:g})")
    i, row = meeting[0]
    where = f"the first line of its {METRICS_FILE} meeting its target (line {i}, {key} {row.get(key)})"
    steps, row_step = _as_float(rec.get("steps_to_target")), _as_float(row.get("step"))
    if row_step is None or steps != row_step:
        return f"steps_to_target {rec.get('steps_to_target')} disagrees with {where}: step {row.get('step')}"
    t, row_t = _as_float(rec.get("time_to_target_s")), _as_float(row.get("timed_s"))
    if t is None or row_t is None or not abs(t - row_t) <= 1e-9:
        return f"time_to_target_s {rec.get('time_to_target_s')!r} disagrees with {where}: timed_s {row.get('timed_s')!r}"
    return None


def _exhausted_log_problem(rec: Mapping[str, Any], meeting: list[tuple[int, Any]], key: str,
                           target: Target) -> str | None:
    """Why a ``budget_exhausted`` record disagrees with its log: a line that
    meets its target (``meeting``) within the budget's seconds, or None."""
    budget = rec.get("budget")
    limit = _as_float(budget.get("max_runtime_s")) if isinstance(budget, Mapping) else None
    limit = math.inf if limit is None else limit
    for i, row in meeting:
        row_t = _as_float(row.get("timed_s"))
        if row_t is None or row_t <= limit:
            return (f"status budget_exhausted but line {i} of its {METRICS_FILE} meets its target "
                    f"({key} {row.get(key)} {target.sign} {target.validation:g}) at step {row.get('step')}, "
                    f"timed_s {row.get('timed_s')!r}, within the budget of {limit:g} s")
    return None


_DEFAULT_NORMS: dict[str, str | None] = {}


def _default_norm(workload: str) -> str | None:
    """The workload's default norm, from the registry if it is installed here (torch-free)."""
    if workload not in _DEFAULT_NORMS:
        try:
            from harness.plugins.registry import Registry

            _DEFAULT_NORMS[workload] = Registry().workload(workload).info.default_norm
        except Exception:
            _DEFAULT_NORMS[workload] = None
    return _DEFAULT_NORMS[workload]


def submission_label(rec: Mapping[str, Any]) -> str:
    """The leaderboard name of what ran: the submission, plus ``+norm`` when an
    optimizer ran with a non-default norm (the runner's results label)."""
    tuning = rec.get("tuning") or {}
    if rec.get("label"):
        return str(rec["label"])
    if tuning.get("label"):
        return str(tuning["label"])
    sub = rec["submission"]
    name = str(sub.get("name"))
    if sub.get("kind") == "optimizer":
        norm = (rec.get("norm") or {}).get("name")
        default = _default_norm(str(rec.get("workload")))
        if norm and default is not None and norm != default:
            return f"{name}+{norm}"
    return name


def _budget_speed(rec: Mapping[str, Any]) -> tuple[str | None, str | None, float | None]:
    """(budget basis, reference hardware class, speed factor) of a record's budget;
    ``None`` for whatever the record does not carry (the factor only when a
    positive finite number)."""
    budget = rec.get("budget")
    if not isinstance(budget, Mapping):
        return None, None, None
    basis = str(budget.get("basis") or "fixed")  # budgets before the basis key were seconds
    reference = budget.get("reference_hardware_id")
    factor = _as_float(budget.get("speed_factor"))
    if factor is not None and not (math.isfinite(factor) and factor > 0):
        factor = None
    return basis, (str(reference) if reference else None), factor


def _normalized_time(time_s: float | None, factor: float | None) -> float:
    """Seconds in the reference class: inf for a miss, nan when there is no factor."""
    if factor is None:
        return math.nan
    return INF if time_s is None else time_s / factor


def normalize_problem(basis: str | None, reference: str | None, factor: float | None) -> str | None:
    """Why a record's time cannot be put in reference seconds, or None."""
    if basis is None:
        return "no budget block (written before budgets travelled as reference work): cannot be normalised"
    if basis != REFERENCE_WORK:
        return "budget in fixed seconds: cannot be normalised"
    if factor is None:
        return "no speed factor (its size's calibration gives no reference seconds per step): cannot be normalised"
    if reference is None:
        return "no reference hardware class in its budget: cannot be normalised"
    return None


# --------------------------------------------------------------------------- #
# Comparable records: which ones may share an official board                   #
# --------------------------------------------------------------------------- #

OFFICIAL_BOARD = "official"  # records on the workload's own terms
UNOFFICIAL_BOARD = "unofficial"  # everything else, scored only when asked (--unofficial)
_SIZES: dict[tuple[str, str], Any] = {}


def installed_size(workload: str, size: str):
    """The ``api.Size`` that defines ``workload``/``size`` in this install, or
    None when it is not installed (torch-free: the registry reads metadata only)."""
    key = (workload, size)
    if key not in _SIZES:
        try:
            from harness.plugins.registry import Registry

            _SIZES[key] = Registry().workload(workload).info.sizes.get(size)
        except Exception:
            _SIZES[key] = None
    return _SIZES[key]


def record_variant(rec: Mapping[str, Any]) -> tuple[str | None, Any]:
    """(name, settings) of the workload variant a record trained, or (None, None)."""
    variant = rec.get("variant")
    if not isinstance(variant, Mapping) or not variant.get("name"):
        return None, None
    return str(variant["name"]), variant.get("settings")


def workload_column(rec: Mapping[str, Any]) -> str:
    """A record's board column: ``gpt-tiny``, or ``gpt-tiny[qk_norm]`` for a
    variant, which AlgoPerf scores apart from its base and so is never pooled with it."""
    name, _ = record_variant(rec)
    return f"{rec['workload']}-{rec['size']}" + (f"[{name}]" if name else "")


def _variant_problem(rec: Mapping[str, Any]) -> str | None:
    """Why a variant record is not this install's variant of that name (its
    settings differ, or the workload declares no such variant), or None."""
    name, settings = record_variant(rec)
    if name is None:
        return None
    try:
        from harness.plugins.registry import Registry

        info = Registry().workload(str(rec.get("workload"))).info
    except Exception:
        return None  # not installed: the size check says so
    try:
        _, want = info.resolve_variant(name)
    except UserInputError:
        return f"variant {name} is not one of workload {info.name}'s"
    if dict(settings or {}) != want:
        return f"variant {name} settings {dict(settings or {})}, the workload's are {want}"
    return None


def _same(a: Any, b: Any, rel: float = 1e-9) -> bool:
    """Two recorded numbers are the same setting (both None, or equal to rounding)."""
    fa, fb = _as_float(a), _as_float(b)
    if fa is None or fb is None:
        return fa is None and fb is None
    return math.isclose(fa, fb, rel_tol=rel, abs_tol=1e-12)


def _target_text(target: Mapping[str, Any] | None) -> str:
    if not isinstance(target, Mapping) or target.get("direction") not in ("max", "min"):
        return "no target"
    sign = comparison_sign(target["direction"])
    text = f"{target.get('metric')} {sign} {_as_float(target.get('value')):g}" if _as_float(target.get("value")) is not None \
        else f"{target.get('metric')} {sign} ?"
    test = _as_float(target.get("test_value"))
    return text + (f" (test {sign} {test:g})" if test is not None else "")


def _budget_text(budget: Mapping[str, Any] | None) -> str:
    """A budget's terms in words: reference work, or seconds, and any step limit."""
    if not isinstance(budget, Mapping):
        return "no budget"
    if budget.get("basis") == REFERENCE_WORK:
        text = f"{budget.get('reference_steps')} reference steps"
        multiplier = _as_float(budget.get("multiplier")) or 1.0
        if multiplier != 1.0:
            text += f" x {multiplier:g}"
        fraction = _as_float(budget.get("budget_fraction"))
        if fraction is not None and not _same(fraction, BUDGET_FRACTION):
            text += f" at fraction {fraction:g}"
    else:
        seconds = _as_float(budget.get("max_runtime_s"))
        text = f"{seconds:g} s" if seconds is not None else "no time limit"
    if budget.get("max_steps") is not None:
        text += f", at most {budget['max_steps']} steps"
    return text


def record_terms(rec: Mapping[str, Any]) -> str:
    """What a record was timed against: its target and budget, in words."""
    return f"{_target_text(rec.get('target'))}; {_budget_text(rec.get('budget'))}"


def _definition_budget(size: Any, multiplier: float) -> dict[str, Any]:
    """The budget block an official run of ``size`` under ``multiplier`` carries."""
    if size.reference_steps is not None:
        return {"basis": REFERENCE_WORK, "reference_steps": size.reference_steps, "budget_fraction": BUDGET_FRACTION,
                "multiplier": multiplier, "max_steps": size.max_steps}
    return {"basis": "fixed", "max_runtime_s": size.max_runtime_s * multiplier, "multiplier": multiplier,
            "max_steps": size.max_steps}


def _budget_problem(rec: Mapping[str, Any], size: Any) -> str | None:
    """Why a record's budget is not its size's (under its ruleset's multiplier), or None."""
    budget = rec.get("budget")
    tuning = rec.get("tuning") if isinstance(rec.get("tuning"), Mapping) else {}
    # A ruleset's multiplier (self-tuning's 3x) is part of its rules; a plain run's is 1.
    multiplier = _as_float(tuning.get("budget_multiplier")) or 1.0
    expected = _definition_budget(size, multiplier)
    differs = f"budget {_budget_text(budget)}, the workload's is {_budget_text(expected)}"
    if not isinstance(budget, Mapping):
        return f"no budget block, the workload's is {_budget_text(expected)}"
    if budget.get("max_steps") != expected["max_steps"]:
        return differs
    if budget.get("basis") == REFERENCE_WORK:
        if expected["basis"] != REFERENCE_WORK:
            return differs
        same = (budget.get("reference_steps") == expected["reference_steps"]
                and _same(budget.get("budget_fraction"), expected["budget_fraction"])
                and _same(budget.get("multiplier") or 1.0, multiplier))
        return None if same else differs
    # A budget in seconds: the size's own seconds (a full size; a tiny size run
    # where its budget does not travel, as under torchrun), valid only on the
    # class those seconds were measured on.
    seconds = size.max_runtime_s * multiplier
    if not _same(budget.get("max_runtime_s"), seconds, rel=1e-6):
        return f"budget {_budget_text(budget)}, the workload's is {_budget_text(expected)}"
    if size.reference_steps is not None:
        calibrated_on = (size.target_setting or {}).get("hardware_id")
        here = record_hardware_class(rec.get("fingerprint"))
        if calibrated_on != here:
            return (f"budget in {calibrated_on}'s seconds ({seconds:g} s) but run on {here}: "
                    "seconds of another class buy other work")
    return None


def not_a_trial(rec: Mapping[str, Any]) -> str | None:
    """Why a record is a measurement, not a timed attempt at its target, and so
    on no board at all (not even an unofficial one), or None for a run or trial."""
    if rec.get("synthetic"):
        return "synthetic data (data.synthetic=true): a step-time, memory and MFU measurement with no target"
    study = rec.get("study")
    if isinstance(study, Mapping):
        how = "fixed steps, no stop at the target" if study.get("kind") == "lr" else "another batch size"
        return f"a point of bench study {study.get('kind', '')} ({how}): a study's measurement, not a trial"
    if rec.get("calibration"):
        return "a calibration run (bench calibrate): it sets a target, it is not timed to one"
    return None


def comparability_problems(rec: Mapping[str, Any], size: Any = ...) -> list[str]:
    """Why a record may not share an official board, or [] when it may.

    An official board holds only records that are official (no deviation from
    the workload's settings), written and sealed by optbench, and timed against
    the target and budget that define their workload size in this install
    (and, for a variant, with this install's settings of that variant). A
    record's hardware class is matched by the board itself (one per class).
    ``size`` is the defining ``api.Size`` (default: :func:`installed_size`).
    """
    problems = []
    if rec.get("_unsealed"):
        problems.append("no digest: not written by optbench, or edited")
    measurement = not_a_trial(rec)
    if measurement:  # on no board at all, not even an unofficial one (_scoring_trials)
        return [*problems, measurement]
    if not bool(rec.get("official", True)):
        deviations = [str(d) for d in rec.get("deviations") or []]
        problems.append("unofficial" + (f" ({', '.join(deviations)})" if deviations else ""))
    if size is ...:
        size = installed_size(str(rec.get("workload")), str(rec.get("size")))
    if size is None:
        problems.append(f"workload {rec.get('workload')} size {rec.get('size')} is not installed here: "
                        "its target and budget cannot be checked")
        return problems
    want = size.target.as_dict()
    got = rec.get("target") if isinstance(rec.get("target"), Mapping) else {}
    if not (got.get("metric") == want["metric"] and got.get("direction") == want["direction"]
            and _same(got.get("value"), want["value"]) and _same(got.get("test_value"), want["test_value"])):
        problems.append(f"target {_target_text(got)}, the workload's is {_target_text(want)}")
    budget = _budget_problem(rec, size)
    if budget:
        problems.append(budget)
    variant = _variant_problem(rec)
    if variant:
        problems.append(variant)
    return problems


def trials_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per record with what scoring needs (no nested fields).

    ``speed_factor`` is the budget's (nan when it has none) and
    ``time_s_normalized`` the time to target divided by it: seconds on the
    budget's ``reference_hardware_id`` (inf for a miss, nan when there is no factor).
    """
    rows = []
    for rec in records:
        tuning = rec.get("tuning") or {}
        compute = rec.get("compute") if isinstance(rec.get("compute"), Mapping) else {}
        reached = rec["status"] == Status.REACHED
        time_s = _as_float(rec.get("time_to_target_s")) if reached else None
        basis, reference, factor = _budget_speed(rec)
        steps = _as_float(rec.get("steps_to_target")) if reached else None
        if tuning.get("study") is not None:
            study = f"{tuning.get('sweep_id', rec.get('experiment', ''))}/study_{tuning['study']}"
        else:  # a plain run: its own study of one trial
            study = f"run/{rec.get('run_id') or rec.get('_path')}"
        rows.append({
            "ruleset": str(tuning.get("ruleset") or UNTUNED),
            "hardware_id": record_hardware_class(rec.get("fingerprint")),
            "submission": submission_label(rec),
            "workload": workload_column(rec),
            "study": study,
            "trial": tuning.get("trial"),
            "trial_id": tuning.get("trial_id"),
            "status": rec["status"],
            "time_to_target_s": time_s if time_s is not None else INF,
            "steps_to_target": steps if steps is not None else INF,
            "official": bool(rec.get("official", True)),
            "data_sha256": rec.get("data_sha256"),
            "budget_basis": basis,
            "reference_hardware_id": reference,
            "speed_factor": factor if factor is not None else math.nan,
            "time_s_normalized": _normalized_time(time_s, factor),
            "path": rec.get("_path"),
            # what the trial ran with: a board names its winners' settings
            "hyperparameters": json.dumps(rec.get("hyperparameters"), sort_keys=True, default=str),
            # its model FLOPs per step and achieved FLOP/s (harness/run/flops.py; nan when not counted)
            "flops_per_step": _as_float(compute.get("flops_per_step")) or math.nan,
            "achieved_flops_per_s": _as_float(compute.get("achieved_flops_per_s")) or math.nan,
            "synthetic": bool(rec.get("synthetic")),
            "not_a_trial": not_a_trial(rec) is not None,
        })
    columns = ["ruleset", "hardware_id", "submission", "workload", "study", "trial", "trial_id", "status",
               "time_to_target_s", "steps_to_target", "official", "data_sha256", "budget_basis",
               "reference_hardware_id", "speed_factor", "time_s_normalized", "path", "hyperparameters",
               "flops_per_step", "achieved_flops_per_s", "synthetic", "not_a_trial"]
    return pd.DataFrame(rows, columns=columns)


def _first_row(values: pd.Series) -> Any:
    """The group's first value, missing or not (pandas' "first" skips missing ones)."""
    return values.iloc[0] if len(values) else math.nan


def study_times(trials: pd.DataFrame, by: Sequence[str] = ("ruleset", "hardware_id")) -> pd.DataFrame:
    """Per study: the fastest trial that reached the target (inf when none did)."""
    keys = [*by, "submission", "workload", "study"]
    if trials.empty:
        return pd.DataFrame(columns=[*keys, "time_s", "steps", "trials", "official", "best_hyperparameters", "best_path",
                                     "flops_per_step", "achieved_flops_per_s"])
    ordered = trials.sort_values("time_to_target_s", kind="stable")
    best = ordered.groupby(keys, sort=True, dropna=False).agg(
        time_s=("time_to_target_s", "first"),
        steps=("steps_to_target", "first"),
        trials=("status", "size"),
        official=("official", "all"),
        best_hyperparameters=("hyperparameters", "first"),
        best_path=("path", "first"),
        # the fastest trial's own figures ("first" would skip a trial that has none)
        flops_per_step=("flops_per_step", _first_row),
        achieved_flops_per_s=("achieved_flops_per_s", _first_row),
    )
    return best.reset_index()


def workload_times(studies: pd.DataFrame, by: Sequence[str] = ("ruleset", "hardware_id")) -> pd.DataFrame:
    """Per submission and workload: the median over studies, and the spread."""
    keys = [*by, "submission", "workload"]
    columns = [*keys, "time_s", "steps", "studies", "studies_reached", "time_min_s", "time_max_s",
               "steps_min", "steps_max", "trials", "official", "best_hyperparameters", "best_path",
               "flops_per_step", "achieved_flops_per_s"]
    if studies.empty:
        return pd.DataFrame(columns=columns)

    def summarise(g: pd.DataFrame) -> pd.Series:
        t, s = g["time_s"].to_numpy(float), g["steps"].to_numpy(float)
        # The winning trial: the fastest that reached the target, over every study.
        winner = g.iloc[int(np.argmin(t))] if np.isfinite(t).any() else None
        return pd.Series({
            "best_hyperparameters": winner["best_hyperparameters"] if winner is not None else None,
            "best_path": winner["best_path"] if winner is not None else None,
            "flops_per_step": winner.get("flops_per_step", math.nan) if winner is not None else math.nan,
            "achieved_flops_per_s": winner.get("achieved_flops_per_s", math.nan) if winner is not None else math.nan,
            # np.median of a list holding inf is inf once half the studies miss,
            # the rule "a study with no reaching trial counts as a miss".
            "time_s": float(np.median(t)),
            "steps": float(np.median(s)),
            "studies": len(g),
            "studies_reached": int(np.isfinite(t).sum()),
            "time_min_s": float(t.min()), "time_max_s": float(t.max()),
            "steps_min": float(s.min()), "steps_max": float(s.max()),
            "trials": int(g["trials"].sum()),
            "official": bool(g["official"].all()),
        })

    cols = ["time_s", "steps", "trials", "official", "best_hyperparameters", "best_path",
            "flops_per_step", "achieved_flops_per_s"]
    out = studies.reindex(columns=[*keys, *cols]).groupby(keys, sort=True, dropna=False)[cols].apply(summarise)
    return out.reset_index()[columns]


@dataclass
class Group:
    """One leaderboard: records of one ruleset on one hardware class (or, with
    --normalize, of every class, in seconds of one reference class)."""

    ruleset: str
    hardware_id: str  # MIXED when --allow-mixed-hardware merged several; normalized_label(...) with --normalize
    hardware_ids: list[str]  # the classes whose records are in it
    result: Scores
    times: pd.DataFrame  # workload_times rows of this group
    official: dict[str, bool]  # submission -> every record official
    records: int | None = None  # how many records (trials) it was scored from
    normalized_to: str | None = None  # reference hardware class of a --normalize board
    board: str = OFFICIAL_BOARD  # UNOFFICIAL_BOARD: records left out of the official boards

    @property
    def mixed_hardware(self) -> bool:
        return len(self.hardware_ids) > 1

    @property
    def normalized(self) -> bool:
        return self.normalized_to is not None


def _winners(times: pd.DataFrame, submission: str) -> str:
    """JSON {workload: hyperparameters of the winning trial} of one submission on one board."""
    if times.empty or "best_hyperparameters" not in times:
        return "{}"
    mine = times[(times["submission"] == submission) & times["best_hyperparameters"].notna()]
    return json.dumps({w: json.loads(h) for w, h in zip(mine["workload"], mine["best_hyperparameters"])}, sort_keys=True)


@dataclass
class Leaderboard:
    groups: list[Group]
    trials: pd.DataFrame  # trials_frame of every scored record
    records: list[dict[str, Any]]
    warnings: list[str]
    allow_mixed_hardware: bool = False
    normalize: bool = False
    include_unofficial: bool = False

    @property
    def left_out(self) -> pd.DataFrame:
        """The records kept off the official boards, each with its reason."""
        columns = ["path", "ruleset", "hardware_id", "submission", "workload", "status", "reason"]
        if self.trials.empty or "left_out" not in self.trials:
            return pd.DataFrame(columns=columns)
        left = self.trials[self.trials["board"] == UNOFFICIAL_BOARD]
        return left.rename(columns={"left_out": "reason"})[columns].reset_index(drop=True)

    @property
    def scores(self) -> pd.DataFrame:
        rows = []
        for g in self.groups:
            reached = (g.result.ratios <= g.result.preset.max_tau).sum(axis=1)
            for rank, (sub, score) in enumerate(g.result.scores.items(), start=1):
                rows.append({
                    "board": g.board, "ruleset": g.ruleset, "hardware_id": g.hardware_id, "rank": rank, "submission": sub,
                    "score": float(score), "workloads_within_4x": int(reached.get(sub, 0)),
                    "base_workloads": len(g.result.base_workloads), "official": g.official.get(sub, True),
                    "mixed_hardware": g.mixed_hardware, "hardware_ids": " ".join(g.hardware_ids),
                    "hyperparameters": _winners(g.times, sub),
                })
        return pd.DataFrame(rows, columns=["board", "ruleset", "hardware_id", "rank", "submission", "score", "workloads_within_4x",
                                           "base_workloads", "official", "mixed_hardware", "hardware_ids", "hyperparameters"])

    @property
    def time_to_target(self) -> pd.DataFrame:
        frames = []
        for g in self.groups:
            t = g.times.copy()
            ratio = g.result.ratios.stack().rename("ratio").reset_index()
            ratio.columns = ["submission", "workload", "ratio"]
            t = t.merge(ratio, on=["submission", "workload"], how="left")
            t["hardware_id"] = g.hardware_id
            frames.append(t)
        if not frames:
            return workload_times(pd.DataFrame(), by=("board", "ruleset", "hardware_id")).assign(ratio=[])
        return pd.concat(frames, ignore_index=True)

    @property
    def profile(self) -> pd.DataFrame:
        frames = []
        for g in self.groups:
            long = g.result.profile.stack().rename("rho").reset_index()
            long.columns = ["submission", "tau", "rho"]
            long.insert(0, "hardware_id", g.hardware_id)
            long.insert(0, "ruleset", g.ruleset)
            long.insert(0, "board", g.board)
            frames.append(long)
        if not frames:
            return pd.DataFrame(columns=["board", "ruleset", "hardware_id", "submission", "tau", "rho"])
        return pd.concat(frames, ignore_index=True)


def score_records(
    dirs_or_records: Sequence[str | Path] | Sequence[Mapping[str, Any]],
    *,
    allow_mixed_hardware: bool = False,
    preset: Preset | str | None = None,
    normalize: bool = False,
    include_unofficial: bool = False,
    sizes: Callable[[str, str], Any] | None = None,
) -> Leaderboard:
    """The leaderboard of every record under the given directories (or of
    already-loaded records): one group per (ruleset, hardware_id); with
    ``normalize``, one per (ruleset, reference class) in reference seconds
    (see the module doc).

    Only comparable records (:func:`comparability_problems`) make the
    official boards; the others are listed in ``left_out`` with their reasons
    and, with ``include_unofficial``, scored as boards of their own, where a
    workload's records timed against different targets or budgets get a
    column each. ``sizes(workload, size)`` gives the defining ``api.Size``
    (default: this install's, :func:`installed_size`)."""
    if normalize and allow_mixed_hardware:
        raise UserInputError(
            "--normalize and --allow-mixed-hardware do not go together: --normalize already sets hardware "
            "classes side by side, in reference seconds; --allow-mixed-hardware pools raw seconds")
    if not isinstance(preset, Preset):
        preset = load_preset(preset)
    loaded = _loaded(dirs_or_records)
    trials, notes = _comparable_trials(loaded, sizes or installed_size)
    notes += _mixed_data_notes(trials[trials["board"] == OFFICIAL_BOARD])
    notes += _unofficial_notes(trials[trials["board"] == UNOFFICIAL_BOARD], include_unofficial)
    scoring_trials, normalize_notes = _scoring_trials(trials, allow_mixed_hardware, normalize, include_unofficial)
    notes += normalize_notes
    groups = _groups(trials, scoring_trials, preset, normalize)
    return Leaderboard(groups, trials, loaded.records, notes, allow_mixed_hardware, normalize, include_unofficial)


def _loaded(dirs_or_records: Sequence[str | Path] | Sequence[Mapping[str, Any]]) -> Loaded:
    """The records under the directories (:func:`load_records`), or copies of
    records already loaded, less those that cannot be scored (each with a warning)."""
    if not (dirs_or_records and isinstance(dirs_or_records[0], Mapping)):
        return load_records(dirs_or_records)
    notes, kept = [], []
    for i, rec in enumerate(dict(r) for r in dirs_or_records):
        problem = _record_problem(rec)
        if problem:
            notes.append(f"skipped {rec.get('_path', f'record {i}')}: {problem}")
        else:
            kept.append(rec)
    return Loaded(kept, notes)


def _comparable_trials(loaded: Loaded, lookup: Callable[[str, str], Any]) -> tuple[pd.DataFrame, list[str]]:
    """(trials_frame of the records, each with its board, the reason it is
    left out of the official ones and its terms; the warnings so far). A trial
    copied into two result folders counts once."""
    trials = trials_frame(loaded.records)
    reasons = ["; ".join(comparability_problems(rec, lookup(str(rec["workload"]), str(rec["size"])))) or None
               for rec in loaded.records]
    trials["left_out"] = pd.Series(reasons, index=trials.index, dtype=object)
    trials["board"] = [OFFICIAL_BOARD if reason is None else UNOFFICIAL_BOARD for reason in reasons]
    trials["terms"] = [record_terms(rec) for rec in loaded.records]
    notes = list(loaded.warnings)
    dup = trials["trial_id"].notna() & trials.duplicated(["ruleset", "hardware_id", "trial_id"])
    for path in trials.loc[dup, "path"]:
        notes.append(f"skipped {path}: duplicate of a trial already read (same trial_id)")
    return trials[~dup].reset_index(drop=True), notes


def _unofficial_notes(left: pd.DataFrame, include_unofficial: bool) -> list[str]:
    """The warnings about the records kept off the official boards: where they
    went, and, when they are not scored, how to score them."""
    measurements = left["not_a_trial"].astype(bool)
    notes = _left_out_notes(left[measurements], left["left_out"][measurements], "left out of every board")
    left = left[~measurements]
    if include_unofficial:
        return notes + _left_out_notes(left, left["left_out"],
                                       "scored on the unofficial board(s) instead of the official ones")
    notes += _left_out_notes(left, left["left_out"], "left out of the official board(s)")
    if not left.empty:
        notes.append(f"--unofficial scores the {len(left)} record(s) left out as boards of their own")
    return notes


def _scoring_trials(trials: pd.DataFrame, allow_mixed_hardware: bool, normalize: bool,
                    include_unofficial: bool) -> tuple[pd.DataFrame, list[str]]:
    """(the rows scored, same index as ``trials``, with the board each belongs
    to in its hardware_id and the seconds it is scored by; the warnings about
    rows that cannot be normalised)."""
    # A synthetic run, a study's point or a calibration run is a measurement, not a
    # timed attempt at the target (not_a_trial): listed as left out, never scored.
    scoring_trials = (trials[~trials["not_a_trial"].astype(bool)].copy() if include_unofficial
                      else trials[trials["board"] == OFFICIAL_BOARD].copy())
    notes: list[str] = []
    if allow_mixed_hardware:
        scoring_trials["hardware_id"] = MIXED
    if normalize:
        problems = _normalize_problems(scoring_trials)
        notes += _left_out_notes(scoring_trials, problems, "left out of the normalised board(s)")
        scoring_trials = scoring_trials[problems.isna()].copy()
        scoring_trials["hardware_id"] = scoring_trials["reference_hardware_id"].map(normalized_label)
        scoring_trials["time_to_target_s"] = scoring_trials["time_s_normalized"]
    return _split_by_terms(scoring_trials), notes


def _groups(trials: pd.DataFrame, scoring_trials: pd.DataFrame, preset: Preset, normalize: bool) -> list[Group]:
    """One scored group per (board, ruleset, hardware_id) of ``scoring_trials``."""
    keys = ("board", "ruleset", "hardware_id")
    per_workload = workload_times(study_times(scoring_trials, by=keys), by=keys)
    groups = []
    for (board_name, ruleset, hw), times in per_workload.groupby(list(keys), sort=True):
        mine = scoring_trials[(scoring_trials["board"] == board_name) & (scoring_trials["ruleset"] == ruleset)
                              & (scoring_trials["hardware_id"] == hw)]
        in_group = trials.loc[mine.index]
        result = score_times(times[["submission", "workload", "time_s"]], preset)
        official = in_group.groupby("submission")["official"].all().to_dict()
        groups.append(Group(ruleset, hw, sorted(in_group["hardware_id"].unique()), result,
                            times.reset_index(drop=True), official, records=len(in_group),
                            normalized_to=str(in_group["reference_hardware_id"].iloc[0]) if normalize else None,
                            board=board_name))
    return groups


def _split_by_terms(trials: pd.DataFrame) -> pd.DataFrame:
    """On unofficial boards, a workload whose records were timed against
    different targets or budgets gets one column per set of terms, named
    ``<workload> [<terms>]``: such times are never pooled."""
    trials = trials.copy()
    other = trials[trials["board"] == UNOFFICIAL_BOARD]
    for _, g in other.groupby(["ruleset", "hardware_id", "workload"], sort=False):
        if g["terms"].nunique() > 1:
            trials.loc[g.index, "workload"] = [f"{w} [{t}]" for w, t in zip(g["workload"], g["terms"])]
    return trials


def _normalize_problems(trials: pd.DataFrame) -> pd.Series:
    """Per trials_frame row: why it cannot be normalised, or None."""
    def text(value: Any) -> str | None:  # pandas reads a missing string as nan
        return value if isinstance(value, str) else None

    problems = [normalize_problem(text(basis), text(ref), None if math.isnan(factor) else factor)
                for basis, ref, factor in zip(trials["budget_basis"], trials["reference_hardware_id"],
                                              trials["speed_factor"].astype(float))]
    return pd.Series(problems, index=trials.index, dtype=object)


def _left_out_notes(trials: pd.DataFrame, problems: pd.Series, what: str, shown: int = 3) -> list[str]:
    """Per ruleset and reason, the records left out of some boards (``what``),
    counted, with the first few paths."""
    notes = []
    left = trials.assign(reason=problems).dropna(subset=["reason"])
    for (ruleset, reason), g in left.groupby(["ruleset", "reason"], sort=True):
        paths = [p for p in g["path"].head(shown) if isinstance(p, str)]
        more = f" and {len(g) - shown} more" if len(g) > shown else ""
        where = f" ({', '.join(paths)}{more})" if paths else ""
        notes.append(f"{what} of ruleset {ruleset}: {len(g)} record(s), {reason}{where}")
    return notes


def _mixed_data_notes(trials: pd.DataFrame) -> list[str]:
    """A workload whose records name different data (Task.data_sha256) is
    compared across datasets: say so, as loudly as mixed hardware."""
    notes = []
    known = trials.dropna(subset=["data_sha256"])
    for workload, digests in known.groupby("workload")["data_sha256"]:
        distinct = sorted(digests.unique())
        if len(distinct) > 1:
            shown = ", ".join(d[:12] for d in distinct)
            notes.append(f"records of {workload} name {len(distinct)} different datasets (data_sha256 {shown}): "
                         "their times were measured on different data")
    return notes


# --------------------------------------------------------------------------- #
# Output files                                                                 #
# --------------------------------------------------------------------------- #


def flatten_records(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Every record as one flat row (pandas.json_normalize), parquet-safe.

    ``config`` and ``fingerprint`` are large nested blobs: the fingerprint is
    reduced to ``hardware_id`` (the class the board groups by, legacy records
    labelled so) plus a few readable fields, the config dropped
    (everything scoring needs is elsewhere in the record); tracebacks dropped.
    ``speed_factor`` and ``time_s_normalized`` are added as in :func:`trials_frame`.
    """
    slim = []
    for full in records:
        rec = {k: v for k, v in full.items() if k not in ("config", "fingerprint")}
        rec["hardware_id"] = record_hardware_class(full.get("fingerprint"))
        rec["label"] = submission_label(full)
        _, _, factor = _budget_speed(full)
        reached = full.get("status") == Status.REACHED
        rec["speed_factor"] = factor if factor is not None else math.nan
        rec["time_s_normalized"] = _normalized_time(_as_float(full.get("time_to_target_s")) if reached else None, factor)
        if isinstance(rec.get("error"), dict):
            rec["error"] = {k: v for k, v in rec["error"].items() if k != "traceback"}
        rec["path"] = rec.pop("_path", None)
        rec.pop("_unsealed", None)
        slim.append(rec)
    df = pd.json_normalize(slim) if slim else pd.DataFrame()
    return _parquet_safe(df)


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Make object columns one Arrow type: numbers stay numbers ("inf" strings
    from JSON become floats), lists/dicts become JSON text, the rest strings."""
    df = df.copy()
    for col in df.columns:
        if df[col].dtype != object:
            continue
        values = [v for v in df[col] if v is not None and not (isinstance(v, float) and math.isnan(v))]
        kinds = {type(v) for v in values}
        if not kinds or kinds <= {str}:
            continue
        if kinds <= {bool}:
            df[col] = df[col].astype("boolean")
        elif kinds <= {int, float, str} and all(not isinstance(v, str) or _as_float(v) is not None for v in values):
            df[col] = pd.to_numeric(df[col].map(lambda v: _as_float(v) if v is not None else None), errors="coerce")
        else:
            df[col] = df[col].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v))
                                  else v if isinstance(v, str) else json.dumps(v, default=str))
    return df


def plot_profiles(groups: Sequence[Group], path: Path) -> Path:
    """Performance profiles, one panel per (ruleset, hardware) group."""
    import matplotlib

    matplotlib.use("Agg", force=True)  # files only: no display needed
    import matplotlib.pyplot as plt

    n = max(1, len(groups))
    fig, axes = plt.subplots(1, n, figsize=(8.5 * n, 4.5), squeeze=False)
    for ax, g in zip(axes[0], groups):
        for sub in g.result.scores.index:  # legend in score order
            rho = g.result.profile.loc[sub]
            # straight lines between grid points: the curve the trapezoid rule integrates
            ax.plot(rho.index.to_numpy(float), rho.to_numpy(float), label=f"{sub} ({g.result.scores[sub]:.4f})",
                    linewidth=1.8, alpha=0.85)
        title = [f"ruleset {g.ruleset}"] if g.ruleset else []
        if g.normalized:
            title.append(f"{g.hardware_id}: {', '.join(g.hardware_ids)}")
        elif g.mixed_hardware:
            title.append(f"mixed hardware: {', '.join(g.hardware_ids)}")
        elif g.hardware_ids:
            title.append(g.hardware_id)
        if g.result.preset.name != DEFAULT_PRESET.name:
            title.append(f"preset {g.result.preset.name}")
        ax.set_title(" · ".join(title) or "performance profile", fontsize=10)
        ax.set_xlabel("tau (time / fastest time on the workload)" if not g.normalized
                      else f"tau (time in {g.normalized_to} seconds / fastest, approximate)")
        ax.set_ylabel(f"share of the {len(g.result.base_workloads)} base workloads within tau")
        ax.set_xlim(1.0, g.result.preset.max_tau)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(title="submission (score)", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if not groups:
        axes[0][0].text(0.5, 0.5, "no finished records", ha="center", va="center")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_leaderboard(board: Leaderboard, out_dir: str | Path) -> dict[str, Path]:
    """scores.csv, time_to_target.csv, profile.csv, profile.png, trials.parquet,
    and left_out.csv (the records kept off the official boards, with why)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("scores.csv", "time_to_target.csv", "profile.csv", "profile.png",
                                           "trials.parquet", "left_out.csv")}
    board.scores.to_csv(paths["scores.csv"], index=False)
    board.left_out.to_csv(paths["left_out.csv"], index=False)
    board.time_to_target.to_csv(paths["time_to_target.csv"], index=False)
    board.profile.to_csv(paths["profile.csv"], index=False)
    plot_profiles(board.groups, paths["profile.png"])
    flat = flatten_records(board.records)
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        flat.to_parquet(paths["trials.parquet"], index=False)
    return paths


def write_scores(results: Mapping[str, Scores], out_dir: str | Path) -> dict[str, Path]:
    """For ``--times`` tables: scores.csv, profile.csv and profile.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = [Group(ruleset, "-", [], res, pd.DataFrame(), {}) for ruleset, res in results.items()]
    board = Leaderboard(groups, pd.DataFrame(), [], [])
    paths = {"scores.csv": out / "scores.csv", "profile.csv": out / "profile.csv", "profile.png": out / "profile.png"}
    scores = board.scores.drop(columns=["board", "hardware_id", "mixed_hardware", "hardware_ids", "official"])
    scores.to_csv(paths["scores.csv"], index=False)
    board.profile.drop(columns=["board", "hardware_id"]).to_csv(paths["profile.csv"], index=False)
    plot_profiles(groups, paths["profile.png"])
    return paths


__all__ = [
    "Preset", "Scores", "Leaderboard", "Group", "load_preset", "available_presets", "score_times",
    "score_times_csv", "read_times_csv", "load_records", "trials_frame", "study_times", "workload_times",
    "score_records", "write_leaderboard", "write_scores", "plot_profiles", "flatten_records",
    "normalize_problem", "normalized_label", "comparability_problems", "record_terms", "installed_size",
    "OFFICIAL_BOARD", "UNOFFICIAL_BOARD",
]
