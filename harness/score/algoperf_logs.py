"""AlgoPerf's own logs, scored by optbench's scorer (``bench score --algoperf-logs DIR``).

AlgoPerf writes one ``eval_measurements.csv`` per trial, in the layout
``<submission>/study_<k>/<workload>_<framework>/trial_<j>/eval_measurements.csv``
(algoperf's submission_runner and scoring/scoring_utils.py). Each row is one
evaluation; ``score`` (= ``accumulated_submission_time``) is the timed
submission time in seconds.

The time of a submission on a workload follows AlgoPerf's scoring code
(scoring/performance_profile.py, ``get_workloads_time_to_target`` and
``get_best_trial_index``), so the times, and the scores optbench computes
from them, are AlgoPerf's:

* per study, the trial that meets the validation target at the earliest
  evaluation (index) wins, and its ``score`` at that evaluation is the study's
  time; a study where no trial meets it is a miss (inf);
* a target is met when the metric is at least the target (at most, for error
  rates and losses): AlgoPerf's log scoring compares inclusively, where
  optbench's runner asks for strictly better;
* the workload's time is the median over studies.

Targets are AlgoPerf v0.5's validation targets (:data:`TARGETS`, read from
algoperf/workloads/*/workload.py and the held-out variants' pytorch classes).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import UserInputError

MEASUREMENTS = "eval_measurements.csv"
TIME_COLUMNS = ("score", "accumulated_submission_time")
_WORKLOAD_DIR = re.compile(r"^(.*)_(jax|pytorch)$")

# workload -> (validation metric, target, direction): AlgoPerf v0.5.
TARGETS: dict[str, tuple[str, float, str]] = {
    "criteo1tb": ("loss", 0.123735, "min"),
    "criteo1tb_layernorm": ("loss", 0.123757, "min"),
    "criteo1tb_resnet": ("loss", 0.12415, "min"),
    "criteo1tb_embed_init": ("loss", 0.129657, "min"),
    "fastmri": ("ssim", 0.723653, "max"),
    "fastmri_model_size": ("ssim", 0.723559, "max"),
    "fastmri_tanh": ("ssim", 0.717840, "max"),
    "fastmri_layernorm": ("ssim", 0.723284, "max"),
    "imagenet_resnet": ("accuracy", 1 - 0.22569, "max"),
    "imagenet_resnet_silu": ("accuracy", 0.75445, "max"),
    "imagenet_resnet_gelu": ("accuracy", 0.76765, "max"),
    "imagenet_resnet_large_bn_init": ("accuracy", 0.76526, "max"),
    "imagenet_vit": ("accuracy", 1 - 0.22691, "max"),
    "imagenet_vit_glu": ("accuracy", 0.75738, "max"),
    "imagenet_vit_post_ln": ("accuracy", 0.75312, "max"),
    "imagenet_vit_map": ("accuracy", 0.77113, "max"),
    "librispeech_conformer": ("wer", 0.085884, "min"),
    "librispeech_conformer_attention_temperature": ("wer", 0.109977, "min"),
    "librispeech_conformer_layernorm": ("wer", 0.09731, "min"),
    "librispeech_conformer_gelu": ("wer", 0.094114, "min"),
    "librispeech_deepspeech": ("wer", 0.119936, "min"),
    "librispeech_deepspeech_tanh": ("wer", 0.150883, "min"),
    "librispeech_deepspeech_no_resnet": ("wer", 0.131564, "min"),
    "librispeech_deepspeech_norm_and_spec_aug": ("wer", 0.14342, "min"),
    "ogbg": ("mean_average_precision", 0.28098, "max"),
    "ogbg_gelu": ("mean_average_precision", 0.27771, "max"),
    "ogbg_silu": ("mean_average_precision", 0.282178, "max"),
    "ogbg_model_size": ("mean_average_precision", 0.269446, "max"),
    "wmt": ("bleu", 30.8491, "max"),
    "wmt_post_ln": ("bleu", 30.0779, "max"),
    "wmt_attention_temp": ("bleu", 29.3379, "max"),
    "wmt_glu_tanh": ("bleu", 29.5779, "max"),
    "cifar": ("accuracy", 0.85, "max"),
    "mnist": ("accuracy", 0.97, "max"),
}


def trial_files(root: str | Path) -> list[tuple[str, str, str, str, Path]]:
    """(submission, workload, study, trial, file) of every trial under ``root``:
    a directory of submissions, or one submission's directory (holding study_*)."""
    root = Path(root)
    if not root.is_dir():
        raise UserInputError(f"AlgoPerf logs directory {str(root)!r} does not exist")
    found = []
    for path in sorted(root.rglob(MEASUREMENTS)):
        parts = path.relative_to(root).parts
        if len(parts) < 4 or not parts[-2].startswith("trial_") or not parts[-4].startswith("study_"):
            continue
        match = _WORKLOAD_DIR.match(parts[-3])
        workload = match.group(1) if match else parts[-3]
        submission = parts[-5] if len(parts) >= 5 else root.name
        found.append((submission, workload, parts[-4], parts[-2], path))
    if not found:
        raise UserInputError(f"no {MEASUREMENTS} under {root} in AlgoPerf's layout "
                             "(<submission>/study_<k>/<workload>_<framework>/trial_<j>/)")
    return found


def _reached_at(frame: pd.DataFrame, metric: str, target: float, direction: str) -> int | None:
    """The first evaluation index meeting the target (inclusive, as AlgoPerf's log scoring), or None."""
    column = f"validation/{metric}"
    if column not in frame:
        return None
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(float)
    met = values >= target if direction == "max" else values <= target
    met &= ~np.isnan(values)
    return int(np.argmax(met)) if met.any() else None


def _time_column(frame: pd.DataFrame, path: Path) -> str:
    for column in TIME_COLUMNS:
        if column in frame:
            return column
    raise UserInputError(f"{path}: no {' or '.join(TIME_COLUMNS)} column")


def times(root: str | Path, notes: list[str] | None = None) -> pd.DataFrame:
    """``submission, workload, time_s``: AlgoPerf's time to target per submission and workload."""
    notes = notes if notes is not None else []
    per_study: dict[tuple[str, str, str], list[tuple[int, float]]] = {}
    for submission, workload, study, trial, path in trial_files(root):
        if workload not in TARGETS:
            notes.append(f"skipped {path}: workload {workload!r} has no AlgoPerf v0.5 target here")
            continue
        frame = pd.read_csv(path)
        index = _reached_at(frame, *TARGETS[workload])
        entry = per_study.setdefault((submission, workload, study), [])
        if index is not None:
            entry.append((index, float(frame[_time_column(frame, path)].iloc[index])))
    rows: dict[tuple[str, str], list[float]] = {}
    for (submission, workload, _study), reached in sorted(per_study.items()):
        # AlgoPerf: the trial reaching at the earliest eval index (on a tie, here, the shorter time).
        rows.setdefault((submission, workload), []).append(min(reached)[1] if reached else math.inf)
    return pd.DataFrame([{"submission": s, "workload": w, "time_s": float(np.median(t))} for (s, w), t in rows.items()],
                        columns=["submission", "workload", "time_s"])


__all__ = ["TARGETS", "trial_files", "times", "MEASUREMENTS"]
