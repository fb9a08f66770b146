"""Tests for the cifar workload: data (tiny generator, CIFAR-10 loader on a fake
archive in the official format), model, and the task's batches and evaluation."""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness.api import ParamType
from workloads.cifar import FULL, TINY, WORKLOAD, data
from workloads.cifar.model import RESNET18, ResNet, ResNetConfig
from workloads.cifar.task import CifarTask

REPO = Path(__file__).resolve().parents[1]
BN = lambda site, c: nn.BatchNorm2d(c)  # noqa: E731
GN = lambda site, c: nn.GroupNorm(4, c)  # noqa: E731


# --------------------------------------------------------------------------- #
# A fake cifar-10-python.tar.gz in the official format                        #
# --------------------------------------------------------------------------- #


class _Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 ``str`` (BINSTRING opcodes), as the 2009
    cPickle files do, instead of Python 3's ``_codecs.encode`` reductions."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def _py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    # The original files name the array rebuilder as numpy 1.x did.
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def write_fake_cifar(directory: Path, per_batch: int = 20, seed: int = 0, evil_member: str | None = None):
    """Write <directory>/cifar-10-python.tar.gz; return (rows, labels) per member."""
    rng = np.random.default_rng(seed)
    batches = {}
    path = directory / data.CIFAR10_ARCHIVE
    with tarfile.open(path, "w:gz") as tar:
        meta = {b"label_names": [b"airplane", b"automobile"] + [b"x"] * 8, b"num_cases_per_batch": per_batch}
        _add(tar, data.CIFAR10_META_MEMBER, _py2_pickle(meta))
        for name in (*data.CIFAR10_TRAIN_MEMBERS, data.CIFAR10_TEST_MEMBER):
            rows = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            labels = [int(v) for v in rng.integers(0, 10, per_batch)]
            batch = {
                b"batch_label": b"fake " + name.encode(),
                b"labels": labels,
                b"data": rows,
                b"filenames": [b"img_%d.png" % i for i in range(per_batch)],
            }
            payload = _py2_pickle(batch)
            if name == evil_member:
                payload = pickle.dumps(_Evil(), protocol=2)
            _add(tar, name, payload)
            batches[name] = (rows, np.asarray(labels))
    return path, batches


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.fixture()
def fake_cifar(tmp_path, monkeypatch):
    path, batches = write_fake_cifar(tmp_path)
    monkeypatch.setattr(data, "CIFAR10_SHA256", data.sha256_file(path))
    monkeypatch.setattr(data, "CIFAR10_VALIDATION", 10)
    return tmp_path, batches


# --------------------------------------------------------------------------- #
# Workload description                                                        #
# --------------------------------------------------------------------------- #


def test_import_does_not_load_torch():
    code = "import sys, workloads.cifar; assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_workload_info():
    assert WORKLOAD.sizes["full"].step_hint == 4883 and FULL.batch_size == 1024
    assert FULL.target.validation == 0.85 and FULL.target.test == 0.85 and FULL.eval_every_s == 600
    assert TINY.device == "cpu" and TINY.eval_every_steps and TINY.calibration
    assert WORKLOAD.norm_sites == ("conv",)


# --------------------------------------------------------------------------- #
# tiny data                                                                   #
# --------------------------------------------------------------------------- #


def test_shapes_deterministic_and_balanced():
    x1, y1 = data.render_shapes(300, seed=7)
    x2, y2 = data.render_shapes(300, seed=7)
    assert x1.shape == (300, 3, 32, 32) and x1.dtype == np.uint8 and y1.dtype == np.int64
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert np.bincount(y1, minlength=10).tolist() == [30] * 10
    x3, _ = data.render_shapes(300, seed=8)
    assert not np.array_equal(x1, x3)
    # Colour is no cue: over many images, the mean colour of each class is the
    # same up to sampling noise (std of a class mean here is about 5 of 255).
    x, y = data.render_shapes(2000, seed=9)
    class_means = np.stack([x[y == k].mean(axis=(0, 2, 3)) for k in range(10)])
    assert np.ptp(class_means, axis=0).max() < 30


def test_shapes_splits_sizes():
    splits = data.shapes_splits()
    assert {k: len(v[1]) for k, v in splits.items()} == data.SHAPES_SPLITS
    # Splits are rendered from different seeds: no shared images.
    assert not np.array_equal(splits["validation"][0][:5], splits["test"][0][:5])


# --------------------------------------------------------------------------- #
# full data: the CIFAR-10 loader                                              #
# --------------------------------------------------------------------------- #


