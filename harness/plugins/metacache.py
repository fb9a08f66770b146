"""Plugins' literal metadata, cached so ``bench list`` need not parse every file.

Parsing the built-in submissions with ``ast`` is most of what listing costs
once the CLI is imported. An entry is found by the file's path and used only
if the sha256 of the file's current bytes matches the one it was made from:
reading and hashing a file is some thirty times cheaper than parsing it, and
a content key cannot go stale the way a modification time can (two edits
inside the file system's timestamp granularity, a restored backup, a checkout
that keeps times).

One JSON file per Python version (a newer Python may parse what an older one
cannot) holds every entry. It is read once per process and rewritten
atomically after a miss, without entries for files that no longer exist;
concurrent writers may drop each other's new entries, which costs a parse.
Values keep their exact types and order: JSON arrays are tagged as list or
tuple (``SITES = ("conv",)`` must not come back as a list), keys are never
sorted (a search space's order picks its Halton dimensions), and metadata JSON
cannot hold exactly (sets, bytes, non-string keys) is simply not cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from harness.common import usercache

FORMAT = 2  # 2: AlgoPerf modules' functions (harness/plugins/algoperf.py)
_loaded: tuple[Path, dict[str, dict[str, Any]]] | None = None  # (file, its entries), read once per process


def _file() -> Path | None:
    root = usercache.cache_dir()
    if root is None:
        return None
    return root / f"plugin-metadata-py{sys.version_info[0]}{sys.version_info[1]}.json"


def _entries(file: Path) -> dict[str, dict[str, Any]]:
    global _loaded
    if _loaded is None or _loaded[0] != file:
        try:
            data = json.loads(file.read_bytes())
        except (OSError, ValueError):  # missing, unreadable or corrupt: start afresh
            data = None
        ok = isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("entries"), dict)
        _loaded = (file, data["entries"] if ok else {})
    return _loaded[1]


def lookup(path: Path, source: bytes) -> tuple[dict[str, Any], list[str]] | None:
    """The cached ``(meta, dynamic)`` of ``path`` if it was made from exactly ``source``."""
    file = _file()
    if file is None:
        return None
    entry = _entries(file).get(os.path.abspath(path))
    if not isinstance(entry, dict) or entry.get("sha256") != hashlib.sha256(source).hexdigest():
        return None
    try:
        meta = _decode(entry["meta"])
        dynamic = entry["dynamic"]
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    if not isinstance(meta, dict) or not isinstance(dynamic, list):
        return None
    return meta, dynamic


def store(path: Path, source: bytes, meta: dict[str, Any], dynamic: list[str]) -> None:
    """Remember ``(meta, dynamic)`` for ``path`` as it is now (best effort)."""
    file = _file()
    if file is None:
        return
    try:
        encoded = _encode(meta)
    except TypeError:  # a literal JSON cannot hold exactly: parse it every time
        return
    entries = _entries(file)
    entries[os.path.abspath(path)] = {"sha256": hashlib.sha256(source).hexdigest(), "meta": encoded, "dynamic": list(dynamic)}
    for stale in [p for p in entries if not os.path.exists(p)]:  # deleted files, temporary plugins
        del entries[stale]
    text = json.dumps({"format": FORMAT, "entries": entries}).encode()  # unsorted: DEFAULTS keep their order
    usercache.write_atomic(file, lambda f: f.write(text))


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return ["tuple" if isinstance(value, tuple) else "list", *(_encode(v) for v in value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _encode(v) for k, v in value.items()}
    raise TypeError(f"not cacheable: {type(value).__name__}")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        kind, items = value[0], [_decode(v) for v in value[1:]]
        if kind == "tuple":
            return tuple(items)
        if kind == "list":
            return items
        raise ValueError(f"unknown array tag {kind!r}")
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    return value
