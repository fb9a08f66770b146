"""Seeds and threads: the same seed gives the same run on the CPU.

Seeds are derived from a stable hash (sha256), never Python's ``hash()``,
whose value changes between processes.
"""

from __future__ import annotations

import hashlib
import json
import os


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any JSON-serializable parts, stable across processes
    and machines: ``derive_seed(0, "model") != derive_seed(0, "data")``."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") >> 1


def stable_hash(obj: object, length: int = 12) -> str:
    """Short hex digest of a JSON-serializable object (dict order ignored)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def default_threads() -> int:
    """Cores this process may use (respects taskset / cgroup affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS
        return max(1, os.cpu_count() or 1)


def set_determinism(seed: int, threads: int) -> None:
    """Seed every RNG and fix the thread count before any model is built."""
    import random

    import numpy as np
    import torch

    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
