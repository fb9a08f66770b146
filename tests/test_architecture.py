"""The shape of the code (docs/architecture.md), held by tests.

* Imports run one way between the rooms of ``harness/``: cli -> sweeps -> run
  -> plugins -> common -> the contract (api, params, schedules, errors); score
  reads records (run/records, run/fingerprint) and installed definitions
  (plugins), never a running harness. Workloads use the contract and common
  only, never each other; submissions use the contract only.
* No function in harness/ runs past 80 lines.
* Every example plugin and every ``bench new`` template imports and passes the
  registry's contract checks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = {"api", "params", "schedules", "errors"}
# room -> the rooms it may import (besides itself)
ALLOWED = {
    "contract": set(),
    "common": {"contract"},
    "plugins": {"common", "contract"},
    "run": {"plugins", "common", "contract"},
    "sweeps": {"run", "plugins", "common", "contract"},
    "score": {"run.records", "run.fingerprint", "plugins", "common", "contract"},
    "cli": {"sweeps", "run", "score", "plugins", "common", "contract"},
}


def _room(module: str) -> str:
    """``harness.run.plan`` -> "run"; the contract's modules -> "contract"."""
    parts = module.split(".")
    return "contract" if parts[1] in CONTRACT else parts[1]


def _imports(path: Path, package: str) -> set[str]:
    """Every ``harness...`` module a file imports (at any depth in the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "harness":
                found |= {f"harness.{a.name}" for a in node.names}
            elif node.module.startswith("harness."):
                found |= {f"{node.module}.{a.name}" if node.module.count(".") == 1 and (
                    ROOT / "harness" / node.module.split(".")[1] / f"{a.name}.py").exists() else node.module
                    for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("harness.")}
    return found


def _harness_modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted((ROOT / "harness").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        if module != "harness":
            out.append((module, path))
    return out


def _allowed(importer: str, imported: str) -> bool:
    mine, theirs = _room(importer), _room(imported)
    if mine == theirs:
        return True
    allowed = ALLOWED[mine]
    return theirs in allowed or any(imported == f"harness.{a}" or imported.startswith(f"harness.{a}.") for a in allowed)


def test_imports_run_one_way_between_the_rooms():
    wrong = []
    for module, path in _harness_modules():
        for imported in sorted(_imports(path, module)):
            if imported.count(".") >= 1 and not _allowed(module, imported):
                wrong.append(f"{module} imports {imported}")
    assert not wrong, "imports against the direction of docs/architecture.md:\n" + "\n".join(wrong)


def test_the_rule_itself_catches_a_backward_import():
    assert not _allowed("harness.run.plan", "harness.sweeps.tuning")
    assert not _allowed("harness.score.scoring", "harness.run.execution")
    assert not _allowed("harness.api", "harness.params") or _room("harness.params") == "contract"
    assert _allowed("harness.score.scoring", "harness.run.records")
    assert _allowed("harness.cli.run", "harness.run.plan")


def test_workloads_share_code_through_the_harness_not_each_other():
    wrong = []
    for path in sorted((ROOT / "workloads").rglob("*.py")):
        own = path.relative_to(ROOT / "workloads").parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "workloads" and len(parts) > 1 and parts[1] != own:
                    wrong.append(f"{path.relative_to(ROOT)} imports {name}")
                if parts[0] == "harness" and len(parts) > 1 and _room(name) not in ("contract", "common"):
                    wrong.append(f"{path.relative_to(ROOT)} imports {name} (workloads use harness.api and harness/common only)")
    assert not wrong, "\n".join(wrong)


def test_submissions_use_the_contract_only():
    wrong = []
    for path in sorted((ROOT / "submissions").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness"):
                if node.module == "harness" or _room(node.module) != "contract":
                    wrong.append(f"{path.relative_to(ROOT)} imports {node.module}")
    assert not wrong, "\n".join(wrong)


def test_no_function_in_harness_runs_past_80_lines():
    long = []
    for module, path in _harness_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 80:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert not long, "\n".join(long)


# --------------------------------------------------------------------------- #
# The plugin surface: examples and templates                                   #
# --------------------------------------------------------------------------- #


def _every_example_module() -> list[Path]:
    return sorted(p for p in (ROOT / "examples").rglob("*.py") if p.name != "__init__.py")


def test_every_example_plugin_imports_and_meets_the_contract():
    from harness.plugins.registry import Registry

    examples = _every_example_module()
    assert examples, "no example plugin found under examples/"
    for path in examples:
        loaded = Registry(entry_points=False).submission(str(path)).load()  # imports it, checks the contract
        assert loaded.kind in ("optimizer", "norm"), path


@pytest.mark.parametrize("kind", ["optimizer", "norm"])
@pytest.mark.parametrize("package", [False, True])
def test_every_bench_new_template_imports_and_meets_the_contract(tmp_path, kind, package):
    from harness.plugins.registry import Registry
    from harness.plugins.scaffold import new_submission

    name = f"arch_{kind}_{'pkg' if package else 'file'}"
    made = new_submission(name, kind=kind, package=package, directory=tmp_path)
    module = next(p for p in made.files if p.name == f"{name}.py")
    loaded = Registry(entry_points=False).submission(str(module)).load()
    assert loaded.kind == kind and loaded.name == name
