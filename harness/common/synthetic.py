"""Synthetic data for the GPU sizes: random inputs of the real shapes and dtypes.

``bench run --synthetic-data`` (config ``data.synthetic=true``) measures a full
size's step time, peak memory and MFU with no dataset downloaded. The harness
passes ``synthetic=True`` to the workload's Task (harness/run/build.py
``make_task``), which then builds its splits with these helpers instead of
reading files: once, in set-up (untimed), on the device, deterministic in the
run's data seed. ``next_batch`` is the same code as on the real data, so the
timed step does the same work at the same cost.

How many examples a split holds (:func:`count`): on a GPU as many as the real
split, so a synthetic run holds a real run's data in device memory and an
evaluation takes a real evaluation's time; elsewhere, where a full size is only
smoke-tested (a CPU), a couple of the run's batches in every split, evaluation
sets included, so a test with a reduced ``batch_size`` can afford the evaluation.

The numbers mean nothing: such a run has no target, is never ``reached``, is
unofficial and is left off every board (docs/gpu.md). Torch is imported inside
the functions, like the rest of harness/common.
"""

from __future__ import annotations

from typing import Any

from harness.common.seeding import derive_seed

#: Batches of examples a synthetic split holds off a GPU.
CPU_BATCHES = 2


def count(real: int, device: Any, per_batch: int) -> int:
    """Examples a synthetic split holds in place of a real split of ``real``:
    all of them on a GPU; off it :data:`CPU_BATCHES` x ``per_batch`` (the run's
    batch), at most ``real``."""
    import torch

    if torch.device(device).type == "cuda":
        return int(real)
    return max(1, min(int(real), CPU_BATCHES * int(per_batch)))


def generator(device: Any, seed: int, *names: Any):
    """A torch generator on ``device`` seeded by (seed, "synthetic", *names)."""
    import torch

    return torch.Generator(device=torch.device(device)).manual_seed(derive_seed(seed, "synthetic", *names))


def uint8_images(n: int, shape: tuple[int, ...], device: Any, seed: int, split: str):
    """``n`` uniformly random uint8 images of ``shape`` (C, H, W), made on ``device``."""
    import torch

    gen = generator(device, seed, split, "images")
    return torch.randint(0, 256, (n, *shape), generator=gen, device=torch.device(device), dtype=torch.uint8)


def labels(n: int, classes: int, device: Any, seed: int, split: str):
    """``n`` uniformly random int64 class labels in [0, classes), made on ``device``."""
    import torch

    gen = generator(device, seed, split, "labels")
    return torch.randint(0, classes, (n,), generator=gen, device=torch.device(device), dtype=torch.int64)


def token_ids_int16(n: int, vocab: int, device: Any, seed: int, split: str, chunk: int = 1 << 27):
    """``n`` uniformly random token ids < ``vocab`` (<= 65536) as the int16 bit
    patterns of uint16 ids, made on ``device`` a chunk at a time (a 5B-token
    stream never exists as int64)."""
    import torch

    device = torch.device(device)
    gen = generator(device, seed, split, "tokens")
    out = torch.empty(n, dtype=torch.int16, device=device)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        ids = torch.randint(0, vocab, (stop - start,), generator=gen, device=device, dtype=torch.int32)
        out[start:stop] = ids.to(torch.int16)  # wraps ids >= 32768 to their int16 bit pattern
    return out


__all__ = ["CPU_BATCHES", "count", "generator", "uint8_images", "labels", "token_ids_int16"]
