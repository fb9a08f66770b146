"""The whole test session, and every process it starts, uses a private user
cache (harness/common/usercache.py): tests never read or write ~/.cache/optbench.

Set in ``os.environ`` at configure time, before any test runs, so that
subprocesses (``bench`` commands, torchrun, sweep workers) inherit it; tests
that build an environment from scratch pass it on themselves. One cache for
the session: runs after the first load the generated tiny data instead of
regenerating it, and the data tests check that this changes nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile

_created: list[str] = []


def pytest_configure(config) -> None:
    path = tempfile.mkdtemp(prefix="optbench-test-cache-")
    _created.append(path)
    os.environ["OPTBENCH_CACHE_DIR"] = path
    os.environ.pop("OPTBENCH_CACHE", None)  # on, whatever the caller's shell says: the cache is under test


def pytest_unconfigure(config) -> None:
    for path in _created:
        shutil.rmtree(path, ignore_errors=True)
