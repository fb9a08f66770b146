"""``bench run``, ``bench list``, ``bench hw`` and ``bench data``: one run,
what is installed, this machine, datasets. A thin layer over harness.run.

Import nothing heavy at module level: ``bench --help`` and ``bench list``
must answer without importing torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional

import typer
from typer.core import TyperCommand

from harness.api import Status, comparison_sign
from harness.cli.app import _help_defaults_to_false, app, console, data_app, err_console, user_errors


# --------------------------------------------------------------------------- #
# bench run                                                                    #
# --------------------------------------------------------------------------- #


class _RichObserver:
    """Progress bar and summary; called only at untimed eval boundaries."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]{task.fields[step]:>6}[/] steps"),
            BarColumn(),
            TextColumn("{task.completed:6.1f}/{task.total:.0f} timed s"),
            TextColumn("{task.fields[metric]}"),
            TimeElapsedColumn(),
            console=console,
            auto_refresh=False,  # redraw only at evals: no thread competing with training
        )
        self.task_id = None
        self.plan = None

    def on_start(self, plan, run_dir: Path) -> None:
        self.plan = plan
        self.progress.start()
        self.task_id = self.progress.add_task("train", total=plan.max_runtime_s, step=0, metric="waiting for first eval")
        self.progress.refresh()

    def on_eval(self, row: dict[str, Any]) -> None:
        target = self.plan.size.target
        key = f"validation/{target.metric}"
        value = row.get(key)
        goal = "no target: synthetic data" if self.plan.synthetic else f"target {target.sign} {target.validation:g}"
        text = f"{key} {value:.4f} ({goal})" if value is not None else ""
        self.progress.update(self.task_id, completed=min(row["timed_s"], self.plan.max_runtime_s), step=row["step"], metric=text)
        self.progress.refresh()

    def on_end(self, record: dict[str, Any]) -> None:
        self.progress.stop()


def _banner(plan, size_was_default: bool) -> None:
    info, size = plan.workload.info, plan.size
    target = size.target
    sign = target.sign
    why = ""
    if size_was_default:
        why = " (default: a CUDA device is present)" if size.name == "full" else " (default: no CUDA device; use --size full on a GPU)"
    console.print(
        f"[bold]optbench[/] · workload [cyan]{info.name}[/] size [cyan]{size.name}[/]{why}"
        + (f" · variant [cyan]{plan.variant}[/] {plan.variant_settings}" if plan.variant else "") + "\n"
        f"  optimizer [green]{plan.optimizer.name}[/] ({plan.optimizer.origin}) · norm [green]{plan.norm.name}[/] ({plan.norm.origin}) · seed {plan.seed}\n"
        + ("  no target (synthetic data)" if plan.synthetic else f"  target validation/{target.metric} {sign} {target.validation:g}")
        + f" · budget {_planned_budget(plan)}"
        + (f" or {plan.max_steps} steps" if plan.max_steps else "")
        + (f" · [yellow]unofficial: {', '.join(plan.deviations)}[/]" if plan.deviations else ""),
        highlight=False,
    )
    import os

    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world > 1:
        console.print(f"  DDP over {world} processes · batch {size.batch_size} = {world} x {size.batch_size // world} per process"
                      " · only rank 0 reports and writes", highlight=False)


def _planned_budget(plan) -> str:
    if plan.budget_basis == "reference_work":
        times = f" x {plan.budget_multiplier:g}" if plan.budget_multiplier != 1.0 else ""
        return (f"{plan.size.budget_steps} tuned-baseline steps{times} "
                f"(in this machine's seconds; {plan.max_runtime_s:g} s on the calibration's class)")
    return f"{plan.max_runtime_s:g} timed s"


