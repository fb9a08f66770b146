"""Data for the cifar workload: procedurally rendered shapes (tiny) and CIFAR-10 (full).

Both sizes hand the task the same thing: a dict ``{"train": (x, y), "validation":
(x, y), "test": (x, y)}`` of numpy arrays, images ``uint8 (N, 3, 32, 32)``
(channel-major, like CIFAR-10's own files) and labels ``int64 (N,)``.

tiny -- ``shapes10``
    Ten shape classes (disk, ring, square, hollow square, triangle, plus, ellipse,
    three bars, crescent, diamond) rendered from signed distance fields with
    anti-aliased edges, at a random position, scale and small rotation, in random
    fore- and background colours (so colour is no cue), over a background
    gradient, with a distractor blob and Gaussian pixel noise. It is a real
    learning problem (a linear model does poorly, a small ResNet climbs for a few
    hundred steps) that needs no download: the arrays are regenerated in memory,
    identically every time, from a fixed seed in a few seconds (or loaded from
    a verified copy in the user cache, harness/common/datacache.py).

full -- CIFAR-10
    The official python archive ``cifar-10-python.tar.gz``, checked against its
    sha256 before anything is read, unpickled with an unpickler that can build
    numpy arrays and nothing else. As in AlgoPerf, the last 5000 of the 50000
    training images are held out as the validation set; the official 10000 test
    images are the test set.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import io
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from harness.common.datacache import cached_arrays
from harness.errors import DataError


# Each is an OptbenchError (one line and exit 1 from the CLI) and also the
# builtin exception a Python caller would expect.
class DatasetMissing(DataError, FileNotFoundError):
    pass


class DatasetCorrupt(DataError, ValueError):
    pass


class UnsafePickle(DataError, pickle.UnpicklingError):
    pass


class DownloadFailed(DataError, RuntimeError):
    pass

Splits = dict  # {"train" | "validation" | "test": (images uint8 (N,3,32,32), labels int64 (N,))}

# --------------------------------------------------------------------------- #
# tiny: procedurally rendered shapes                                          #
# --------------------------------------------------------------------------- #

SHAPES_VERSION = 1  # bump when rendering changes: tiny targets are calibrated on it
SHAPES_SEED = 20240611
SHAPES_SPLITS = {"train": 10_000, "validation": 1_000, "test": 1_000}
SHAPE_NAMES = (
    "disk", "ring", "square", "hollow_square", "triangle",
    "plus", "ellipse", "three_bars", "crescent", "diamond",
)  # fmt: skip

IMAGE_SIZE = 32
MAX_ROTATION_DEG = 15.0
LUMA = np.array([0.299, 0.587, 0.114])  # Rec. 601 luminance of an RGB colour
MIN_LUMA_CONTRAST = 0.15  # square and diamond differ by 45 deg: keep well below 22.5


def _box(px, py, bx, by):
    """Signed distance to an axis-aligned box with half-sizes (bx, by)."""
    qx, qy = np.abs(px) - bx, np.abs(py) - by
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return outside + np.minimum(np.maximum(qx, qy), 0.0)


def _triangle(px, py, r):
    """Signed distance to an equilateral triangle of half-side r, centred on its
    centroid, apex towards -y (Inigo Quilez's formula, vectorized)."""
    k = np.sqrt(3.0)
    px = np.abs(px) - r
    py = -py + r / k  # flip y so the apex points up in image coordinates
    fold = px + k * py > 0
    px, py = np.where(fold, (px - k * py) / 2, px), np.where(fold, (-k * px - py) / 2, py)
    px = px - np.clip(px, -2 * r, 0.0)
    return -np.hypot(px, py) * np.sign(py)


def _shape_sdf(label: int, u, v):
    """Signed distance (in units of the shape's half-extent) for class ``label``
    at shape-local coordinates (u, v). Negative inside."""
    r = np.hypot(u, v)
    if label == 0:  # disk
        return r - 0.9
    if label == 1:  # ring
        return np.abs(r - 0.7) - 0.2
    if label == 2:  # filled square
        return _box(u, v, 0.75, 0.75)
    if label == 3:  # hollow square
        return np.abs(_box(u, v, 0.65, 0.65)) - 0.15
    if label == 4:  # triangle
        return _triangle(u, v + 0.15, 1.0)
    if label == 5:  # plus
        return np.minimum(_box(u, v, 0.9, 0.25), _box(u, v, 0.25, 0.9))
    if label == 6:  # ellipse, 2:1 (approximate distance: fine for anti-aliasing)
        a, b = 0.95, 0.45
        return (np.hypot(u / a, v / b) - 1.0) * b
    if label == 7:  # three horizontal bars
        return np.minimum.reduce([_box(u, v - c, 0.9, 0.16) for c in (-0.6, 0.0, 0.6)])
    if label == 8:  # crescent: a disk with an offset disk bitten out
        return np.maximum(r - 0.9, -(np.hypot(u - 0.45, v) - 0.7))
    if label == 9:  # diamond (square standing on a corner)
        return (np.abs(u) + np.abs(v) - 0.95) / np.sqrt(2.0)
    raise ValueError(label)


def render_shapes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (uint8, (n, 3, 32, 32)) and labels (int64, (n,)), exactly
    label-balanced when 10 divides n, identical for identical (n, seed)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    labels = rng.permutation(np.arange(n) % len(SHAPE_NAMES)).astype(np.int64)

    # Per-image parameters, all drawn up front so the stream never depends on class.
    scale = rng.uniform(4.5, 10.5, n)  # half-extent in pixels
    margin = IMAGE_SIZE / 2 - scale - 1.0  # keep the shape inside the frame
    cx = IMAGE_SIZE / 2 + rng.uniform(-1, 1, n) * margin
    cy = IMAGE_SIZE / 2 + rng.uniform(-1, 1, n) * margin
    angle = np.deg2rad(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG, n))

    # Colours: random hues, independent of the class. The shape is always
    # brighter than its background by at least MIN_LUMA_CONTRAST. A fixed
    # polarity matters: with light-on-dark and dark-on-light equally likely, a
    # first-layer filter's response to a shape's edge averages to zero over the
    # data, and training sits on a long plateau until the net happens on
    # polarity-invariant features -- how long is mostly luck and learning rate.
    background = rng.uniform(0, 1, (n, 3))
    foreground = rng.uniform(0, 1, (n, 3))
    for _ in range(1000):  # rejection sampling; ~half the pairs pass each round
        contrast = (foreground - background) @ LUMA
        swap = contrast <= -MIN_LUMA_CONTRAST  # right contrast, wrong way round
        background[swap], foreground[swap] = foreground[swap], background[swap].copy()
        low = np.abs(contrast) < MIN_LUMA_CONTRAST
        if not low.any():
            break
        background[low] = rng.uniform(0, 1, (int(low.sum()), 3))
        foreground[low] = rng.uniform(0, 1, (int(low.sum()), 3))
    gradient_dir = rng.uniform(0, 2 * np.pi, n)
    gradient_amp = rng.uniform(0.0, 0.3, n)
    blob_xy = rng.uniform(2, IMAGE_SIZE - 2, (n, 2))
    blob_sigma = rng.uniform(1.5, 3.5, n)
    blob_colour = rng.uniform(0, 1, (n, 3))
    blob_alpha = rng.uniform(0.3, 0.8, n)
    noise_sigma = rng.uniform(0.03, 0.14, n)
    noise = rng.standard_normal((n, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)

    # Pixel-centre coordinates, broadcast as (n, H, W).
    grid = np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5
    gy, gx = grid[None, :, None], grid[None, None, :]
    col = lambda a: a[:, None, None].astype(np.float32)  # noqa: E731  (n,) -> (n,1,1)

    # Shape coverage: rotate into shape-local coordinates, evaluate the class's
    # signed distance, convert to a one-pixel-wide anti-aliased edge.
    dx, dy = gx - col(cx), gy - col(cy)
    cos, sin = col(np.cos(angle)), col(np.sin(angle))
    u, v = (cos * dx + sin * dy) / col(scale), (-sin * dx + cos * dy) / col(scale)
    coverage = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    for k in range(len(SHAPE_NAMES)):
        idx = np.flatnonzero(labels == k)
        distance_px = _shape_sdf(k, u[idx], v[idx]) * col(scale[idx])
        coverage[idx] = np.clip(0.5 - distance_px, 0.0, 1.0)

    # Background: flat colour plus a linear brightness gradient. (float32 and
    # in-place from here on: these are the big (n, 3, 32, 32) arrays.)
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    ramp = (col(np.cos(gradient_dir)) * (gx - 16) + col(np.sin(gradient_dir)) * (gy - 16)) / 16
    image = np.empty((n, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    image[:] = (col(gradient_amp) * ramp)[:, None]
    image += f32(background)[:, :, None, None]
    image += coverage[:, None] * f32(foreground - background)[:, :, None, None]

    # Distractor: a soft blob that may overlap the shape.
    blob = np.exp(
        -((gx - col(blob_xy[:, 0])) ** 2 + (gy - col(blob_xy[:, 1])) ** 2) / (2 * col(blob_sigma) ** 2)
    ) * col(blob_alpha)
    image += blob[:, None] * (f32(blob_colour)[:, :, None, None] - image)

    noise *= f32(noise_sigma)[:, None, None, None]
    image += noise
    image *= 255.0
    images = np.clip(np.rint(image, out=image), 0, 255, out=image).astype(np.uint8)
    return images, labels


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
    arrays = cached_arrays("cifar-shapes10", params, [__file__], render)
    return {split: (arrays[f"{split}.x"], arrays[f"{split}.y"]) for split in SHAPES_SPLITS}


# --------------------------------------------------------------------------- #
# full: the official CIFAR-10 python archive                                  #
# --------------------------------------------------------------------------- #

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_BYTES = 170_498_071
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
CIFAR10_TRAIN_MEMBERS = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_MEMBER = "cifar-10-batches-py/test_batch"
CIFAR10_META_MEMBER = "cifar-10-batches-py/batches.meta"
CIFAR10_VALIDATION = 5_000  # the last 5000 of the 50000 training images, as AlgoPerf


def cifar10_archive_path(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / CIFAR10_ARCHIVE


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike, expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected.lower():
        raise DatasetCorrupt(
            f"{path}: sha256 mismatch (expected {expected.lower()}, got {actual}). "
            "The file is damaged or is not the official CIFAR-10 python archive; "
            "delete it and run `bench data prepare cifar`."
        )


# CIFAR-10's batches are Python pickles. Unpickling can call any importable
# function, so a tampered file could run code; this unpickler resolves only the
# names that rebuild a numpy array and refuses everything else.
try:  # numpy >= 2 keeps it in numpy._core; 1.x in numpy.core
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # how the 2009 files name it
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # how numpy 2 names it
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; any other global is refused."""

    def find_class(self, module: str, name: str):
        try:
            return _PICKLE_ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickle(
                f"refusing to unpickle {module}.{name}: a CIFAR-10 batch holds only numpy arrays"
            ) from None


def restricted_loads(payload: bytes):
    # encoding="bytes": the batches were written by Python 2, whose str keys
    # (b"data", b"labels") come back as bytes.
    return RestrictedUnpickler(io.BytesIO(payload), encoding="bytes").load()


def _read_member(tar: tarfile.TarFile, name: str):
    try:
        f = tar.extractfile(name)
    except KeyError:
        f = None
    if f is None:
        raise DatasetCorrupt(f"{tar.name}: member {name!r} missing; not the CIFAR-10 python archive")
    return restricted_loads(f.read())


def _read_batch(tar: tarfile.TarFile, name: str) -> tuple[np.ndarray, np.ndarray]:
    batch = _read_member(tar, name)
    # Each row is 3072 bytes: the 1024 red, then green, then blue pixels of a
    # 32x32 image, rows top to bottom -- exactly (3, 32, 32) in C order.
    images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if len(images) != len(labels):
        raise DatasetCorrupt(f"{name}: {len(images)} images but {len(labels)} labels")
    return images, labels


def split_validation(n: int, num_validation: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices: as AlgoPerf, the last ``num_validation`` of
    the ``n`` training images (in archive order) are the validation set."""
    if not 0 < num_validation < n:
        raise ValueError(f"cannot hold out {num_validation} of {n} examples")
    return np.arange(n - num_validation), np.arange(n - num_validation, n)


def load_cifar10(
    data_dir: str | os.PathLike,
    sha256: str | None = None,
    num_validation: int | None = None,
) -> Splits:
    """CIFAR-10 from ``<data_dir>/cifar-10-python.tar.gz``: 45000 train, 5000
    validation (held out of the training batches), 10000 test.

    ``sha256`` is the hash the archive must have and ``num_validation`` the
    number held out; they default to this module's CIFAR10_SHA256 and
    CIFAR10_VALIDATION (tests override them for a small fake archive written in
    the same format)."""
    sha256 = CIFAR10_SHA256 if sha256 is None else sha256
    num_validation = CIFAR10_VALIDATION if num_validation is None else num_validation
    path = cifar10_archive_path(data_dir)
    if not path.is_file():
        raise DatasetMissing(
            f"CIFAR-10 archive not found at {path}. Run `bench data prepare cifar` to download it "
            f"({CIFAR10_BYTES / 1e6:.0f} MB), or copy the official {CIFAR10_ARCHIVE} from {CIFAR10_URL} "
            f"to {path}."
        )
    verify_sha256(path, sha256)
    with tarfile.open(path, "r:gz") as tar:
        _read_member(tar, CIFAR10_META_MEMBER)  # present and well-formed
        train = [_read_batch(tar, name) for name in CIFAR10_TRAIN_MEMBERS]
        test = _read_batch(tar, CIFAR10_TEST_MEMBER)
    images = np.concatenate([x for x, _ in train])
    labels = np.concatenate([y for _, y in train])
    train_idx, validation_idx = split_validation(len(labels), num_validation)
    return {
        "train": (images[train_idx], labels[train_idx]),
        "validation": (images[validation_idx], labels[validation_idx]),
        "test": test,
    }


def prepare(data_dir: str | os.PathLike, url: str = CIFAR10_URL, sha256: str = CIFAR10_SHA256) -> Path:
    """Download the CIFAR-10 archive to ``<data_dir>/cifar-10-python.tar.gz``
    (what ``bench data prepare cifar`` runs). Idempotent: an archive already in
    place with the right hash is kept. The download goes to a temporary file in
    the same directory, is checked, then renamed, so a half-finished download
    never sits at the final path."""
    path = cifar10_archive_path(data_dir)
    if path.is_file() and sha256_file(path) == sha256.lower():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{CIFAR10_ARCHIVE}.", suffix=".part")
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, out, 1 << 20)
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as e:
            raise DownloadFailed(
                f"could not download CIFAR-10 from {url} ({e}). Without internet access, fetch "
                f"{CIFAR10_ARCHIVE} on another machine and copy it to {path} "
                f"(sha256 {sha256.lower()}); then run again."
            ) from e
        verify_sha256(tmp, sha256)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
