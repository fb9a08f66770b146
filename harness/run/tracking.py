"""Experiment tracking with Weights & Biases, optional and off the timed path.

Turned on with ``bench run --wandb`` / ``bench tune --wandb`` or the override
``logging.wandb=true``. A tracked run sends, from rank 0 only:

* at start (untimed set-up): the composed config, the submission / optimizer /
  norm provenance (name, origin, source sha256), the hyperparameters, the
  hardware fingerprint, the workload's target and budget, and the sweep block;
* at every evaluation (untimed): the metrics row the run writes to
  ``metrics.jsonl`` (``train/loss``, ``validation/...``, ``timed_s``, ``lr``),
  with ``step`` as wandb's step;
* at the end: status, reason, time- and steps-to-target into the run summary.

Nothing is sent per training step, and wandb's system-metrics sampler and
console capture are off, so tracking costs the timed loop nothing. All runs of
one sweep share a wandb group, the sweep's ``sweep_id``.

With no API key (no ``WANDB_API_KEY`` and no ``api.wandb.ai`` entry in
``~/.netrc``) the run is logged **offline** into ``<run dir>/wandb/`` and the
tracker says so, with the ``wandb sync`` command that uploads it later.
``WANDB_MODE`` (online / offline / disabled), when set, wins. wandb is never
required: if it is missing or fails, the run goes on untracked with a warning.
"""

from __future__ import annotations

import netrc
import os
import sys
from pathlib import Path
from typing import Any

from harness.api import Status


def wandb_enabled(config: dict[str, Any]) -> bool:
    return bool((config.get("logging") or {}).get("wandb", False))


def has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_mode() -> str:
    """online | offline | disabled: ``WANDB_MODE`` if set, else online only with a key."""
    explicit = os.environ.get("WANDB_MODE", "").strip().lower()
    if explicit in ("online", "offline", "disabled"):
        return explicit
    if explicit == "dryrun":
        return "offline"
    return "online" if has_api_key() else "offline"


def _warn(message: str) -> None:
    print(f"wandb: {message}", file=sys.stderr, flush=True)


class Tee:
    """Several runner observers as one."""

    def __init__(self, *observers: Any) -> None:
        self.observers = [o for o in observers if o is not None]

    def on_start(self, plan, run_dir: Path) -> None:
        for o in self.observers:
            o.on_start(plan, run_dir)

    def on_eval(self, row: dict[str, Any]) -> None:
        for o in self.observers:
            o.on_eval(row)

    def on_end(self, record: dict[str, Any]) -> None:
        for o in self.observers:
            o.on_end(record)


class WandbTracker:
    """A runner observer that mirrors one run to wandb (see the module docstring)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.run = None

    def start(self, plan, run_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
        """Open the wandb run; return what the record stores under ``tracking``."""
        mode = wandb_mode()
        tuning = record.get("tuning") or {}
        group = tuning.get("sweep_id") or self.settings.get("wandb_group")
        info: dict[str, Any] = {"wandb": {"mode": mode, "project": self.settings.get("wandb_project"), "group": group}}
        if mode == "disabled":
            return info
        try:
            import wandb

            name = record["run_id"]
            if tuning:
                name = f"{tuning.get('label')} study{tuning.get('study')} trial{tuning.get('trial')}"
            self.run = wandb.init(
                project=self.settings.get("wandb_project") or "optbench",
                entity=self.settings.get("wandb_entity") or None,
                group=group,
                job_type="tune" if tuning else "run",
                name=name,
                tags=[f"{record['workload']}-{record['size']}", record["label"], *( [tuning["ruleset"]] if tuning else [])],
                dir=str(run_dir),
                mode=mode,
                config=_run_config(record),
                reinit="finish_previous",
                settings=wandb.Settings(
                    silent=True, console="off", save_code=False, disable_git=True,
                    x_disable_stats=True, init_timeout=float(self.settings.get("wandb_init_timeout_s") or 90),
                ),
            )
        except Exception as exc:  # wandb is never required for a run
            _warn(f"tracking off for this run: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
            self.run = None
            info["wandb"]["error"] = f"{type(exc).__name__}: {exc}"
            return info
        offline_dir = Path(self.run.dir).parent  # .../wandb/offline-run-<time>-<id>
        info["wandb"].update(run_id=self.run.id, dir=str(offline_dir),
                             url=self.run.url if mode == "online" else None)  # offline runs have none (wandb warns)
        if mode == "offline":
            why = "WANDB_MODE=offline" if os.environ.get("WANDB_MODE") else "no WANDB_API_KEY"
            _warn(f"offline ({why}): logging to {offline_dir}; upload later with: wandb sync {offline_dir}")
        else:
            _warn(f"tracking to {info['wandb']['url']}")
        return info

    def on_start(self, plan, run_dir: Path) -> None:
        pass

    def on_eval(self, row: dict[str, Any]) -> None:
        if self.run is None:
            return
        try:
            self.run.log({k: v for k, v in row.items() if v is not None}, step=int(row["step"]))
        except Exception as exc:
            _warn(f"log failed ({type(exc).__name__}: {exc}); tracking off for the rest of this run")
            self.run = None

    def on_end(self, record: dict[str, Any]) -> None:
        if self.run is None:
            return
        try:
            keys = ("status", "reason", "time_to_target_s", "steps_to_target", "timed_s", "eval_s", "steps", "evals", "official")
            self.run.summary.update({k: record.get(k) for k in keys})
            self.run.summary.update({f"final/{k}": v for k, v in (record.get("final_metrics") or {}).items()})
            status = Status.of(record.get("status"))
            self.run.finish(exit_code=0 if status and status.is_measurement else 1)
        except Exception as exc:
            _warn(f"finish failed: {type(exc).__name__}: {exc}")
        finally:
            self.run = None


def _run_config(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("workload", "size", "label", "submission", "optimizer", "norm", "hyperparameters", "seed", "target",
            "budget", "official", "deviations", "fingerprint", "distributed", "tuning", "execution", "config")
    return {k: record[k] for k in keys if k in record}


def for_run(config: dict[str, Any], record: dict[str, Any]) -> WandbTracker | None:
    """A tracker when the config asks for one, else None."""
    if not wandb_enabled(config):
        return None
    return WandbTracker(dict(config.get("logging") or {}))