def _hardware_line(rec: dict[str, Any], size) -> str:
    """This run's hardware class, and what it means for the official budget."""
    here = rec["fingerprint"].get("hardware_id", "?")
    pinned = rec.get("pinned_hardware_id")
    if pinned and pinned != here:
        return f"{here} [yellow](unofficial: this benchmark is pinned to {pinned})[/]"
    calibrated = (size.target_setting or {}).get("hardware_id")
    if calibrated and calibrated != here and rec["budget"].get("basis") != "reference_work":
        return f"{here} (the {size.name} budget was calibrated on {calibrated}; compare steps, not seconds)"
    return here


def _summary(result, size) -> None:
    from rich.table import Table

    from harness.run.diagnostics import describe as diagnostics_describe
    from harness.run.flops import describe as flops_describe
    from harness.run.speed import describe as speed_describe

    rec = result.record
    status = Status.of(rec["status"])
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("status", f"[{status.colour if status else 'white'}]{rec['status']}[/] — {rec['reason']}")
    frames = (rec.get("error") or {}).get("plugin_frames") or []
    if frames:  # where in the submission's own file it raised, innermost last
        table.add_row("raised in", "\n".join(frames))
    contended = (rec.get("timing") or {}).get("contended")
    if contended:
        table.add_row("timing", f"[yellow]{contended}: kept, but unofficial[/]")
    ttt = rec["time_to_target_s"]
    missed = "— (synthetic data: no target)" if rec.get("synthetic") else "— (missed)"
    table.add_row("time to target", f"{ttt:.2f} s" if ttt is not None else missed)
    table.add_row("steps to target", str(rec["steps_to_target"]) if rec["steps_to_target"] is not None else "—")
    target = rec.get("target") or {}
    if target.get("test_value") is not None:  # reported beside the time, as AlgoPerf: it never decides reached
        sign = comparison_sign(target.get("direction"))
        value = rec.get("test_value_at_target")
        if rec.get("test_target_met") is None:
            shown = "— (validation target not reached)"
        elif not isinstance(value, (int, float)):
            shown = f"missed (no test/{target.get('metric')}, target {sign} {target['test_value']:g})"
        elif rec["test_target_met"]:
            shown = f"met ({value:.4g} {sign} {target['test_value']:g})"
        else:
            shown = f"missed ({value:.4g}, target {sign} {target['test_value']:g})"
        table.add_row("test target", shown)
    table.add_row("timed / eval / set-up", f"{rec['timed_s']:.2f} s / {rec['eval_s']:.2f} s / {rec['setup_s']:.2f} s")
    table.add_row("steps / evals", f"{rec['steps']} / {rec['evals']}")
    table.add_row("budget", speed_describe(rec["budget"]))
    table.add_row("compute", flops_describe(rec.get("compute")))
    for key, value in sorted(rec.get("final_metrics", {}).items()):
        table.add_row(key, f"{value:.4f}")
    diagnostics = diagnostics_describe(rec.get("diagnostics"))
    if diagnostics:  # diagnostics=true: the last evaluation's figures (docs/diagnostics.md)
        table.add_row("diagnostics", diagnostics)
    table.add_row("hardware", _hardware_line(rec, size))
    table.add_row("record", str(result.run_dir))
    console.print(table)


