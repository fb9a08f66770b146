"""The user cache: where optbench keeps what it can always recompute.

``$OPTBENCH_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/optbench``, else
``~/.cache/optbench``; ``OPTBENCH_CACHE=0`` turns every cache off. Nothing
kept here is ever the only copy of anything, and every entry is checked
against what it stands for before it is used: a missing, corrupt, stale or
unwritable entry costs only the time to recompute it, so failing to read or
write the cache is never an error.

Two users: plugins' literal metadata (harness/plugins/metacache.py, for ``bench
list``) and generated tiny datasets (harness/common/datacache.py, for run set-up).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Callable

from harness.common import files

ENV_DIR = "OPTBENCH_CACHE_DIR"
ENV_SWITCH = "OPTBENCH_CACHE"
OFF = {"0", "false", "no", "off"}


def cache_dir() -> Path | None:
    """The cache directory (it may not exist yet), or None when caching is off."""
    if os.environ.get(ENV_SWITCH, "").strip().lower() in OFF:
        return None
    explicit = os.environ.get(ENV_DIR)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec says to ignore a relative path
        return Path(xdg) / "optbench"
    try:
        return Path.home() / ".cache" / "optbench"
    except RuntimeError:  # no home directory to be found: no cache
        return None


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> bool:
    """Write ``path`` atomically (harness/common/files.py), so a concurrent
    reader sees the old file or the new one, never a torn one. Returns False
    (leaving no temporary file) when the cache is not writable: a cache that
    cannot be written only costs speed."""
    try:
        files.write_atomic(path, write, durable=False)
        return True
    except OSError:  # read-only or full file system, permissions
        return False
