"""Search spaces in AlgoPerf's ``tuning_search_space.json`` format.

Each hyperparameter is either a range::

    {"min": 1e-4, "max": 1e-2, "scaling": "log"}      # or "linear"

or a set of choices::

    {"feasible_points": [0.02, 0.05, 0.1]}

A whole search space may also be a list of fixed points (dicts of values).
"""

from __future__ import annotations

import math
from typing import Any


class SearchSpaceError(ValueError):
    pass


def validate(space: Any, defaults: dict[str, Any] | None = None) -> None:
    """Raise SearchSpaceError with a precise message if ``space`` is malformed."""
    if isinstance(space, list):
        for i, point in enumerate(space):
            if not isinstance(point, dict) or not point:
                raise SearchSpaceError(f"point {i} of the fixed-point list must be a non-empty dict")
        return
    if not isinstance(space, dict):
        raise SearchSpaceError(f"must be a dict or a list of points, got {type(space).__name__}")
    for name, spec in space.items():
        where = f"hyperparameter {name!r}"
        if not isinstance(spec, dict):
            raise SearchSpaceError(f"{where}: expected a dict, got {spec!r}")
        if "feasible_points" in spec:
            points = spec["feasible_points"]
            if not isinstance(points, list) or not points:
                raise SearchSpaceError(f"{where}: feasible_points must be a non-empty list")
            continue
        missing = {"min", "max"} - set(spec)
        if missing:
            raise SearchSpaceError(f"{where}: needs 'min' and 'max' (or 'feasible_points'); missing {sorted(missing)}")
        lo, hi = spec["min"], spec["max"]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (lo, hi)):
            raise SearchSpaceError(f"{where}: min and max must be finite numbers")
        if lo > hi:
            raise SearchSpaceError(f"{where}: min {lo} is greater than max {hi}")
        scaling = spec.get("scaling", "linear")
        if scaling not in ("log", "linear"):
            raise SearchSpaceError(f"{where}: scaling must be 'log' or 'linear', got {scaling!r}")
        if scaling == "log" and lo <= 0:
            raise SearchSpaceError(f"{where}: log scaling needs min > 0")
    if defaults is not None:
        extra = sorted(set(space) - set(defaults))
        if extra:
            raise SearchSpaceError(f"{', '.join(extra)} in SEARCH_SPACE but not in DEFAULTS")
