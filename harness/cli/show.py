"""``bench show NAME``: everything optbench knows about one submission or workload.

A submission: kind, description, paper, DEFAULTS, SEARCH_SPACE, sites (norms),
origin, source and sha256. A workload: description, default optimizer and
norm, norm sites and, per size, dataset, model, batch, target, budget, eval
cadence, step hint, device and how the target and budget were calibrated.

Metadata only: a submission's literal metadata is read from its source
(harness.plugins.registry) and a workload's WorkloadInfo is torch-free, so
``bench show`` never imports torch.
"""

from __future__ import annotations

import json
from typing import Any

import typer
from typer.core import TyperCommand

from harness.cli.app import _help_defaults_to_false, app, console, user_errors

ORIGINS = {"builtin": "built-in", "file": "file", "entry_point": "entry point", "module": "module", "python": "Python"}


def submission_info(plugin: Any, registry: Any) -> dict[str, Any]:
    """What ``bench show`` says of a submission, as plain data."""
    meta = plugin.meta
    sites = list(meta.get("SITES", ()) or ())
    kind = meta.get("KIND", "?")
    workloads = sorted(
        w for w, e in registry.workloads.items() if kind != "norm" or all(s in sites for s in e.info.norm_sites)
    )
    return {
        "type": "submission",
        "name": plugin.name,
        "kind": kind,
        "description": meta.get("DESCRIPTION", ""),
        "paper": meta.get("PAPER", ""),
        "defaults": dict(meta.get("DEFAULTS") or {}),
        "search_space": meta.get("SEARCH_SPACE") or {},
        "sites": sites,
        "workloads": workloads,
        "origin": plugin.origin,
        "target": plugin.target,
        "distribution": plugin.distribution,
        "version": plugin.version,
        "source": str(plugin.source) if plugin.source else None,
        "sha256": plugin.sha256,
    }


def workload_info(entry: Any) -> dict[str, Any]:
    """What ``bench show`` says of a workload, as plain data."""
    info = entry.info
    sizes = []
    for size in info.sizes.values():
        t = size.target
        setting = dict(size.target_setting) if size.target_setting else None
        sizes.append({
            "size": size.name,
            "description": size.description,
            "dataset": size.dataset,
            "model": size.model,
            "batch_size": size.batch_size,
            "target": {"metric": f"validation/{t.metric}", "direction": t.direction, "sign": t.sign,
                       "value": t.validation, "test_value": t.test},
            "budget": {
                "basis": "reference_work" if size.reference_steps is not None else "fixed",
                "reference_steps": size.reference_steps,
                "budget_steps": size.budget_steps,
                "max_runtime_s": size.max_runtime_s,
                "calibration_hardware_id": (setting or {}).get("hardware_id"),
                "max_steps": size.max_steps,
            },
            "eval_every_steps": size.eval_every_steps,
            "eval_every_s": size.eval_every_s,
            "step_hint": size.step_hint,
            "device": size.device,
            "calibration": size.calibration,
            "target_setting": setting,
        })
    return {
        "type": "workload",
        "name": info.name,
        "description": info.description,
        "default_optimizer": info.default_optimizer,
        "default_norm": info.default_norm,
        "norm_sites": list(info.norm_sites),
        "variants": {k: dict(v) for k, v in info.variants.items()},
        "hyperparameters": list(info.takes()),
        "origin": entry.origin,
        "source": entry.source,
        "distribution": entry.distribution,
        "version": entry.version,
        "sizes": sizes,
    }


def _looks_like_path(name: str) -> bool:
    return name.endswith(".py") or "/" in name or "\\" in name or ":" in name


def lookup(name: str) -> list[dict[str, Any]]:
    """``name`` as a submission, a workload, or both; an unknown name gets "did you mean"."""
    from harness.errors import unknown
    from harness.plugins.registry import Registry

    registry = Registry()
    found = []
    if _looks_like_path(name) or name in registry.submissions:
        found.append(submission_info(registry.submission(name), registry))
    if name in registry.workloads:
        found.append(workload_info(registry.workloads[name]))
    if not found:
        raise unknown("submission or workload", name, [*registry.submissions, *registry.workloads])
    return found


# --------------------------------------------------------------------------- #
# Text                                                                         #
# --------------------------------------------------------------------------- #


def _origin(d: dict[str, Any]) -> str:
    origin = ORIGINS.get(d["origin"], d["origin"])
    if d["origin"] == "entry_point":
        dist = f"{d['distribution']} {d['version']}" if d.get("distribution") else "an unknown distribution"
        origin += f" {d.get('target') or d.get('source')} of {dist}"
    elif d["origin"] == "module" and d.get("target"):
        origin += f" {d['target']}"
    return origin


def _space_entry(spec: Any) -> str:
    if not isinstance(spec, dict):
        return repr(spec)
    if "feasible_points" in spec:
        return "one of " + ", ".join(_value(p) for p in spec["feasible_points"])
    return f"{spec.get('scaling', 'linear')} [{_value(spec.get('min'))}, {_value(spec.get('max'))}]"


