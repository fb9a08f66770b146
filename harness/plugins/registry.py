"""Discovery: one registry of workloads and submissions, fed three ways.

1. Built-ins: ``workloads/<name>/`` packages and ``submissions/{optimizers,norms}/<name>.py``.
2. Installed packages, through entry points in the groups ``optbench.submissions``
   and ``optbench.workloads`` (``name = "package.module"`` or ``"package.module:attr"``).
3. A path or import string given on the command line: ``--submission ./my_opt.py``,
   ``--submission my_package.my_module`` or ``--submission my_package.my_module:MyOptimizer``.

The same contract (harness/api.py) holds for all three. Listing never imports a
submission: its literal metadata (KIND, DEFAULTS, ...) is read from the source
with ``ast`` (or from harness/plugins/metacache.py while the file's bytes are unchanged),
and an entry point's file is located without running its package, so ``bench
list`` stays torch-free. ``Registry.submission()`` checks that
metadata; ``Plugin.load()`` imports the code and checks the functions.

Every failure is a :class:`PluginError` (or, for a bad name, a
:class:`UserInputError`) whose message is one line naming the plugin, its file
and the problem. Names defined by two sources are an error when used, naming
both origins. An imported submission's functions are guarded: an exception
they raise (also mid-run) is re-raised as a PluginError naming the plugin, with
the original exception chained, so a run record says whose code failed.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
import traceback
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from harness import api

from harness.plugins import algoperf, metacache
from harness.errors import OptbenchError, PluginError, UserInputError, did_you_mean, unknown
from harness.plugins.search_space import SearchSpaceError, validate

ROOT = Path(__file__).resolve().parents[2]
BUILTIN_SUBMISSIONS = ROOT / "submissions"
BUILTIN_WORKLOADS = ROOT / "workloads"
SUBMISSION_GROUP = "optbench.submissions"
WORKLOAD_GROUP = "optbench.workloads"
META_NAMES = ("NAME", "KIND", "DESCRIPTION", "PAPER", "DEFAULTS", "SEARCH_SPACE", "SITES", "ALIASES", "REFUSES")
# Functions of a submission whose exceptions are re-raised naming the plugin.
GUARDED = ("make_optimizer", "make_schedule", "make_norm", "transform_model", *api.OPTIMIZER_OPTIONAL)


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


def read_literal_metadata(path: Path, label: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """Top-level literal assignments of META_NAMES, and the names that were not literals."""
    label = label or f"plugin file {path}"
    try:
        source = Path(path).read_bytes()
    except OSError as exc:
        raise PluginError(f"{label}: cannot read the source: {exc}") from None
    cached = metacache.lookup(path, source)
    if cached is not None:
        return cached
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise PluginError(f"{label}: syntax error on line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:  # null bytes / bad encoding
        raise PluginError(f"{label}: cannot read the source: {exc}") from None
    meta: dict[str, Any] = {}
    dynamic: list[str] = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            if isinstance(target, ast.Name) and target.id in META_NAMES and node.value is not None:
                try:
                    meta[target.id] = ast.literal_eval(node.value)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    dynamic.append(target.id)
    found = algoperf.scan(tree) if "KIND" not in meta else None
    if found:  # an AlgoPerf module: told by its functions, since it has no KIND
        meta[algoperf.META_KEY] = found
    metacache.store(path, source, meta, dynamic)
    return meta, dynamic


def check_metadata(values: dict[str, Any], where: str) -> None:
    """Raise PluginError unless KIND, DEFAULTS, SEARCH_SPACE and SITES keep the contract."""
    kind = values.get("KIND")
    if kind not in api.KINDS:
        got = "it is missing" if "KIND" not in values else f"got {kind!r}"
        raise PluginError(f"{where}: KIND must be 'optimizer' or 'norm'; {got}")
    required = ("DEFAULTS", "SEARCH_SPACE") if kind == "optimizer" else ("SITES",)
    missing = [n for n in required if n not in values]
    if missing:
        raise PluginError(f"{where}: missing {', '.join(missing)} (a {kind} submission needs {', '.join(_required(kind))})")
    defaults = values.get("DEFAULTS", {})
    if defaults is None:
        defaults = {}
    if not isinstance(defaults, dict) or not all(isinstance(k, str) for k in defaults):
        raise PluginError(f"{where}: DEFAULTS must be a dict of hyperparameter name -> value, got {defaults!r}")
    space = values.get("SEARCH_SPACE", {})
    if space is None:
        space = {}
    try:
        validate(space, defaults if isinstance(space, dict) else None)
    except SearchSpaceError as exc:
        raise PluginError(f"{where}: malformed SEARCH_SPACE: {exc}") from None
    refuses = values.get("REFUSES") or {}
    if not isinstance(refuses, dict) or not all(k in api.WORKLOAD_HYPERPARAMETERS and isinstance(v, str) and v
                                                for k, v in refuses.items()):
        raise PluginError(f"{where}: REFUSES must map workload hyperparameters "
                          f"({', '.join(api.WORKLOAD_HYPERPARAMETERS)}) to why, got {refuses!r}")
    if kind == "norm":
        sites = values.get("SITES")
        valid = [s.value for s in api.NormSite]
        if isinstance(sites, str) or not isinstance(sites, (tuple, list)) or not sites:
            raise PluginError(f"{where}: SITES must be a non-empty tuple of norm sites from {valid}, got {sites!r}")
        bad = [s for s in sites if s not in valid]
        if bad:
            raise PluginError(f"{where}: unknown norm sites {bad}; valid: {valid}")


def _required(kind: str) -> tuple[str, ...]:
    return api.OPTIMIZER_REQUIRED if kind == "optimizer" else api.NORM_REQUIRED


def _find_spec_quietly(name: str, path: Any) -> Any:
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        try:
            spec = find(name, path)
        except Exception:
            continue
        if spec is not None:
            return spec
    return None


def module_source(module: str) -> Path | None:
    """The file that defines ``module``, found without running it or its parent
    packages (``importlib.util.find_spec`` would import the parents)."""
    spec, path = None, None
    parts = module.split(".")
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        loaded = sys.modules.get(name)
        spec = getattr(loaded, "__spec__", None) if loaded is not None else None
        if spec is None:
            spec = _find_spec_quietly(name, path)
        if spec is None:
            return None
        path = spec.submodule_search_locations
        if path is None and i < len(parts) - 1:
            return None
    origin = getattr(spec, "origin", None)
    if not origin or origin in ("built-in", "frozen") or not Path(origin).is_file():
        return None
    return Path(origin)


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

    @property
    def label(self) -> str:
        """``plugin 'name' (where)`` for messages."""
        where = str(self.source) if self.source else self.target
        if self.origin == "entry_point":
            dist = f"{self.distribution} {self.version}" if self.distribution else "an unknown distribution"
            where = f"{where}, entry point {self.target} of {dist}"
        elif self.origin == "module" and self.source:
            where = f"{self.target} in {self.source}"
        return f"plugin {self.name!r} ({where})"

    @cached_property
    def meta(self) -> dict[str, Any]:
        if self._meta is not None:
            return self._meta
        if self.source is not None and ":" not in self.target:
            meta, dynamic = read_literal_metadata(self.source, self.label)
            if algoperf.is_algoperf(meta):
                return algoperf.derived_meta(self.source, meta[algoperf.META_KEY], self.label)
            if not dynamic:
                return meta
        loaded = self.load(check=False)  # metadata computed at import time: import to read it
        return {k: getattr(loaded, k) for k in META_NAMES if hasattr(loaded, k)}

    @property
    def kind(self) -> str:
        return self.meta.get("KIND", "?")

    def check(self) -> "Plugin":
        """Check the metadata against the contract (without importing, where it is literal)."""
        check_metadata(self.meta, self.label)
        return self

    @cached_property
    def sha256(self) -> str | None:
        return source_sha256(self.source)

    def provenance(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "origin": self.origin,
            "source": str(self.source) if self.source else self.target,
            "target": self.target,
            "sha256": self.sha256,
            "distribution": self.distribution,
            "version": self.version,
            **({"format": "algoperf"} if self.is_algoperf else {}),
        }

    @property
    def is_algoperf(self) -> bool:
        """An AlgoPerf submission module, run through harness/plugins/algoperf_runtime.py
        (told from the source, never from ``meta``, which may import the plugin)."""
        if self.source is None or ":" in self.target:
            return False
        return algoperf.is_algoperf(read_literal_metadata(self.source, self.label)[0])

    def load(self, check: bool = True) -> Any:
        """Import the plugin; with ``check`` (the default) a checked :class:`Submission`."""
        self.sha256  # hash the code as it is when it is imported
        if self.is_algoperf:
            from harness.plugins import algoperf_runtime

            obj = algoperf_runtime.adapter(self, _import_plugin)
            return Submission(self, obj) if check else obj
        obj = _import_plugin(self)
        return Submission(self, obj) if check else obj


def _import_plugin(plugin: Plugin) -> Any:
    target, _, attr = plugin.target.partition(":")
    label = plugin.label
    try:
        if plugin.origin == "file":
            path = Path(target)
            module_name = f"optbench_plugin_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise PluginError(f"{label}: not a Python file")
            module = importlib.util.module_from_spec(spec)
            if str(path.parent) not in sys.path:  # its sibling modules import as in a script
                sys.path.append(str(path.parent))
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(module_name, None)
                raise
        else:
            module = importlib.import_module(target)
    except PluginError:
        raise
    except SyntaxError as exc:
        where = f" in {exc.filename}" if exc.filename and exc.filename != str(plugin.source) else ""
        raise PluginError(f"{label} failed to import: syntax error{where} on line {exc.lineno}: {exc.msg}") from None
    except Exception as exc:  # any import-time failure becomes one line
        files = (str(plugin.source.parent if plugin.source.name == "__init__.py" else plugin.source),) if plugin.source else ()
        raise PluginError(f"{label} failed to import: {_one_line(exc)}{_where_raised(exc, files)}") from None
    if not attr:
        return module
    try:
        return getattr(module, attr)
    except AttributeError:
        raise PluginError(f"{label}: module {target!r} has no attribute {attr!r}") from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _where_raised(exc: BaseException, files: tuple[str, ...] = ()) -> str:
    """`` (at file.py:line)``: the innermost frame in ``files`` if any, else the innermost."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    preferred = [f for f in frames if _in_files(f.filename, files)]
    frame = (preferred or frames or [None])[-1]
    return f" (at {Path(frame.filename).name}:{frame.lineno})" if frame else ""


