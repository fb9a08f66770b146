"""The official CIFAR-10 python archive, shared by the workloads that read it
(cifar full, diffusion full): checked against its sha256 before anything is
read, unpickled with an unpickler that can build numpy arrays and nothing
else. As in AlgoPerf, the last 5000 of the 50000 training images are held out
as the validation set; the official 10000 test images are the test set.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np

from harness.common.files import download, sha256_file
from harness.errors import DataError, DatasetCorrupt, DatasetMissing

Splits = dict  # {"train" | "validation" | "test": (images uint8 (N,3,32,32), labels int64 (N,))}


class UnsafePickle(DataError, pickle.UnpicklingError):
    pass


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
    place with the right hash is kept; a download is checked before it takes
    the final name (harness/common/files.py)."""
    path = cifar10_archive_path(data_dir)
    if path.is_file() and sha256_file(path) == sha256.lower():
        return path
    return download(url, path, check=lambda tmp: verify_sha256(tmp, sha256), offline_hint=(
        f"Without internet access, fetch {CIFAR10_ARCHIVE} on another machine and copy it to {path} "
        f"(sha256 {sha256.lower()}); then run again."))


__all__ = ["load_cifar10", "prepare", "verify_sha256", "sha256_file", "cifar10_archive_path", "split_validation",
           "restricted_loads", "RestrictedUnpickler", "UnsafePickle", "CIFAR10_URL", "CIFAR10_ARCHIVE",
           "CIFAR10_SHA256", "CIFAR10_VALIDATION"]
