"""Images for the diffusion workload: 16x16 rendered shapes (tiny) and CIFAR-10 (full).

Both sizes hand the task ``{"train": x, "validation": x, "test": x}``: uint8
images ``(N, 3, H, W)``, channel-major. Labels are not used (unconditional
generation).

tiny -- ``shapes16``
    The procedural shapes the cifar workload also uses (ten shape classes
    rendered from signed distance fields in random colours, over a gradient,
    with a distractor blob and pixel noise; harness/common/shapes.py),
    rendered at 32x32 from this module's own seeds and averaged over 2x2 pixel
    blocks to 16x16: an anti-aliased image set with sharp, varied structure
    that a small UNet learns to denoise in a few hundred steps on a CPU. No
    download; regenerated identically in a few seconds (or loaded from a
    verified copy in the user cache, harness/common/datacache.py).

full -- CIFAR-10
    Read with the shared loader (harness/common/cifar10.py: the official
    python archive, sha256-checked, restricted unpickler): 45000 train, the
    last 5000 training images as validation (as AlgoPerf), the official 10000
    test images. ``prepare`` is the same as cifar's: both workloads read the
    same archive in the same data directory.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from harness.common import cifar10, shapes
from harness.common.datacache import cached_arrays

# The tiny target is calibrated on exactly these images. SHAPES16_VERSION
# names this module's recipe; CIFAR_SHAPES_VERSION the renderer it was
# calibrated with (tests fail if cifar's renderer is bumped: recalibrate).
SHAPES16_VERSION = 1
CIFAR_SHAPES_VERSION = 1
SHAPES16_SEED = 16_2020  # independent of the cifar workload's seeds: different images
SHAPES16_SPLITS = {"train": 10_000, "validation": 1_000, "test": 250}
TINY_IMAGE_SIZE = 16


def downsample2x(images: np.ndarray) -> np.ndarray:
    """uint8 (N, C, H, W) -> uint8 (N, C, H/2, W/2), the rounded mean of each 2x2 block."""
    n, c, h, w = images.shape
    if h % 2 or w % 2:
        raise ValueError(f"cannot halve {h}x{w} images")
    blocks = images.reshape(n, c, h // 2, 2, w // 2, 2).astype(np.float32)
    return np.rint(blocks.mean(axis=(3, 5))).astype(np.uint8)


def render_shapes16(n: int, seed: int) -> np.ndarray:
    """``n`` 16x16 shape images, uint8 (n, 3, 16, 16), identical for identical (n, seed)."""
    images, _ = shapes.render_shapes(n, seed)
    return downsample2x(images)


@functools.lru_cache(maxsize=1)  # many trials in one process render once (callers must not mutate)
def shapes16_splits() -> dict[str, np.ndarray]:
    """The tiny size's train / validation / test images (fixed, ~2 s to render;
    a verified copy in the user cache, harness/common/datacache.py, loads in ~0.05 s)."""
    seeds = {split: SHAPES16_SEED + 1000 * SHAPES16_VERSION + i for i, split in enumerate(SHAPES16_SPLITS)}

    def render() -> dict[str, np.ndarray]:
        return {split: render_shapes16(n, seed=seeds[split]) for split, n in SHAPES16_SPLITS.items()}

    params = {"version": SHAPES16_VERSION, "splits": SHAPES16_SPLITS, "seeds": seeds}
    arrays = cached_arrays("diffusion-shapes16", params, [__file__, shapes.__file__], render)
    return {split: arrays[split] for split in SHAPES16_SPLITS}


def load_cifar10_images(data_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """CIFAR-10's images, split as the cifar workload splits them (labels dropped).
    Raises DatasetMissing / DatasetCorrupt (DataError) with instructions."""
    return {split: images for split, (images, _labels) in cifar10.load_cifar10(data_dir).items()}


def prepare(
    data_dir: str | os.PathLike, url: str = cifar10.CIFAR10_URL, sha256: str = cifar10.CIFAR10_SHA256
) -> Path:
    """``bench data prepare diffusion``: download and verify the same CIFAR-10
    archive as ``bench data prepare cifar`` (a no-op when it is already there)."""
    return cifar10.prepare(data_dir, url=url, sha256=sha256)