@app.command()
def run(
    submission: Optional[str] = typer.Option(None, "--submission", "-s", help="Optimizer or norm: a name, a ./file.py, or module:attr. Default: the workload's baseline optimizer."),
    workload: str = typer.Option(..., "--workload", "-w", help="Workload family, e.g. cifar."),
    size: Optional[str] = typer.Option(None, "--size", help="tiny (CPU) or full (GPU). Default: full when CUDA is present, else tiny."),
    norm: Optional[str] = typer.Option(None, "--norm", help="Norm submission to pair with the optimizer. Default: the workload's."),
    seed: int = typer.Option(0, "--seed", help="Run seed; every random stream derives from it."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Results root [default: results, or output=...]."),
    experiment: str = typer.Option("runs", "--experiment", help="Results sub-directory grouping runs."),
    variant: Optional[str] = typer.Option(None, "--variant", help="A workload variant (bench list), e.g. qk_norm, or a+b: scored apart from the base workload (docs/variants.md)."),
    nproc: Optional[int] = typer.Option(None, "--nproc", help="Data-parallel processes on this machine: launches torchrun (DDP; one GPU each, or gloo on CPU). The workload's batch is split across them."),
    synthetic_data: bool = typer.Option(False, "--synthetic-data", help="Random inputs of the real shapes, made on the device: step time, memory and MFU of a full size with no dataset (unofficial, no target; docs/gpu.md). Same as data.synthetic=true."),
    wandb: bool = typer.Option(False, "--wandb", help="Track the run in Weights & Biases (offline into the run directory when no API key); same as logging.wandb=true."),
    overrides: Optional[List[str]] = typer.Argument(None, help="Config overrides key=value, e.g. optimizer.lr=3e-3 budget.max_steps=200."),
) -> None:
    """Train one submission on one workload and time it to the target."""
    import os

    overrides = [*(overrides or []), *(["logging.wandb=true"] if wandb else []), *(["data.synthetic=true"] if synthetic_data else [])]
    quiet = os.environ.get("RANK", "0") != "0"  # under torchrun only rank 0 talks
    with user_errors():
        from harness.run import execute, plan_run

        plan = plan_run(
            workload, submission, size=size, norm=norm, seed=seed, output=output,
            experiment=experiment, overrides=overrides, variant=variant,
        )
        if nproc is not None and "WORLD_SIZE" not in os.environ:
            _launch_torchrun(plan, nproc, submission, norm, seed, output, experiment, overrides)
        if not quiet:
            _banner(plan, size_was_default=size is None)
        result = execute(plan, None if quiet else _RichObserver())
    if quiet:
        raise typer.Exit(result.exit_code)
    _summary(result, plan.size)
    if result.status == "error":
        from rich.markup import escape

        err_console.print(f"[bold red]error:[/] {escape(result.record['reason'])}", highlight=False, soft_wrap=True)
    raise typer.Exit(result.exit_code)


def _launch_torchrun(plan, nproc, submission, norm, seed, output, experiment, overrides) -> None:
    """``bench run --nproc N``: the same run under torchrun, then exit with its code."""
    import os
    import subprocess

    from harness.run.distributed import check_batch, torchrun_command

    check_batch(plan.size.batch_size, nproc)
    args = ["run", "--workload", plan.workload.info.name, "--size", plan.size.name, "--seed", str(seed),
            "--output", str(plan.config["output"]), "--experiment", experiment]
    args += ["--submission", submission] if submission else []
    args += ["--norm", norm] if norm else []
    args += ["--variant", plan.variant] if plan.variant else []
    cmd = torchrun_command(nproc, [*args, *overrides])
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:  # the node's cores, shared (torchrun would say 1 and warn)
        from harness.common.seeding import default_threads

        env["OMP_NUM_THREADS"] = str(max(1, default_threads() // nproc))
    console.print(f"launching {nproc} process{'es' if nproc != 1 else ''}: torchrun --standalone --nproc_per_node={nproc} "
                  f"(OMP_NUM_THREADS={env['OMP_NUM_THREADS']})", highlight=False)
    raise typer.Exit(subprocess.run(cmd, env=env).returncode)


# --------------------------------------------------------------------------- #
# bench list                                                                   #
# --------------------------------------------------------------------------- #


def _listing() -> dict[str, Any]:
    from harness.plugins.registry import Registry

    registry = Registry()
    workloads = []
    for name, entry in sorted(registry.workloads.items()):
        info = entry.info
        for size in info.sizes.values():
            t = size.target
            workloads.append({
                "workload": name, "size": size.name, "origin": entry.origin, "dataset": size.dataset,
                "model": size.model, "batch_size": size.batch_size, "device": size.device,
                "target": {"metric": f"validation/{t.metric}", "direction": t.direction, "value": t.validation, "test_value": t.test},
                "max_runtime_s": size.max_runtime_s, "step_hint": size.step_hint,
                # a tiny size's budget is reference work; max_runtime_s is then its seconds on the calibration's class
                "reference_steps": size.reference_steps, "budget_steps": size.budget_steps,
                "eval_every_steps": size.eval_every_steps, "eval_every_s": size.eval_every_s,
                "max_steps": size.max_steps, "norm_sites": list(info.norm_sites),
                "default_optimizer": info.default_optimizer, "default_norm": info.default_norm,
                "hyperparameters": list(info.takes()),
                "calibration": size.calibration,
                "target_setting": dict(size.target_setting) if size.target_setting else None,
                "variants": {k: dict(v) for k, v in info.variants.items()},
            })
    submissions = []
    for name, plugin in sorted(registry.submissions.items()):
        try:
            meta = plugin.meta
        except Exception as exc:  # a broken plugin is listed, not fatal
            submissions.append({"name": name, "kind": "?", "origin": plugin.origin, "error": str(exc)})
            continue
        sites = list(meta.get("SITES", ()))
        applies = sorted(
            w for w, e in registry.workloads.items()
            if meta.get("KIND") != "norm" or all(s in sites for s in e.info.norm_sites)
        )
        submissions.append({
            "name": name, "kind": meta.get("KIND", "?"), "origin": plugin.origin,
            "source": str(plugin.source) if plugin.source else plugin.target,
            "distribution": plugin.distribution, "version": plugin.version,
            "description": meta.get("DESCRIPTION", ""), "paper": meta.get("PAPER", ""),
            "sites": sites, "workloads": applies, "format": meta.get("FORMAT", "optbench"),
        })
    return {"workloads": workloads, "submissions": submissions, "name_clashes": registry.clashes}


def _listed_budget(w: dict[str, Any]) -> str:
    if w["reference_steps"] is None:
        return f"{w['max_runtime_s']:g} s"
    return f"{w['budget_steps']} baseline steps ({w['max_runtime_s']:g} s on the calibration's class)"


@app.command("list", cls=_help_defaults_to_false(TyperCommand))
def list_(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Workloads with their sizes, targets and budgets; submissions with kind and origin."""
    with user_errors():
        listing = _listing()
    if as_json:
        print(json.dumps(listing, indent=2))
        return
    from rich.table import Table

    table = Table(title="Workloads", title_justify="left")
    for col in ("workload", "size", "dataset · model", "batch", "target", "budget", "eval every", "step hint", "device"):
        table.add_column(col, overflow="fold")
    for w in listing["workloads"]:
        t = w["target"]
        sign = comparison_sign(t["direction"])
        every = f"{w['eval_every_steps']} steps" if w["eval_every_steps"] else f"{w['eval_every_s']:g} s"
        variants = f" (variants: {', '.join(w['variants'])})" if w["variants"] else ""
        table.add_row(w["workload"] + variants, w["size"], f"{w['dataset']} · {w['model']}", str(w["batch_size"]),
                      f"{t['metric']} {sign} {t['value']:g}", _listed_budget(w), every,
                      str(w["step_hint"]), w["device"])
    console.print(table)
    takes = {w["workload"]: ", ".join(w["hyperparameters"]) for w in listing["workloads"]}
    console.print("Workload hyperparameters (optimizer.NAME=... or in a search space): "
                  + "; ".join(f"{name}: {names}" for name, names in takes.items()), highlight=False)
    table = Table(title="Submissions", title_justify="left")
    for col in ("name", "kind", "origin", "sites / workloads", "description"):
        table.add_column(col, overflow="fold")
    for s in listing["submissions"]:
        where = ", ".join(s.get("workloads", []))
        if s.get("sites"):
            where = f"sites {', '.join(s['sites'])} → {where or 'none'}"
        origin = s["origin"] if s["origin"] != "entry_point" else f"entry point ({s.get('distribution')} {s.get('version')})"
        kind = f"{s['kind']} (AlgoPerf)" if s.get("format") == "algoperf" else s["kind"]
        table.add_row(s["name"], kind, origin, where, s.get("description", "") or s.get("error", ""))
    console.print(table)
    for name, origins in listing["name_clashes"].items():
        err_console.print(f"[yellow]warning:[/] submission {name!r} is defined twice: {' and '.join(origins)}")


# --------------------------------------------------------------------------- #
# bench hw, bench data                                                         #
# --------------------------------------------------------------------------- #


@app.command()
def hw(
    as_json: bool = typer.Option(False, "--json", help="The full fingerprint as JSON."),
    speed: bool = typer.Option(False, "--speed", help="Also each tiny size's step time here, speed factor and budget in this machine's seconds (measured once per class, then cached)."),
    remeasure: bool = typer.Option(False, "--remeasure", help="With --speed: measure again instead of reading the cache."),
) -> None:
    """The hardware/software fingerprint stored in every record, its hardware_id and the fields that define it."""
    import torch
    from rich.table import Table

    from harness.run import fingerprint
    from harness.common.seeding import default_threads

    # Threads are part of the class: show the class a default `bench run` here
    # records (the runner sets this many before it fingerprints).
    torch.set_num_threads(default_threads())
    fp = fingerprint.collect()
    if as_json:
        print(json.dumps(fp, indent=2, default=str))
        return
    console.print(fingerprint.summary(fp), highlight=False)
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", overflow="fold")
    table.add_column(overflow="fold")
    for label, value in fingerprint.class_rows(fp):
        table.add_row(label, value)
    console.print(table, highlight=False)
    if speed:
        with user_errors():
            _speed_table(fp, default_threads(), remeasure)


def _speed_table(fp: dict[str, Any], threads: int, remeasure: bool) -> None:
    """Every reference-work size's budget on this machine (bench hw --speed)."""
    import torch
    from rich.table import Table

    from harness.plugins.registry import Registry
    from harness.run.build import resolve_data_dir
    from harness.run.speed import local_budget, local_speed

    table = Table(title=f"budgets on {fp.get('hardware_id')} ({threads} threads)")
    for col in ("workload", "size", "ms/step here", "ms/step reference", "speed factor", "budget steps", "budget here", "budget reference", "step time"):
        table.add_column(col, justify="left" if col in ("workload", "size", "step time") else "right", overflow="fold")
    registry = Registry()
    for name, entry in sorted(registry.workloads.items()):
        for size in entry.info.sizes.values():
            if size.reference_steps is None:
                continue
            measured = local_speed(entry, size, threads=threads, device=torch.device("cpu"), data_dir=resolve_data_dir({}),
                                   hardware_id=fp.get("hardware_id"), registry=registry, remeasure=remeasure)
            b = local_budget(size, measured)
            ref = b["reference_s_per_step"]
            table.add_row(name, size.name, f"{measured.s_per_step * 1000:.1f}", f"{ref * 1000:.1f}" if ref else "—",
                          f"{b['speed_factor']:.2f}" if b["speed_factor"] else "—", str(b["budget_steps"]),
                          f"{b['max_runtime_s']:.1f} s", f"{b['reference_max_runtime_s']:g} s on {b['reference_hardware_id']}",
                          ("cached " if measured.cached else "measured ") + measured.measured_at
                          + (" beside other work, not cached" if measured.contended else ""))
    console.print(table)


@data_app.command("prepare")
def data_prepare(
    workload: str = typer.Argument(..., help="Workload whose dataset to fetch, e.g. cifar."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Default: $OPTBENCH_DATA or ~/.cache/optbench."),
) -> None:
    """Download and verify a workload's dataset (needs internet)."""
    with user_errors():
        import importlib

        from harness.errors import UserInputError
        from harness.plugins.registry import Registry
        from harness.run.build import resolve_data_dir

        entry = Registry().workload(workload)
        if not entry.info.prepare:
            raise UserInputError(f"workload {workload!r} needs no preparation (its data ships with the code or is generated)")
        module, _, fn = entry.info.prepare.partition(":")
        root = resolve_data_dir({"data_dir": str(data_dir) if data_dir else None})
        path = getattr(importlib.import_module(module), fn)(root)
        console.print(f"ready: {path}")