def test_load_fake_cifar(fake_cifar):
    data_dir, batches = fake_cifar
    splits = data.load_cifar10(data_dir)
    rows = np.concatenate([batches[m][0] for m in data.CIFAR10_TRAIN_MEMBERS])
    labels = np.concatenate([batches[m][1] for m in data.CIFAR10_TRAIN_MEMBERS])

    (tx, ty), (vx, vy), (sx, sy) = splits["train"], splits["validation"], splits["test"]
    assert tx.shape == (90, 3, 32, 32) and vx.shape == (10, 3, 32, 32) and sx.shape == (20, 3, 32, 32)
    assert tx.dtype == np.uint8 and ty.dtype == np.int64

    # Pixel layout: byte c*1024 + y*32 + x of a row is channel c, row y, column x.
    train_idx, val_idx = data.split_validation(100, 10)
    i = train_idx[3]
    assert tx[3, 2, 5, 7] == rows[i, 2 * 1024 + 5 * 32 + 7]
    assert np.array_equal(tx, rows[train_idx].reshape(-1, 3, 32, 32))
    assert np.array_equal(ty, labels[train_idx]) and np.array_equal(vy, labels[val_idx])
    # As AlgoPerf: validation is the tail of the training batches, in order.
    assert np.array_equal(vx.reshape(10, -1), batches[data.CIFAR10_TRAIN_MEMBERS[-1]][0][-10:])
    assert np.array_equal(sx.reshape(20, -1), batches[data.CIFAR10_TEST_MEMBER][0])
    assert np.array_equal(sy, batches[data.CIFAR10_TEST_MEMBER][1])


def test_validation_split_is_algoperfs():
    train, val = data.split_validation(50_000, 5_000)
    assert np.array_equal(train, np.arange(45_000)) and np.array_equal(val, np.arange(45_000, 50_000))
    with pytest.raises(ValueError):
        data.split_validation(10, 10)


def test_sha256_mismatch_is_a_clear_error(tmp_path):
    path, _ = write_fake_cifar(tmp_path, per_batch=2)
    actual = data.sha256_file(path)
    with pytest.raises(ValueError) as err:
        data.load_cifar10(tmp_path)  # the real archive's hash: the fake does not match
    message = str(err.value)
    assert str(path) in message and data.CIFAR10_SHA256 in message and actual in message


def test_restricted_unpickler_rejects_code():
    with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system|nt.system"):
        data.restricted_loads(pickle.dumps(_Evil(), protocol=2))
    with pytest.raises(pickle.UnpicklingError):  # Python 3's bytes reduction is not allowed either
        data.restricted_loads(pickle.dumps(b"abc", protocol=2))
    # ... while the arrays of a real batch load.
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    loaded = data.restricted_loads(_py2_pickle({b"data": array, b"labels": [1, 2, 3]}))
    assert np.array_equal(loaded[b"data"], array) and loaded[b"labels"] == [1, 2, 3]


def test_archive_with_code_is_rejected(tmp_path, monkeypatch):
    path, _ = write_fake_cifar(tmp_path, per_batch=2, evil_member=data.CIFAR10_TRAIN_MEMBERS[2])
    monkeypatch.setattr(data, "CIFAR10_SHA256", data.sha256_file(path))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        data.load_cifar10(tmp_path)


def test_missing_archive_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        data.load_cifar10(tmp_path)
    assert "bench data prepare cifar" in str(err.value)
    assert str(tmp_path / "cifar-10-python.tar.gz") in str(err.value)


