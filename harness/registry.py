"""Discovery: one registry of workloads and submissions, fed three ways.

1. Built-ins: ``workloads/<name>/`` packages and ``submissions/{optimizers,norms}/<name>.py``.
2. Installed packages, through entry points in the groups ``optbench.submissions``
   and ``optbench.workloads`` (``name = "package.module"`` or ``"package.module:attr"``).
3. A path or import string given on the command line: ``--submission ./my_opt.py``
   or ``--submission my_package.my_module:MyOptimizer``.

Listing never imports a submission: its literal metadata (KIND, DEFAULTS, ...)
is read from the source with ``ast``, so ``bench list`` stays torch-free.
Loading (``Plugin.load()``) imports it and checks it against the contract.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from harness import api
from harness.errors import PluginError, UserInputError, unknown
from harness.search_space import SearchSpaceError, validate

ROOT = Path(__file__).resolve().parent.parent
BUILTIN_SUBMISSIONS = ROOT / "submissions"
BUILTIN_WORKLOADS = ROOT / "workloads"
SUBMISSION_GROUP = "optbench.submissions"
WORKLOAD_GROUP = "optbench.workloads"
META_NAMES = ("NAME", "KIND", "DESCRIPTION", "PAPER", "DEFAULTS", "SEARCH_SPACE", "SITES")


def source_sha256(path: Path | None) -> str | None:
    """sha256 of a plugin's code: the file, or every .py file of its package."""
    if path is None or not Path(path).exists():
        return None
    path = Path(path)
    digest = hashlib.sha256()
    if path.name == "__init__.py":
        for file in sorted(path.parent.rglob("*.py")):
            digest.update(str(file.relative_to(path.parent)).encode() + b"\0")
            digest.update(file.read_bytes())
    else:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def read_literal_metadata(path: Path) -> tuple[dict[str, Any], list[str]]:
    """Top-level literal assignments of META_NAMES, and the names that were not literals."""
    try:
        tree = ast.parse(Path(path).read_text(), filename=str(path))
    except SyntaxError as exc:
        raise PluginError(f"{path}: syntax error on line {exc.lineno}: {exc.msg}") from None
    meta: dict[str, Any] = {}
    dynamic: list[str] = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            if isinstance(target, ast.Name) and target.id in META_NAMES and node.value is not None:
                try:
                    meta[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    dynamic.append(target.id)
    return meta, dynamic


# --------------------------------------------------------------------------- #
# Plugins (submissions)                                                        #
# --------------------------------------------------------------------------- #


@dataclass
class Plugin:
    """Where a submission comes from, before it is imported."""

    name: str
    origin: str  # "builtin" | "entry_point" | "file" | "module"
    target: str  # module name, file path, or "module:attr"
    source: Path | None  # the file holding its code
    distribution: str | None = None
    version: str | None = None
    _meta: dict[str, Any] | None = field(default=None, repr=False)

    @cached_property
    def meta(self) -> dict[str, Any]:
        if self._meta is not None:
            return self._meta
        if self.source is not None and ":" not in self.target:
            meta, dynamic = read_literal_metadata(self.source)
            if not dynamic:
                return meta
        loaded = self.load()  # metadata computed at import time: import to read it
        return {k: getattr(loaded.obj, k) for k in META_NAMES if hasattr(loaded.obj, k)}

    @property
    def kind(self) -> str:
        return self.meta.get("KIND", "?")

    @cached_property
    def sha256(self) -> str | None:
        return source_sha256(self.source)

    def provenance(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "origin": self.origin,
            "source": str(self.source) if self.source else self.target,
            "sha256": self.sha256,
            "distribution": self.distribution,
            "version": self.version,
        }

    def load(self) -> "Submission":
        return Submission(self, _import_plugin(self))


def _import_plugin(plugin: Plugin) -> Any:
    target, _, attr = plugin.target.partition(":")
    label = f"plugin {plugin.name!r} ({plugin.source or plugin.target})"
    try:
        if plugin.origin == "file":
            path = Path(target)
            module_name = f"optbench_plugin_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise PluginError(f"{label}: not a Python file")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
        return getattr(module, attr) if attr else module
    except PluginError:
        raise
    except SyntaxError as exc:
        raise PluginError(f"{label} failed to import: syntax error on line {exc.lineno}: {exc.msg}") from None
    except AttributeError as exc:
        raise PluginError(f"{label} failed to import: {exc}") from None
    except Exception as exc:  # any import-time failure becomes one line
        raise PluginError(f"{label} failed to import: {type(exc).__name__}: {exc}") from None


class Submission:
    """An imported submission, checked against the contract in harness.api."""

    def __init__(self, plugin: Plugin, obj: Any) -> None:
        self.plugin = plugin
        self.obj = obj
        self.name = plugin.name
        where = f"plugin {plugin.name!r} ({plugin.source or plugin.target})"
        kind = getattr(obj, "KIND", None)
        if kind not in api.KINDS:
            raise PluginError(f"{where}: KIND must be one of {api.KINDS}, got {kind!r}")
        self.kind: str = kind
        required = api.OPTIMIZER_REQUIRED if kind == "optimizer" else api.NORM_REQUIRED
        missing = [n for n in required if not hasattr(obj, n)]
        if missing:
            raise PluginError(f"{where}: missing {', '.join(missing)} (a {kind} submission needs {', '.join(required)})")
        for fn in ("make_optimizer", "make_norm", *api.OPTIMIZER_OPTIONAL, "transform_model"):
            if hasattr(obj, fn) and not callable(getattr(obj, fn)):
                raise PluginError(f"{where}: {fn} must be a function")
        self.defaults: dict[str, Any] = dict(getattr(obj, "DEFAULTS", {}) or {})
        self.search_space = getattr(obj, "SEARCH_SPACE", {}) or {}
        try:
            validate(self.search_space, self.defaults if isinstance(self.search_space, dict) else None)
        except SearchSpaceError as exc:
            raise PluginError(f"{where}: malformed SEARCH_SPACE: {exc}") from None
        self.sites: tuple[str, ...] = tuple(getattr(obj, "SITES", ()) or ())
        valid_sites = {s.value for s in api.NormSite}
        bad = [s for s in self.sites if s not in valid_sites]
        if bad:
            raise PluginError(f"{where}: unknown norm sites {bad}; valid: {sorted(valid_sites)}")

    def hook(self, name: str) -> Any:
        return getattr(self.obj, name, None)


# --------------------------------------------------------------------------- #
# The registry                                                                 #
# --------------------------------------------------------------------------- #


@dataclass
class WorkloadEntry:
    info: api.WorkloadInfo
    origin: str
    source: str
    distribution: str | None = None
    version: str | None = None


class Registry:
    """All workloads and submissions visible to this process."""

    def __init__(self, entry_points: bool = True) -> None:
        self._entry_points = entry_points
        self.clashes: dict[str, list[str]] = {}

    # -- submissions ------------------------------------------------------- #
    @cached_property
    def submissions(self) -> dict[str, Plugin]:
        found: dict[str, Plugin] = {}
        for folder, kind in (("optimizers", "optimizer"), ("norms", "norm")):
            for path in sorted((BUILTIN_SUBMISSIONS / folder).glob("*.py")):
                if path.stem.startswith("_"):
                    continue
                self._add(found, Plugin(path.stem, "builtin", f"submissions.{folder}.{path.stem}", path))
        if self._entry_points:
            for ep in importlib.metadata.entry_points(group=SUBMISSION_GROUP):
                module = ep.value.split(":")[0]
                try:
                    spec = importlib.util.find_spec(module)
                    source = Path(spec.origin) if spec and spec.origin else None
                except Exception:
                    source = None
                dist = getattr(ep, "dist", None)
                self._add(found, Plugin(
                    ep.name, "entry_point", ep.value, source,
                    distribution=dist.name if dist else None,
                    version=dist.version if dist else None,
                ))
        return found

    def _add(self, found: dict[str, Plugin], plugin: Plugin) -> None:
        if plugin.name in found:
            first = found[plugin.name]
            self.clashes.setdefault(plugin.name, [_describe(first)]).append(_describe(plugin))
        else:
            found[plugin.name] = plugin

    def submission(self, name: str, kind: str | None = None) -> Plugin:
        """A submission by registered name, file path or ``module:attr``."""
        plugin = self._resolve(name)
        if kind is not None and plugin.kind != kind:
            article = lambda k: "an" if k[:1] in "aeiou" else "a"
            raise UserInputError(f"{name!r} is {article(plugin.kind)} {plugin.kind} submission, not {article(kind)} {kind}")
        return plugin

    def _resolve(self, name: str) -> Plugin:
        if name.endswith(".py") or "/" in name or "\\" in name:
            path = Path(name).expanduser().resolve()
            if not path.is_file():
                raise UserInputError(f"submission file {name!r} does not exist")
            meta, _ = read_literal_metadata(path)
            return Plugin(str(meta.get("NAME") or path.stem), "file", str(path), path)
        if ":" in name:
            module = name.split(":")[0]
            try:
                spec = importlib.util.find_spec(module)
            except (ImportError, ValueError):
                spec = None
            if spec is None:
                raise UserInputError(f"cannot find module {module!r} for submission {name!r}")
            return Plugin(name.split(":")[1], "module", name, Path(spec.origin) if spec.origin else None)
        subs = self.submissions
        if name in self.clashes:
            raise PluginError(f"submission name {name!r} is defined twice: {' and '.join(self.clashes[name])}")
        if name not in subs:
            raise unknown("submission", name, subs)
        return subs[name]

    # -- workloads ----------------------------------------------------------- #
    @cached_property
    def workloads(self) -> dict[str, WorkloadEntry]:
        found: dict[str, WorkloadEntry] = {}
        for init in sorted(BUILTIN_WORKLOADS.glob("*/__init__.py")):
            module_name = f"workloads.{init.parent.name}"
            info = getattr(_import_workload(module_name, module_name), "WORKLOAD", None)
            if isinstance(info, api.WorkloadInfo):
                found[info.name] = WorkloadEntry(info, "builtin", str(init.parent))
        if self._entry_points:
            for ep in importlib.metadata.entry_points(group=WORKLOAD_GROUP):
                obj = _import_workload(ep.value, ep.name, ep.load)
                info = getattr(obj, "WORKLOAD", obj)
                if not isinstance(info, api.WorkloadInfo):
                    raise PluginError(f"workload entry point {ep.name!r} ({ep.value}) is not a WorkloadInfo")
                dist = getattr(ep, "dist", None)
                entry = WorkloadEntry(info, "entry_point", ep.value, dist.name if dist else None, dist.version if dist else None)
                if info.name in found:
                    other = found[info.name]
                    raise PluginError(
                        f"workload name {info.name!r} is defined twice: {other.origin} {other.source} and entry point {ep.value}"
                    )
                found[info.name] = entry
        return found

    def add_workload(self, info: api.WorkloadInfo, source: str = "python") -> None:
        """Register a workload defined in Python (a notebook, a test)."""
        if info.name in self.workloads:
            raise PluginError(f"workload name {info.name!r} is already defined by {self.workloads[info.name].source}")
        self.workloads[info.name] = WorkloadEntry(info, "python", source)

    def workload(self, name: str) -> WorkloadEntry:
        if name not in self.workloads:
            raise unknown("workload", name, self.workloads)
        return self.workloads[name]


def _import_workload(module: str, label: str, loader=None) -> Any:
    try:
        return loader() if loader else importlib.import_module(module)
    except Exception as exc:
        raise PluginError(f"workload {label!r} failed to import: {type(exc).__name__}: {exc}") from None


def _describe(plugin: Plugin) -> str:
    if plugin.origin == "entry_point":
        return f"entry point {plugin.target} from {plugin.distribution or '?'} {plugin.version or ''}".rstrip()
    return f"{plugin.origin} {plugin.source or plugin.target}"


def size_of(entry: WorkloadEntry, size: str) -> api.Size:
    if size not in entry.info.sizes:
        raise unknown(f"size for workload {entry.info.name!r}:", size, entry.info.sizes)
    return entry.info.sizes[size]
