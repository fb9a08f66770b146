"""Generated tiny datasets, kept in the user cache so set-up need not regenerate them.

The tiny sizes generate their data (rendered shapes, random molecules) in a
few seconds of numpy on every run; loading a verified copy takes a tenth of
that. A cached copy must be exactly what generation would return now, so:

* the key is a sha256 over everything generation depends on: the caller's
  name and parameters (sizes, seeds, versions), the bytes of the generator's
  source files (an edit without a version bump still misses), and the numpy,
  Python and machine that generated it;
* the file is an uncompressed ``.npz`` (never a pickle: it is read with
  ``allow_pickle=False``) holding the arrays and a manifest of the key and each
  array's dtype, shape and sha256; a load checks all of them and regenerates on
  any mismatch, so a torn, truncated or edited file is never used;
* writes go through a temporary file and ``os.replace``, so concurrent runs
  (DDP ranks, sweep workers) see a whole file or none.

``OPTBENCH_CACHE=0`` turns it off; ``OPTBENCH_CACHE_DIR`` moves it (harness/common/usercache.py).
Each name keeps its KEEP most recently written entries; older ones are removed.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from harness.common import usercache

FORMAT = 1
MANIFEST = "__manifest__"
KEY_CHARS = 24  # of the key's hex digest in a file name; the manifest holds all of it
KEEP = 3  # entries per name: a few checkouts or versions side by side without thrashing
STALE_TMP_S = 3600  # a temporary file this old was left by a killed writer


def cached_arrays(
    name: str,
    params: Mapping[str, Any],
    sources: Iterable[str | Path],
    generate: Callable[[], dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """``generate()``'s arrays, from the cache when a verified copy is there.

    ``name`` is a file-name-safe label (``cifar-shapes10``); ``params`` (JSON)
    and the files ``sources`` must determine ``generate()``'s output.
    """
    root = usercache.cache_dir()
    key = _key(name, params, sources) if root is not None else None
    if key is None:
        return generate()
    path = root / "generated" / f"{name}-{key[:KEY_CHARS]}.npz"
    arrays = _load(path, key)
    if arrays is None:
        arrays = generate()
        if _store(path, key, arrays):
            _prune(path.parent, name, keep=path)
    return arrays


def arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """One sha256 for a whole dataset: every array's name and digest, in name order.

    Tasks put it in ``Task.data_sha256`` and records carry it, so two runs can be
    checked to have trained and evaluated on the same bytes (generated data on
    another machine included).
    """
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(f"{name}={array_digest(np.asarray(arrays[name]))};".encode())
    return digest.hexdigest()


def array_digest(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes (C order)."""
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def _key(name: str, params: Mapping[str, Any], sources: Iterable[str | Path]) -> str | None:
    try:
        files = {Path(s).name: hashlib.sha256(Path(s).read_bytes()).hexdigest() for s in sources}
    except OSError:  # a generator whose source cannot be read cannot be keyed
        return None
    identity = {
        "format": FORMAT,
        "name": name,
        "params": params,
        "sources": files,
        "numpy": np.__version__,
        "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "machine": platform.machine(),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _load(path: Path, key: str) -> dict[str, np.ndarray] | None:
    """The arrays at ``path`` if its manifest says ``key`` and every array matches it."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            manifest = json.loads(str(npz[MANIFEST]))
            expected = manifest["arrays"]
            if manifest.get("key") != key or set(npz.files) != {MANIFEST, *expected}:
                return None
            arrays = {name: npz[name] for name in expected}
    except Exception:  # missing, torn, not a zip, not our format, ...: regenerate
        return None
    for name, array in arrays.items():
        want = expected[name]
        if array.dtype.str != want.get("dtype") or list(array.shape) != want.get("shape") or array_digest(array) != want.get("sha256"):
            return None
    return arrays


def _store(path: Path, key: str, arrays: dict[str, np.ndarray]) -> bool:
    if MANIFEST in arrays or any(a.dtype.hasobject for a in arrays.values()):
        return False  # object arrays would need pickle
    manifest = {
        "key": key,
        "arrays": {n: {"dtype": a.dtype.str, "shape": list(a.shape), "sha256": array_digest(a)} for n, a in arrays.items()},
    }
    payload = {**arrays, MANIFEST: np.array(json.dumps(manifest))}  # unsorted: a load returns the generated order
    return usercache.write_atomic(path, lambda f: np.savez(f, **payload))


def _prune(directory: Path, name: str, keep: Path) -> None:
    """Remove all but the KEEP newest entries of ``name`` (never ``keep``) and
    temporary files abandoned by killed writers."""
    try:
        pattern = f"{name}-{'[0-9a-f]' * KEY_CHARS}.npz"  # not another name that starts with this one
        entries = sorted(directory.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in [p for p in entries if p != keep][KEEP - 1 :]:
            old.unlink(missing_ok=True)
        now = time.time()
        for tmp in directory.glob(f".{name}-*.tmp"):
            if now - tmp.stat().st_mtime > STALE_TMP_S:
                tmp.unlink(missing_ok=True)
    except OSError:  # a concurrent prune got there first, or no permission
        pass