def test_prepare_downloads_verifies_and_renames(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    archive, _ = write_fake_cifar(source, per_batch=2)
    sha = data.sha256_file(archive)
    target = tmp_path / "data"

    path = data.prepare(target, url=archive.as_uri(), sha256=sha)
    assert path == target / data.CIFAR10_ARCHIVE and data.sha256_file(path) == sha
    assert sorted(p.name for p in target.iterdir()) == [data.CIFAR10_ARCHIVE]  # no temp file left
    assert data.prepare(target, url="http://127.0.0.1:9/never-fetched", sha256=sha) == path  # idempotent

    with pytest.raises(ValueError, match="sha256 mismatch"):
        data.prepare(tmp_path / "bad", url=archive.as_uri(), sha256="0" * 64)
    assert list((tmp_path / "bad").iterdir()) == []  # nothing half-written at the final path


def test_prepare_offline_explains_manual_placement(tmp_path):
    with pytest.raises(RuntimeError) as err:
        data.prepare(tmp_path, url="http://127.0.0.1:9/cifar-10-python.tar.gz")
    assert str(tmp_path / data.CIFAR10_ARCHIVE) in str(err.value)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- #
# model                                                                       #
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("norm", [BN, GN], ids=["batchnorm", "groupnorm"])
def test_model_forward_backward(norm):
    torch.manual_seed(0)
    model = ResNet(ResNetConfig(widths=(8, 16, 32), blocks=(1, 1, 1)), norm)
    x = torch.randn(4, 3, 32, 32)
    logits = model(x)
    assert logits.shape == (4, 10)
    nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    norm_type = nn.BatchNorm2d if norm is BN else nn.GroupNorm
    # stem + 2 per block + 1 per projection shortcut (stages 2 and 3)
    assert sum(isinstance(m, norm_type) for m in model.modules()) == 1 + 2 * 3 + 2


def test_resnet18_shape():
    model = ResNet(RESNET18, BN)
    assert sum(p.numel() for p in model.parameters()) == 11_173_962  # the usual CIFAR ResNet-18
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


# --------------------------------------------------------------------------- #
# task                                                                        #
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def tiny_task():
    return CifarTask(TINY, torch.device("cpu"), Path("/nonexistent"), seed=0)


def test_tiny_task_batches_are_deterministic(tiny_task):
    other = CifarTask(TINY, torch.device("cpu"), Path("/nonexistent"), seed=0)
    x5, y5 = tiny_task.next_batch(5)
    x_late, _ = tiny_task.next_batch(5 + 3 * tiny_task.steps_per_epoch)  # another epoch in between
    assert x5.shape == (TINY.batch_size, 3, 32, 32) and y5.shape == (TINY.batch_size,)
    assert x5.dtype == torch.float32 and y5.dtype == torch.long
    for x, y in (tiny_task.next_batch(5), other.next_batch(5)):  # any order, any instance
        assert torch.equal(x, x5) and torch.equal(y, y5)
    assert not torch.equal(tiny_task.next_batch(6)[0], x5)
    assert not torch.equal(x_late, x5)
    reseeded = CifarTask(TINY, torch.device("cpu"), Path("/nonexistent"), seed=1)
    assert not torch.equal(reseeded.next_batch(5)[0], x5)
    # Normalized with the training set's per-channel statistics.
    mean = tiny_task.train_x.mean(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.zeros(3), atol=1e-3)


def test_tiny_task_loss_and_param_types(tiny_task):
    torch.manual_seed(0)
    model = tiny_task.build_model(BN)
    loss = tiny_task.loss(model, tiny_task.next_batch(0))
    assert loss.ndim == 0 and 2.0 < loss.item() < 3.5  # ~ln(10) at initialization
    types = tiny_task.param_types(model)
    assert types["fc.weight"] == ParamType.HEAD and types["fc.bias"] == ParamType.BIAS
    assert types["stem.weight"] == ParamType.CONV and types["stem_norm.weight"] == ParamType.NORM
    assert set(types) == {name for name, _ in model.named_parameters()}


def _full_task(seed: int, batch_size: int = 16) -> CifarTask:
    size = dataclasses.replace(FULL, batch_size=batch_size, device="cpu")
    return CifarTask(size, torch.device("cpu"), _full_task.data_dir, seed=seed)


def test_full_task_augmentation(fake_cifar):
    _full_task.data_dir = fake_cifar[0]
    task = _full_task(seed=0)
    assert task.num_train == 90 and task.steps_per_epoch == 5
    x, y = task.next_batch(2)
    assert torch.equal(task.next_batch(2)[0], x) and torch.equal(_full_task(seed=0).next_batch(2)[0], x)
    assert not torch.equal(task.next_batch(3)[0], x)
    assert not torch.equal(_full_task(seed=1).next_batch(2)[0], x)

    # Every augmented image is a 32x32 window of its zero-padded source,
    # mirrored or not, and the windows vary over the batch.
    task._generator.manual_seed(123)
    source = task.train_x[:16]
    out = task._crop_and_flip(source)
    padded = nn.functional.pad(source, (4, 4, 4, 4))
    found = set()
    for b in range(16):
        matches = [
            (dy, dx, flip)
            for dy in range(9)
            for dx in range(9)
            for flip in (False, True)
            if torch.equal(out[b], (lambda w: w.flip(-1) if flip else w)(padded[b, :, dy : dy + 32, dx : dx + 32]))
        ]
        assert matches, f"image {b} is not a crop of its source"
        found.add(matches[0])
    assert len(found) > 4


def test_full_task_evaluate(fake_cifar):
    _full_task.data_dir = fake_cifar[0]
    task = _full_task(seed=0)
    torch.manual_seed(0)
    model = task.build_model(BN)
    model.eval()
    with torch.no_grad():
        metrics = task.evaluate(model)
    assert set(metrics) == {"validation/accuracy", "validation/loss", "test/accuracy", "test/loss"}
    assert all(isinstance(v, float) for v in metrics.values())
    assert 0.0 <= metrics["test/accuracy"] <= 1.0 and metrics["test/loss"] > 0