def _value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    return repr(v) if isinstance(v, str) else str(v)


def _lines_submission(d: dict[str, Any]) -> list[str]:
    lines = [f"{d['name']} · {d['kind']} submission"]
    rows = [("description", d["description"] or "—"), ("paper", d["paper"] or "—"), ("origin", _origin(d)),
            ("source", d["source"] or "—"), ("sha256", d["sha256"] or "—")]
    if d["kind"] == "norm":
        rows.append(("sites", ", ".join(d["sites"]) or "none"))
    rows.append(("workloads", ", ".join(d["workloads"]) or "none"))
    width = max(len(k) for k, _ in rows)
    lines += [f"  {k.ljust(width)}  {v}" for k, v in rows]
    defaults, space = d["defaults"], d["search_space"]
    lines.append("  DEFAULTS" + ("" if defaults else "  (none)"))
    if defaults:
        w = max(len(k) for k in defaults)
        lines += [f"    {k.ljust(w)}  {_value(v)}" for k, v in defaults.items()]
    if isinstance(space, list):
        lines.append(f"  SEARCH_SPACE  {len(space)} fixed points")
        lines += [f"    {json.dumps(p, default=str)}" for p in space]
    else:
        lines.append("  SEARCH_SPACE" + ("" if space else "  (none: bench tune runs DEFAULTS)"))
        if space:
            w = max(len(k) for k in space)
            lines += [f"    {k.ljust(w)}  {_space_entry(spec)}" for k, spec in space.items()]
    example = (d["workloads"] or ["<workload>"])[0]
    lines.append(f"  try: bench run -s {d['name']} -w {example} --size tiny · bench tune -s {d['name']} -w {example} --size tiny")
    return lines


def _budget(b: dict[str, Any]) -> str:
    if b["basis"] == "reference_work":
        where = f" on {b['calibration_hardware_id']}" if b.get("calibration_hardware_id") else " on the calibration's class"
        text = (f"{b['budget_steps']} tuned-baseline steps (reference steps {b['reference_steps']}); "
                f"{b['max_runtime_s']:g} s{where}, in each machine's own seconds elsewhere")
    else:
        text = f"{b['max_runtime_s']:g} timed s"
    if b.get("max_steps"):
        text += f" or {b['max_steps']} steps"
    return text


def _lines_workload(d: dict[str, Any]) -> list[str]:
    lines = [f"{d['name']} · workload"]
    rows = [("description", d["description"] or "—"), ("origin", f"{_origin(d)} ({d['source']})"),
            ("default optimizer", d["default_optimizer"]), ("default norm", d["default_norm"]),
            ("norm sites", ", ".join(d["norm_sites"]) or "none"),
            ("variants", "; ".join(f"{k} {v}" for k, v in d["variants"].items()) or "none"),
            ("hyperparameters", ", ".join(d.get("hyperparameters") or []) or "none")]
    width = max(len(k) for k, _ in rows)
    lines += [f"  {k.ljust(width)}  {v}" for k, v in rows]
    for s in d["sizes"]:
        t = s["target"]
        target = f"{t['metric']} {t['sign']} {t['value']:g}"
        if t["test_value"] is not None:
            target += f" (test target {t['sign']} {t['test_value']:g}, reported)"
        every = f"{s['eval_every_steps']} steps" if s["eval_every_steps"] else f"{s['eval_every_s']:g} timed s"
        rows = [("dataset", s["dataset"]), ("model", s["model"]), ("batch size", str(s["batch_size"])),
                ("target", target), ("budget", _budget(s["budget"])), ("eval every", every),
                ("step hint", str(s["step_hint"])), ("device", s["device"]),
                ("calibration", s["calibration"] or "—")]
        setting = s.get("target_setting")
        if setting and setting.get("optimizer"):
            hp = ", ".join(f"{k}={_value(v)}" for k, v in (setting.get("hyperparameters") or {}).items())
            rows.append(("tuned baseline", f"{setting['optimizer']}" + (f" ({hp})" if hp else "")))
        lines.append(f"  size {s['size']}: {s['description']}")
        width = max(len(k) for k, _ in rows)
        lines += [f"    {k.ljust(width)}  {v}" for k, v in rows]
    return lines


@app.command("show", cls=_help_defaults_to_false(TyperCommand))
def show(
    name: str = typer.Argument(..., help="A submission (name, ./file.py or module:attr) or a workload."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """A submission's paper, DEFAULTS, SEARCH_SPACE, sites, origin and sha256; a workload's sizes, targets, budgets and calibration."""
    with user_errors():
        found = lookup(name)
    if as_json:
        print(json.dumps(found[0] if len(found) == 1 else found, indent=2, default=str))
        return
    for i, d in enumerate(found):
        if i:
            console.print()
        lines = _lines_submission(d) if d["type"] == "submission" else _lines_workload(d)
        for line in lines:
            console.print(line, markup=False, highlight=False, soft_wrap=True)


__all__ = ["show", "lookup", "submission_info", "workload_info"]
