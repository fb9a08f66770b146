"""Data for the cifar workload: procedurally rendered shapes (tiny) and CIFAR-10 (full).

Both sizes hand the task the same thing: a dict ``{"train": (x, y), "validation":
(x, y), "test": (x, y)}`` of numpy arrays, images ``uint8 (N, 3, 32, 32)``
(channel-major, like CIFAR-10's own files) and labels ``int64 (N,)``.

tiny -- ``shapes10``
    Ten rendered shape classes (harness/common/shapes.py, shared with the
    diffusion workload): a real learning problem that needs no download. The
    arrays are regenerated in memory, identically every time, from a fixed
    seed in a few seconds (or loaded from a verified copy in the user cache,
    harness/common/datacache.py).

full -- CIFAR-10
    The official python archive (harness/common/cifar10.py, shared with the
    diffusion workload): checked against its sha256 before anything is read,
    unpickled with an unpickler that can build numpy arrays and nothing else.
    As in AlgoPerf, the last 5000 of the 50000 training images are held out as
    the validation set; the official 10000 test images are the test set.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from harness.common import cifar10, shapes
from harness.common.cifar10 import (  # noqa: F401  (this workload's data API)
    CIFAR10_ARCHIVE,
    CIFAR10_BYTES,
    CIFAR10_META_MEMBER,
    CIFAR10_TEST_MEMBER,
    CIFAR10_TRAIN_MEMBERS,
    CIFAR10_URL,
    RestrictedUnpickler,
    UnsafePickle,
    cifar10_archive_path,
    prepare,
    restricted_loads,
    split_validation,
    verify_sha256,
)
from harness.common.datacache import cached_arrays
from harness.common.files import sha256_file  # noqa: F401
from harness.common.shapes import SHAPE_NAMES, SHAPES_VERSION, render_shapes  # noqa: F401
from harness.errors import DatasetCorrupt, DatasetMissing, DownloadFailed  # noqa: F401

Splits = dict  # {"train" | "validation" | "test": (images uint8 (N,3,32,32), labels int64 (N,))}

# The full size's archive, as this workload reads it (tests point these at a
# small fake archive written in the same format).
CIFAR10_SHA256 = cifar10.CIFAR10_SHA256
CIFAR10_VALIDATION = cifar10.CIFAR10_VALIDATION

# --------------------------------------------------------------------------- #
# tiny: procedurally rendered shapes                                          #
# --------------------------------------------------------------------------- #

SHAPES_SEED = 20240611
SHAPES_SPLITS = {"train": 10_000, "validation": 1_000, "test": 1_000}


@functools.lru_cache(maxsize=1)  # many trials in one process render once (callers must not mutate)
def shapes_splits() -> Splits:
    """The tiny size's train / validation / test splits (fixed, ~3 s to render;
    a verified copy in the user cache, harness/common/datacache.py, loads in ~0.2 s).
    Each split has its own seed so changing one split's size leaves the others."""
    seeds = {split: SHAPES_SEED + 1000 * SHAPES_VERSION + i for i, split in enumerate(SHAPES_SPLITS)}

    def render() -> dict[str, np.ndarray]:
        arrays = {}
        for split, n in SHAPES_SPLITS.items():
            arrays[f"{split}.x"], arrays[f"{split}.y"] = render_shapes(n, seed=seeds[split])
        return arrays

    params = {"version": SHAPES_VERSION, "splits": SHAPES_SPLITS, "seeds": seeds}
    arrays = cached_arrays("cifar-shapes10", params, [__file__, shapes.__file__], render)
    return {split: (arrays[f"{split}.x"], arrays[f"{split}.y"]) for split in SHAPES_SPLITS}


# --------------------------------------------------------------------------- #
# full: the official CIFAR-10 python archive                                  #
# --------------------------------------------------------------------------- #


def load_cifar10(data_dir: str | os.PathLike, sha256: str | None = None, num_validation: int | None = None) -> Splits:
    """CIFAR-10 from ``<data_dir>/cifar-10-python.tar.gz``: 45000 train, 5000
    validation (held out of the training batches), 10000 test; ``sha256`` and
    ``num_validation`` default to this module's CIFAR10_SHA256 and CIFAR10_VALIDATION."""
    return cifar10.load_cifar10(data_dir, CIFAR10_SHA256 if sha256 is None else sha256,
                                CIFAR10_VALIDATION if num_validation is None else num_validation)
