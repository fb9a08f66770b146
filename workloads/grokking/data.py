"""Data for the grokking workload: every pair (a, b) of a modular operation.

The dataset is the whole table of ``a o b mod p`` (Power et al. 2022, "Grokking:
Generalization Beyond Overfitting on Small Algorithmic Datasets"), generated in
memory. A fixed fraction of the pairs is the training set; the rest is split
in half into validation and test. The split is a function of the dataset's own
seed (``DATA_SEED``), not of the run's seed: every run, on every machine, sees
the same pairs, as every run of cifar sees the same images.

Each split is ``(x, y)``: ``x`` int64 ``(N, 2)`` holding the operands ``(a, b)``,
``y`` int64 ``(N,)`` holding ``a o b mod p``. No tokens for "o" or "=": the model
reads the two operands and answers with one of p classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DATA_VERSION = 1  # bump when generation changes: the tiny target is calibrated on it
DATA_SEED = 20250119

OPERATIONS = ("add", "subtract", "multiply", "divide")

Splits = dict  # {"train" | "validation" | "test": (x int64 (N, 2), y int64 (N,))}


@dataclass(frozen=True)
class DataConfig:
    p: int = 97  # a prime, so every b != 0 has an inverse (division)
    operation: str = "add"
    train_fraction: float = 0.5  # of all pairs; the rest is halved into validation and test


def table(p: int, operation: str) -> tuple[np.ndarray, np.ndarray]:
    """All pairs ``(a, b)`` in row-major order and ``a o b mod p`` for each.

    Division is multiplication by the inverse ``b^(p-2) mod p`` (Fermat), so it
    leaves out ``b = 0``: p * (p - 1) pairs instead of p * p.
    """
    if operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r} (have: {', '.join(OPERATIONS)})")
    a, b = np.divmod(np.arange(p * p, dtype=np.int64), p)
    if operation == "divide":
        a, b = a[b != 0], b[b != 0]
    if operation == "add":
        y = (a + b) % p
    elif operation == "subtract":
        y = (a - b) % p
    elif operation == "multiply":
        y = (a * b) % p
    else:
        inverse = np.array([pow(int(v), p - 2, p) for v in range(p)], dtype=np.int64)
        y = (a * inverse[b]) % p
    return np.stack([a, b], axis=1), y


def make_splits(config: DataConfig = DataConfig(), seed: int = DATA_SEED) -> Splits:
    """The train / validation / test splits, identical for identical (config, seed)."""
    if not 0 < config.train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), not {config.train_fraction}")
    x, y = table(config.p, config.operation)
    rng = np.random.Generator(np.random.PCG64(seed + 1000 * DATA_VERSION))
    order = rng.permutation(len(y))
    n_train = int(round(config.train_fraction * len(y)))
    n_validation = (len(y) - n_train) // 2
    parts = {
        "train": order[:n_train],
        "validation": order[n_train : n_train + n_validation],
        "test": order[n_train + n_validation :],
    }
    # Sorted within each split: the order carries nothing, and sorted indices
    # make the arrays (and their digest) easy to check by eye.
    return {name: (x[np.sort(idx)], y[np.sort(idx)]) for name, idx in parts.items()}