def _plugin_frames(exc: BaseException, files: tuple[str, ...], last: int = 3) -> list[str]:
    """The innermost ``last`` frames of ``exc``'s traceback that lie in the plugin's own files."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _in_files(f.filename, files)]
    return [f"{Path(f.filename).name}:{f.lineno} in {f.name}: {(f.line or '').strip()}" for f in frames[-last:]]


def _in_files(filename: str, files: tuple[str, ...]) -> bool:
    return any(filename == f or filename.startswith(f.rstrip("/") + "/") for f in files)


def _raised_in(exc: BaseException, files: tuple[str, ...]) -> bool:
    """Whether any frame of ``exc``'s traceback runs code from ``files`` (files or package dirs)."""
    return any(_in_files(frame.f_code.co_filename, files) for frame, _ in traceback.walk_tb(exc.__traceback__))


class _Guarded:
    """A read-only view of a plugin object whose contract functions name the
    plugin when they raise."""

    def __init__(self, obj: Any, guard: Any) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_guard", guard)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._obj, name)
        if name in GUARDED and callable(value):
            return self._guard(name, value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._obj, name, value)

    def __repr__(self) -> str:
        return f"<guarded {self._obj!r}>"


class Submission:
    """An imported submission, checked against the contract in harness.api.

    ``obj`` is the plugin's module (or object) seen through a guard: calling one
    of its contract functions (make_optimizer, update, ...) re-raises any
    exception as a PluginError naming the plugin, its file and, for step hooks,
    the step. ``raw`` is the object itself.
    """

    def __init__(self, plugin: Plugin, obj: Any) -> None:
        self.plugin = plugin
        self.raw = obj
        self.obj = _Guarded(obj, self._guard)
        self.name = plugin.name
        where = plugin.label
        check_metadata({k: getattr(obj, k) for k in META_NAMES if hasattr(obj, k)}, where)
        self.kind: str = obj.KIND
        required = _required(self.kind)
        missing = [n for n in required if not hasattr(obj, n)]
        if missing:
            raise PluginError(f"{where}: missing {', '.join(missing)} (a {self.kind} submission needs {', '.join(required)})")
        for fn in GUARDED:
            if hasattr(obj, fn) and not callable(getattr(obj, fn)):
                raise PluginError(f"{where}: {fn} must be a function, got {type(getattr(obj, fn)).__name__}")
        self.defaults: dict[str, Any] = dict(getattr(obj, "DEFAULTS", {}) or {})
        self.search_space = getattr(obj, "SEARCH_SPACE", {}) or {}
        self.sites: tuple[str, ...] = tuple(getattr(obj, "SITES", ()) or ())
        source = plugin.source
        files = []
        if source is not None:
            files.append(str(source.parent) if source.name == "__init__.py" else str(source))
        for fn in GUARDED:  # module:attr objects may hold functions defined elsewhere
            code = getattr(getattr(obj, fn, None), "__code__", None)
            if code is not None and code.co_filename not in files:
                files.append(code.co_filename)
        self._files = tuple(files)

    def _guard(self, name: str, fn: Any, own: bool = True) -> Any:
        label = self.plugin.label
        files = self._files

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except OptbenchError:
                raise
            except Exception as exc:
                if not own and not _raised_in(exc, files):
                    raise
                step = args[0].step if args and isinstance(args[0], api.StepContext) else None
                # Counted from 1, as the progress bar counts steps taken.
                at = f" at step {step + 1} (ctx.step {step})" if step is not None else ""
                error = PluginError(f"{label}: {name} raised{at}: {_one_line(exc)}{_where_raised(exc, files)}")
                error.plugin_frames = _plugin_frames(exc, files)
                raise error from exc

        return guarded

    def hook(self, name: str) -> Any:
        """The plugin's function ``name`` (guarded), or None if it has none.

        ``hook("update")`` of an optimizer is never None: without its own
        ``update`` it is :func:`harness.api.default_update`, guarded so that an
        exception raised in the plugin's code (e.g. its optimizer's ``step``)
        names the plugin.
        """
        fn = getattr(self.raw, name, None)
        if fn is None:
            if name == "update" and self.kind == "optimizer":
                return self._guard("optimizer step", api.default_update, own=False)
            return None
        return self._guard(name, fn) if name in GUARDED else fn


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
        for folder in ("optimizers", "norms"):
            for path in sorted((BUILTIN_SUBMISSIONS / folder).glob("*.py")):
                if path.stem.startswith("_"):
                    continue
                self._add(found, Plugin(path.stem, "builtin", f"submissions.{folder}.{path.stem}", path))
        if self._entry_points:
            for ep in importlib.metadata.entry_points(group=SUBMISSION_GROUP):
                dist = getattr(ep, "dist", None)
                self._add(found, Plugin(
                    ep.name, "entry_point", ep.value, module_source(ep.value.split(":")[0].strip()),
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
        """A submission by registered name, file path, module or ``module:attr``,
        its metadata checked against the contract."""
        plugin = self._resolve(name).check()
        if kind is not None and plugin.kind != kind:
            article = lambda k: "an" if k[:1] in "aeiou" else "a"
            raise UserInputError(f"{name!r} is {article(plugin.kind)} {plugin.kind} submission, not {article(kind)} {kind}")
        return plugin

    def _resolve(self, name: str) -> Plugin:
        if name.endswith(".py") or "/" in name or "\\" in name:
            path = Path(name).expanduser().resolve()
            if not path.is_file():
                raise UserInputError(f"submission file {name!r} does not exist")
            for known in self.submissions.values():  # a built-in or installed plugin named by its path
                if known.source is not None and known.source.resolve() == path:
                    return self._registered(known.name)
            meta, _ = read_literal_metadata(path, f"plugin {path.stem!r} ({path})")
            stem = algoperf.plugin_name(path) if algoperf.is_algoperf(meta) else path.stem
            plugin = Plugin(str(meta.get("NAME") or stem), "file", str(path), path)
            return self._unique(plugin, "rename the file or set NAME = \"...\" in it")
        if ":" in name:
            module, _, attr = name.partition(":")
            if not module or not attr.isidentifier():
                raise UserInputError(f"submission {name!r}: expected module:attribute, e.g. my_package.my_module:MyOptimizer")
            source = self._find_module(module, name)
            return self._unique(Plugin(attr, "module", name, source), "pass another attribute name")
        subs = self.submissions
        if name in self.clashes:
            raise PluginError(
                f"submission name {name!r} is defined twice: {' and '.join(self.clashes[name])}; "
                "uninstall one, or pick one by file path or module:attribute"
            )
        if name not in subs and "." in name and all(p.isidentifier() for p in name.split(".")):
            try:
                source = self._find_module(name, name)
            except UserInputError:
                raise UserInputError(
                    f"unknown submission {name!r}, and no module of that name is importable; "
                    f"{did_you_mean(name, subs)}"
                ) from None
            meta, _ = read_literal_metadata(source) if source else ({}, [])
            plugin = Plugin(str(meta.get("NAME") or name.rsplit(".", 1)[1]), "module", name, source)
            return self._unique(plugin, "set NAME = \"...\" in it")
        if name not in subs:
            raise unknown("submission", name, subs)
        return subs[name]

    def _registered(self, name: str) -> Plugin:
        if name in self.clashes:
            raise PluginError(f"submission name {name!r} is defined twice: {' and '.join(self.clashes[name])}")
        return self.submissions[name]

    def _find_module(self, module: str, asked: str) -> Path | None:
        if not all(p.isidentifier() for p in module.split(".")):
            raise UserInputError(f"submission {asked!r}: {module!r} is not a module name")
        if module in sys.modules:
            spec = getattr(sys.modules[module], "__spec__", None)
            origin = getattr(spec, "origin", None) or getattr(sys.modules[module], "__file__", None)
            return Path(origin) if origin and Path(origin).is_file() else None
        source = module_source(module)
        if source is None:
            try:  # namespace packages, zip imports, ...: let importlib decide (may import parents)
                spec = importlib.util.find_spec(module)
            except ModuleNotFoundError:
                spec = None
            except Exception as exc:
                raise PluginError(f"submission {asked!r}: cannot locate module {module!r}: {_one_line(exc)}") from None
            if spec is None:
                raise UserInputError(f"cannot find module {module!r} for submission {asked!r} (is it installed, or on PYTHONPATH?)")
            source = Path(spec.origin) if spec.origin and Path(spec.origin).is_file() else None
        return source

    def _unique(self, plugin: Plugin, fix: str) -> Plugin:
        """A plugin given by path or import string may not take a registered name:
        records and leaderboards group runs by name."""
        other = self.submissions.get(plugin.name)
        if other is not None:
            raise PluginError(
                f"submission name {plugin.name!r} is defined twice: {_describe(other)} and "
                f"{_describe(plugin)}; {fix}"
            )
        return plugin

    # -- workloads ----------------------------------------------------------- #
    @cached_property
    def workloads(self) -> dict[str, WorkloadEntry]:
        found: dict[str, WorkloadEntry] = {}
        for init in sorted(BUILTIN_WORKLOADS.glob("*/__init__.py")):
            module_name = f"workloads.{init.parent.name}"
            info = getattr(_import_workload(module_name, f"workload {init.parent.name!r} ({init})"), "WORKLOAD", None)
            if isinstance(info, api.WorkloadInfo):
                found[info.name] = WorkloadEntry(info, "builtin", str(init.parent))
        if self._entry_points:
            for ep in importlib.metadata.entry_points(group=WORKLOAD_GROUP):
                dist = getattr(ep, "dist", None)
                dist_text = f"{dist.name} {dist.version}" if dist else "an unknown distribution"
                label = f"workload {ep.name!r} (entry point {ep.value} of {dist_text})"
                obj = _import_workload(ep.value, label, ep.load)
                info = getattr(obj, "WORKLOAD", obj)
                if not isinstance(info, api.WorkloadInfo):
                    raise PluginError(f"{label}: expected a harness.api.WorkloadInfo (or a module with WORKLOAD), got {type(info).__name__}")
                entry = WorkloadEntry(info, "entry_point", ep.value, dist.name if dist else None, dist.version if dist else None)
                if info.name in found:
                    other = found[info.name]
                    raise PluginError(
                        f"workload name {info.name!r} is defined twice: {other.origin} {other.source} and "
                        f"entry point {ep.value} of {dist_text}"
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
        raise PluginError(f"{label} failed to import: {_one_line(exc)}{_where_raised(exc)}") from None


def _describe(plugin: Plugin) -> str:
    if plugin.origin == "entry_point":
        dist = f"{plugin.distribution} {plugin.version}" if plugin.distribution else "an unknown distribution"
        return f"entry point {plugin.target} of {dist}" + (f" ({plugin.source})" if plugin.source else "")
    if plugin.origin == "module":
        return f"module {plugin.target}"
    return f"{plugin.origin} {plugin.source or plugin.target}"


def size_of(entry: WorkloadEntry, size: str) -> api.Size:
    if size not in entry.info.sizes:
        raise unknown(f"size for workload {entry.info.name!r}:", size, entry.info.sizes)
    return entry.info.sizes[size]
