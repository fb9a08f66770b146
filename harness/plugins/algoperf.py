"""AlgoPerf submission modules, recognised and described without importing them.

An AlgoPerf PyTorch submission (mlcommons/algorithmic-efficiency) is a module
that defines ``init_optimizer_state``, ``update_params``, ``get_batch_size`` and
``data_selection`` (and optionally ``prepare_for_eval``), with its
hyperparameters in a ``tuning_search_space.json`` beside it. It has no
``KIND`` and no optbench metadata: the registry recognises it by those
top-level names in its source (``ast``, so ``bench list`` stays torch-free) and
this module turns that into the metadata of an ordinary optimizer plugin:

* ``SEARCH_SPACE``: the JSON, unchanged (``bench tune`` samples it);
* ``DEFAULTS``: one point of it, what ``bench run`` uses: each
  hyperparameter's first feasible point, or the log-midpoint of a log range
  (the linear midpoint of a linear one); a list-of-points space gives its
  first point. No JSON (a self-tuning submission): no hyperparameters, and the
  module is passed ``None`` as AlgoPerf passes it.

Loading runs the module under harness/plugins/algoperf_runtime.py, which
supplies what AlgoPerf's runner would (workload object, input queue, rng).
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Any

from harness.errors import PluginError

REQUIRED = ("init_optimizer_state", "update_params", "get_batch_size", "data_selection")
OPTIONAL = ("prepare_for_eval",)
SEARCH_SPACE_FILE = "tuning_search_space.json"
FRAMEWORK_DIRS = ("pytorch", "jax")
#: The key under which the registry's literal-metadata reader (and its cache)
#: keeps what it found of an AlgoPerf module: not a name a module can assign.
META_KEY = "<algoperf>"

#: AlgoPerf's names for optbench's workloads, as its ``get_batch_size`` knows
#: them (algoperf/workloads/workloads.py; ``lm`` is its language-model workload
#: on the lm_workload branch). Workloads AlgoPerf lacks get no call.
WORKLOAD_NAMES = {"cifar": "cifar", "gnn": "ogbg", "gpt": "lm"}


def scan(tree: ast.Module) -> dict[str, Any] | None:
    """What marks ``tree`` as an AlgoPerf module: ``{"functions": [...], "doc": ...}``
    when it binds any of AlgoPerf's submission functions at top level, else None."""
    bound: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Assign):
            bound |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    functions = [n for n in (*REQUIRED, *OPTIONAL) if n in bound]
    if not functions:
        return None
    doc = (ast.get_docstring(tree) or "").strip().splitlines()
    return {"functions": functions, "doc": doc[0] if doc else ""}


def is_algoperf(meta: dict[str, Any]) -> bool:
    return META_KEY in meta and "KIND" not in meta


def derived_meta(source: Path, found: dict[str, Any], label: str) -> dict[str, Any]:
    """The optimizer-plugin metadata of an AlgoPerf module at ``source``."""
    missing = [n for n in REQUIRED if n not in found.get("functions", ())]
    if missing:
        raise PluginError(
            f"{label}: an AlgoPerf submission defines {', '.join(REQUIRED)}; missing {', '.join(missing)}"
        )
    space = read_search_space(search_space_path(Path(source)), label)
    tuned = "external tuning" if space else "self-tuning"
    return {
        "KIND": "optimizer",
        "FORMAT": "algoperf",
        "DESCRIPTION": f"AlgoPerf submission ({tuned}): {found.get('doc') or Path(source).stem}",
        "PAPER": "",
        "DEFAULTS": default_point(space),
        "SEARCH_SPACE": space,
    }


def search_space_path(source: Path) -> Path:
    """``tuning_search_space.json`` beside the module, or, in AlgoPerf's own
    layout (``<algorithm>/pytorch/submission.py``), beside its framework folder."""
    here = source.parent / SEARCH_SPACE_FILE
    if not here.is_file() and source.parent.name in FRAMEWORK_DIRS:
        return source.parent.parent / SEARCH_SPACE_FILE
    return here


def plugin_name(source: Path) -> str:
    """The name runs are recorded under: the file's stem, or for AlgoPerf's
    ``<algorithm>/pytorch/submission.py`` ``algoperf_<algorithm>`` (AlgoPerf's
    ``nadamw`` is not optbench's built-in ``nadamw``, and must not clash with it)."""
    if source.stem != "submission":
        return source.stem
    for folder in source.parents:
        if folder.name and folder.name not in FRAMEWORK_DIRS:
            return f"algoperf_{folder.name}"
    return source.stem


def read_search_space(path: Path, label: str) -> dict[str, Any] | list[dict[str, Any]]:
    """AlgoPerf's ``tuning_search_space.json`` beside the module, checked; {} if there is none."""
    from harness.plugins.search_space import SearchSpaceError, validate

    if not path.is_file():
        return {}
    try:
        space = json.loads(path.read_text())
        validate(space)
    except (OSError, ValueError) as exc:  # JSONDecodeError and SearchSpaceError are ValueErrors
        what = "malformed" if isinstance(exc, SearchSpaceError) else "unreadable"
        raise PluginError(f"{label}: {what} {path.name}: {exc}") from None
    return space


def default_point(space: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    """The point ``bench run`` uses: first feasible points and range midpoints
    (geometric for log scaling), or a fixed-point list's first point."""
    if isinstance(space, list):
        return dict(space[0]) if space else {}
    point: dict[str, Any] = {}
    for name, entry in space.items():
        if "feasible_points" in entry:
            point[name] = entry["feasible_points"][0]
        elif entry.get("scaling", "linear") == "log":
            point[name] = math.sqrt(entry["min"] * entry["max"])
        else:
            point[name] = (entry["min"] + entry["max"]) / 2
    return point


def algoperf_workload_name(workload: str) -> str | None:
    """AlgoPerf's name for an optbench workload (None: AlgoPerf has no such workload)."""
    return WORKLOAD_NAMES.get(workload)


__all__ = ["REQUIRED", "OPTIONAL", "META_KEY", "scan", "is_algoperf", "derived_meta", "default_point",
           "read_search_space", "search_space_path", "plugin_name", "algoperf_workload_name"]
